"""Every model fits on the GPU as it does on the CPU (GPU only).

The same 500-step run of the fast preset on lego_100 (100 views at 100²), once with recon's CPU
kernels and once with its CUDA kernels, from the same seed. The two runs are not bit-identical
(atomics sum gradients in another order, and CUDA random numbers differ from the CPU's where the
strategy draws on the device), so they drift apart; their held-out PSNR agrees within 0.3 dB.
"""

from __future__ import annotations

import dataclasses

import pytest

from recon.eval.evaluate import evaluate_run
from recon.models import MODEL_NAMES
from recon.train.config import PRESETS
from recon.train.trainer import Trainer

pytestmark = pytest.mark.gpu

STRATEGY = {"gaussians": "mcmc", "convexes": "default", "triangles": "mcmc"}


def fitted_psnr(data, out, model: str, backend: str) -> float:
    config = dataclasses.replace(PRESETS["fast"], data=data, out=out, steps=500, model=model,
                                 strategy=STRATEGY[model], backend=backend, quiet=True,
                                 checkpoint_every=500)
    Trainer.open(config).train()
    return evaluate_run(out, backend=backend)["psnr"]


@pytest.mark.parametrize("model", MODEL_NAMES)
def test_cuda_fit_matches_cpu_fit(model, shared_data, tmp_path):
    data = shared_data / "lego_100.npz"
    cpu = fitted_psnr(data, tmp_path / "cpu", model, "cpu")
    cuda = fitted_psnr(data, tmp_path / "cuda", model, "cuda")
    print(f"{model}: cpu {cpu:.3f} dB, cuda {cuda:.3f} dB")
    assert cpu > 15.0  # it learned: an empty white image scores about 10 dB on lego_100
    assert abs(cuda - cpu) <= 0.3, f"{model}: cpu {cpu:.3f} dB, cuda {cuda:.3f} dB"
