"""Just-in-time build of recon's native rasterizer, on first use.

The sources under ``cuda/`` (shipped as the ``recon.cuda`` package) are compiled with
``torch.utils.cpp_extension.load`` into a cache folder (``$RECON_CACHE`` or
``~/.cache/recon/torch_extensions``). The extension name carries a hash of the sources, the torch
version and the flags, so an edit (or a torch upgrade) builds a fresh copy instead of loading a
stale one. Nothing here runs at import time: ``load_ops()`` is called by the op wrappers.
"""

from __future__ import annotations

import hashlib
import os
import threading
from pathlib import Path

import torch

from recon.errors import ReconError

CUDA_DIR = Path(__file__).resolve().parents[2] / "cuda"
# Portable flags: the cache may be shared by machines with different CPUs (no -march=native), and
# no -ffast-math (the α threshold and NaN checks must behave as in the torch reference).
# -fno-trapping-math only drops the assumption that FP exceptions are observed (results are
# unchanged); it lets GCC vectorise the kernels' branch-free clamps (e.g. the Gaussian's exp).
CXX_FLAGS = ["-O3", "-fno-trapping-math", "-fopenmp"]
NVCC_FLAGS = ["-O3"]
_lock = threading.Lock()
_loaded: str | None = None


class NativeBuildError(ReconError):
    """The native rasterizer could not be compiled or loaded."""


def cuda_dir() -> Path:
    """The folder of the native sources (``cuda/`` in a checkout, ``recon/cuda`` when installed)."""
    try:
        import recon.cuda as pkg

        return Path(pkg.__file__).resolve().parent
    except ImportError:  # pragma: no cover - a checkout without the package mapping
        return CUDA_DIR


def cache_dir() -> Path:
    root = os.environ.get("RECON_CACHE")
    base = Path(root) if root else Path.home() / ".cache" / "recon"
    return base / "torch_extensions"


def with_cuda() -> bool:
    """Build the CUDA kernels too when this torch has CUDA and a GPU is present."""
    from torch.utils.cpp_extension import CUDA_HOME

    return torch.version.cuda is not None and torch.cuda.is_available() and CUDA_HOME is not None


def sources(cuda: bool) -> list[Path]:
    root = cuda_dir()
    files = [root / "bindings.cpp", *sorted((root / "cpu").glob("*.cpp"))]
    if cuda:
        files += [root / "bindings_cuda.cpp", *sorted((root / "gpu").glob("*.cu"))]
    return files


def _headers() -> list[Path]:
    root = cuda_dir()
    return ([root / "bindings.h"] + sorted((root / "include").glob("*.h"))
            + sorted((root / "gpu").glob("*.h")))


def extension_name(cuda: bool) -> str:
    digest = hashlib.sha256()
    for path in sources(cuda) + _headers():
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    digest.update(" ".join([torch.__version__, *CXX_FLAGS, *NVCC_FLAGS]).encode())
    return f"recon_{'cuda' if cuda else 'cpu'}_{digest.hexdigest()[:12]}"


def load_ops() -> None:
    """Build (if needed) and load the extension; afterwards ``torch.ops.recon.*`` exist."""
    global _loaded
    if _loaded is not None:
        return
    with _lock:
        if _loaded is not None:
            return
        from torch.utils.cpp_extension import load

        cuda = with_cuda()
        name = extension_name(cuda)
        build_dir = cache_dir() / name
        build_dir.mkdir(parents=True, exist_ok=True)
        include = str(cuda_dir() / "include")
        try:
            load(
                name=name,
                sources=[str(s) for s in sources(cuda)],
                extra_include_paths=[include],
                extra_cflags=CXX_FLAGS + (["-DRECON_WITH_CUDA"] if cuda else []),
                extra_cuda_cflags=NVCC_FLAGS,
                extra_ldflags=["-fopenmp"],
                build_directory=str(build_dir),
                is_python_module=False,
                verbose=os.environ.get("RECON_BUILD_VERBOSE") == "1",
            )
        except (RuntimeError, OSError) as exc:
            raise NativeBuildError(
                f"Building recon's native rasterizer failed ({exc}). It needs a C++17 compiler "
                "with OpenMP (g++) and ninja; set RECON_BUILD_VERBOSE=1 to see the compiler "
                f"output, or delete {build_dir} to retry from scratch. backend='torch' renders "
                "small images without it."
            ) from exc
        _loaded = name
