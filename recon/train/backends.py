"""One training render per step, by recon's renderer or by gsplat's CUDA rasterizer.

Both return a ``recon.render.RenderResult`` (one camera: features [3, H, W]; per-Gaussian
statistics [1, N, ...]), so strategies read the same fields whichever backend drew the image.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from recon.cameras import Camera, cameras_to_tensors
from recon.errors import ReconError
from recon.render import RenderResult, squeeze_camera, render


class BackendError(ReconError):
    """The requested backend cannot run on this machine."""


RenderFn = Callable[..., RenderResult]
"""(params, camera or list of cameras, colors, sh_degree, background, absgrad, depth=False,
normals=False) -> RenderResult; ``colors`` are the SH coefficients [N, K, 3] of the active
bands; ``depth`` asks for the expected-depth map (regularizers need it), ``normals`` for the
normal map (recon's renderer only). A list of cameras gives batched images [B, C, H, W]."""


def training_device(backend: str) -> torch.device:
    """The device a backend trains on; a clear error when it is missing."""
    cuda = torch.cuda.is_available()
    if backend in ("auto", "torch"):
        return torch.device("cuda" if cuda else "cpu")
    if backend == "cpu":
        return torch.device("cpu")
    if not cuda:
        raise BackendError(f"--backend {backend} needs a CUDA GPU, and torch sees none on this "
                           "machine. Use --backend auto (or cpu) to train on the CPU.")
    if backend == "gsplat":
        try:
            import gsplat  # noqa: F401
        except ImportError as exc:
            raise BackendError("--backend gsplat needs the gsplat package (pip install "
                               "gsplat==1.5.3); or use --backend auto.") from exc
    return torch.device("cuda")


def renderer(backend: str, model) -> RenderFn:
    """The per-step render function of ``backend`` (after :func:`training_device` accepted it)
    for ``model`` (a ``recon.models.base.Model``: its primitives and projection options)."""
    if backend == "gsplat":
        if model.name != "gaussians":
            raise BackendError(f"--backend gsplat renders Gaussians only, not {model.name}; use "
                               "--backend auto (or cpu / cuda).")
        return _gsplat_renderer(model.primitives, **model.render_options())
    options = model.render_options()

    def draw(params, camera, colors: Tensor, sh_degree: int, background: Tensor,
             absgrad: bool, depth: bool = False, normals: bool = False) -> RenderResult:
        return render(model.primitives(params), camera, colors, background=background,
                      backend=backend, sh_degree=sh_degree, depth=depth, normals=normals,
                      absgrad=absgrad, **options)

    return draw


def _gsplat_renderer(primitives, eps2d: float, antialiased: bool) -> RenderFn:
    from gsplat import rasterization

    def draw(params, camera, colors: Tensor, sh_degree: int, background: Tensor,
             absgrad: bool, depth: bool = False, normals: bool = False) -> RenderResult:
        g = primitives(params)  # normals: never asked of Gaussians (no model loss needs them)
        device = g.means.device
        single = isinstance(camera, Camera)
        cameras = [camera] if single else list(camera)
        viewmats, Ks = cameras_to_tensors(cameras, device)
        B = len(cameras)
        image, alpha, meta = rasterization(
            g.means, g.quats, g.scales, g.opacities, colors, viewmats, Ks, cameras[0].width,
            cameras[0].height, eps2d=eps2d, sh_degree=sh_degree, packed=False,
            backgrounds=background[None].expand(B, -1), absgrad=absgrad,
            render_mode="RGB+ED" if depth else "RGB",
            rasterize_mode="antialiased" if antialiased else "classic")
        # "RGB+ED" appends the expected depth Σ w z / Σ w (0 where nothing was drawn, as
        # recon's) as a fourth channel, with a zero background.
        alpha = alpha[..., 0]
        expected_depth = image[..., 3] if depth else torch.zeros_like(alpha)
        image = image[..., :3]
        means2d = meta["means2d"]                                 # [B, N, 2]
        if means2d.requires_grad:
            means2d.retain_grad()
        radii = meta["radii"]
        radii = radii.amax(-1) if radii.dim() == 3 else radii      # [B, N] (1.5.x gives [.., 2])
        visible = radii > 0
        n = means2d.shape[1]
        result = RenderResult(
            features=image.permute(0, 3, 1, 2), alpha=alpha, depth=expected_depth,
            median_depth=torch.zeros_like(alpha), normals=None, means2d=means2d,
            radii=radii.to(torch.int32), visible=visible,
            visibility_count=visible.sum(0).to(torch.int32),
            max_weight=torch.zeros(B, n, device=device),
            absgrad=torch.zeros(B, n, 5, device=device) if absgrad else None)
        return squeeze_camera(result) if single else result

    return draw


def finish_backward(result: RenderResult) -> None:
    """Copy gsplat's means2d absgrad (an attribute set by its backward) into ``result.absgrad``,
    where strategies read it for recon's backends."""
    grad = getattr(result.means2d, "absgrad", None)
    if result.absgrad is not None and grad is not None:
        result.absgrad[..., :2] = grad


__all__ = ["BackendError", "RenderFn", "finish_backward", "renderer", "training_device"]
