"""Opening a fitted run: the one way into a run directory for every tool.

``load_run(RUN)`` returns the model, its parameters and the dataset exactly as the run was
trained on them (same resolution, split and normalised frame), plus the settings of its
checkpoint. ``recon fit --resume``, ``recon eval``, ``recon export``, ``recon extract-mesh``,
``recon render`` and the viewer all go through it, so none of them reads a checkpoint's raw
fields or names a model's parameters.

Run directory: ``config.yaml`` (the resolved config), ``checkpoints/step_XXXXXX.pt``,
``metrics.jsonl``, ``sfm/`` when the input was a plain folder of photos, ``export/`` (files
written by ``recon export`` and ``recon extract-mesh``) and ``renders/`` (``recon eval``).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from recon.cameras import Similarity
from recon.errors import ReconError

if TYPE_CHECKING:
    from torch import Tensor

    from recon.data import Dataset
    from recon.models.base import Model
    from recon.train.config import FitConfig

CONFIG_FILE = "config.yaml"
METRICS_FILE = "metrics.jsonl"
SFM_DIR = "sfm"
TRIANGULATED_FILE = "triangulated.npz"
"""In SFM_DIR: the points triangulated from a posed dataset's views when it ships none."""
EXPORT_DIR = "export"


@dataclass
class Run:
    """A run's checkpoint opened for use."""

    run_dir: Path
    step: int
    """The checkpoint's step."""
    model: Model
    params: dict[str, Tensor]
    """The model's parameters (CPU tensors, detached)."""
    sh_degree: int
    """The SH degree the run renders with (of its last step)."""
    config: FitConfig
    dataset: Dataset
    """The data as trained on (reloaded, lazily decoded)."""
    data_path: Path
    checkpoint: dict
    """The raw checkpoint (optimizer, strategy and random states for resuming)."""

    @property
    def background(self) -> str:
        """"white" or "black": what the run is scored and shown over (a run trained on random
        backgrounds is shown over white, the usual choice for synthetic scenes)."""
        background = self.config.data_options.background
        return background if background != "random" else "white"

    @property
    def count(self) -> int:
        """Number of primitives."""
        return self.model.count(self.params)

    def params_on(self, device) -> dict[str, Tensor]:
        return {k: v.to(device) for k, v in self.params.items()}


def load_run(run_dir: Path, step: int | None = None) -> Run:
    """Open the checkpoint of ``step`` (the newest when None) of the run in ``run_dir``.

    The dataset is read with the data options the run was fitted with (so a run fitted with
    ``--data.downscale N`` from a folder with ``images_N`` reopens at that resolution),
    and its normalisation must still be the one the run recorded.
    """
    from recon.data import load_dataset
    from recon.models import build_model
    from recon.train.checkpoint import load_checkpoint
    from recon.train.config import from_dict

    run_dir = Path(run_dir)
    ckpt = load_checkpoint(run_dir, step)
    config = from_dict(ckpt["config"])
    data_config = replace(config.data_options.to_data_config(),
                          normalize=ckpt.get("data_config", {}).get("normalize", True))
    data_path = Path(ckpt["data_path"])
    dataset = load_dataset(data_path, data_config)
    normalization = Similarity.from_dict(ckpt["normalization"])
    if not _same_similarity(normalization, dataset.normalization):
        raise ReconError(f"The dataset at {data_path} no longer matches the run in {run_dir} "
                         "(its scene normalisation changed: the cameras were edited). Use the "
                         "data the run was fitted on, or fit again.")
    scene_scale = config.optim.scene_scale_factor * dataset.scene_radius()
    params = ckpt["params"] if "params" in ckpt else ckpt["splats"]  # "splats": before models
    return Run(run_dir=run_dir, step=int(ckpt["step"]), model=build_model(config, scene_scale),
               params={k: v.detach().cpu() for k, v in params.items()},
               sh_degree=int(ckpt["sh_degree"]), config=config, dataset=dataset,
               data_path=data_path, checkpoint=ckpt)


def primitive_count(record: dict) -> int:
    """The primitive count of a metrics.jsonl or eval.json record (runs written before models
    existed call it ``num_gaussians``)."""
    return int(record["num_primitives"] if "num_primitives" in record else record["num_gaussians"])


def _same_similarity(a: Similarity, b: Similarity, tol: float = 1e-6) -> bool:
    """Equal up to the rounding of a JSON/YAML round trip."""
    return bool(np.allclose(a.matrix(), b.matrix(), rtol=tol, atol=tol * max(1.0, a.scale)))


__all__ = ["CONFIG_FILE", "EXPORT_DIR", "METRICS_FILE", "Run", "SFM_DIR", "TRIANGULATED_FILE",
           "load_run", "primitive_count"]
