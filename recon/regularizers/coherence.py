"""Coherent per-pixel Gaussians for a handful of input views (CoherentGS, without monocular depth).

Plain 3DGS overfits 2-8 views with "needles" that only look right from the inputs. Here each
training view owns one Gaussian per pixel (per ``stride`` block), on that pixel's ray:
μ = o_v + z · d_v(p), with d_v(p) = R_vᵀ K⁻¹ [p, 1] (camera z = 1), so depth z is its only
positional degree of freedom. The depth is

    z = z⁰ + depth_range · scene_scale · tanh(D(e_v))[segment(p)]

with z⁰ interpolated from sparse SfM points (the dataset's, or SIFT matches between the views
triangulated with the known poses: nothing is downloaded), D a small upsampling CNN shared by
the views and fed a fixed random code e_v per view (its spectral bias moves neighbouring pixels
together), and one output channel per depth layer of z⁰, so depth may jump between layers. A
second decoder adds opacity-logit offsets the same way. Scales are isotropic, reset to
``scale_factor`` × the pixel footprint z / 2f every ``scale_reset_every`` steps; colours start at
the pixel's colour and are free, like the scales.

Losses besides the photometric one:

* total variation of the rendered disparity 1 / (depth + 1) of the step's view, mixed from global
  to within-segment smoothness as γ = step / steps grows (pairs of pixels across segments stop
  counting); pairs touching the transparent background of an alpha mask never count;
* multi-view consistency: the 3D points of each SIFT match, read from the two views' depth maps,
  should coincide (CoherentGS uses optical flow; verified SIFT matches serve the same purpose).

The regularizer replaces the densification strategy (the Gaussians are tied to pixels). After
every step the derived means and opacities are written into ``splats``, so checkpoints, ``recon
eval`` and exports see the Gaussians as they render.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from recon.errors import ReconError
from recon.models.gaussians import splat_parameters, to_gaussians, with_centres
from recon.regularizers.base import Regularizer, RunContext, StepContext
from recon.data.matches import sift_matches, triangulate
from recon.regularizers.options import CoherenceOptions
from recon.render.sh import num_bases, rgb_to_sh0
from recon.strategies import ops

CODE_DOWNSAMPLE = 8
"""The latent code is 1/8 of the Gaussian grid; three ×2 upsampling stages bring it back."""
MIN_POINTS_PER_VIEW = 3
"""Interpolating a depth map needs at least a triangle of points."""


class CoherenceError(ReconError):
    """The views cannot be set up for coherent per-pixel Gaussians."""


class Decoder(nn.Module):
    """Fixed code [V, C, h, w] -> [V, M, 8h, 8w]: conv + LeakyReLU, three (×2 upsample, conv +
    LeakyReLU) stages, and a last conv initialised to zero (so training starts at z = z⁰)."""

    def __init__(self, code_channels: int, width: int, outputs: int) -> None:
        super().__init__()
        self.inner = nn.ModuleList([nn.Conv2d(code_channels, width, 3, padding=1)]
                                   + [nn.Conv2d(width, width, 3, padding=1) for _ in range(3)])
        self.last = nn.Conv2d(width, outputs, 3, padding=1)

    def reset(self, generator: torch.Generator) -> None:
        """He-normal weights from ``generator`` (not torch's global RNG), zero biases and a zero
        output layer."""
        with torch.no_grad():
            for conv in self.inner:
                fan_in = conv.weight[0].numel()
                conv.weight.copy_(torch.randn(conv.weight.shape, generator=generator)
                                  * math.sqrt(2.0 / fan_in))
                conv.bias.zero_()
            self.last.weight.zero_()
            self.last.bias.zero_()

    def forward(self, code: Tensor) -> Tensor:
        x = F.leaky_relu(self.inner[0](code), 0.2)
        for conv in self.inner[1:]:
            x = F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False)
            x = F.leaky_relu(conv(x), 0.2)
        return self.last(x)


class CoherenceRegularizer(Regularizer):
    """``--reg coherence``."""

    def __init__(self, options: CoherenceOptions, run: RunContext) -> None:
        super().__init__(run)
        self.options = o = options
        views, _, height, width = run.images.shape
        self.grid = (height // o.stride, width // o.stride)
        self.rays, self.origins = pixel_rays(run.cameras, o.stride, self.grid, run.device)
        self.focal = torch.tensor([min(c.fx, c.fy) for c in run.cameras], device=run.device)
        alpha = (run.images[:, 3].float() / 255.0 if run.images.shape[1] == 4 else None)
        self.foreground = alpha > 0.5 if alpha is not None else None                # [V,H,W]
        self.depth_decoder = Decoder(o.code_channels, o.width, o.segments).to(run.device)
        self.opacity_decoder = Decoder(o.code_channels, o.width, o.segments).to(run.device)
        self.optimizer = torch.optim.Adam([*self.depth_decoder.parameters(),
                                           *self.opacity_decoder.parameters()], lr=o.decoder_lr)
        self.z0: Tensor | None = None        # [V, h, w] initial depth
        self.labels: Tensor | None = None    # [V, h, w] depth layer of each pixel
        self.keep: Tensor | None = None      # [V, h, w] pixels that own a Gaussian
        self.codes: Tensor | None = None     # [V, C, h/8, w/8] fixed latent codes
        self.matches: dict[str, Tensor] | None = None
        self._depth: Tensor | None = None    # this step's depth maps (for the consistency term)

    # -- set-up (new runs) ----------------------------------------------------------------------

    def initial_splats(self) -> torch.nn.ParameterDict:
        o, run = self.options, self.run
        views = len(run.cameras)
        rgb = self._composited_views()
        matches = sift_matches(rgb, seed=int(torch.randint(2**31 - 1, (1,),
                                                           generator=run.generator)))
        self.matches = self._match_tensors(matches)
        points = self._sparse_points(matches)
        self.z0 = torch.from_numpy(np.stack([
            interpolated_depth(run.cameras[v], points[v], o.stride, self.grid)
            for v in range(views)])).float().to(run.device)
        self.keep = (self.foreground[:, o.stride // 2::o.stride, o.stride // 2::o.stride]
                     [:, :self.grid[0], :self.grid[1]] if self.foreground is not None
                     else torch.ones_like(self.z0, dtype=torch.bool))
        self.labels = depth_layers(self.z0, self.keep, o.segments)
        code_size = [math.ceil(n / CODE_DOWNSAMPLE) for n in self.grid]
        self.codes = torch.randn(views, o.code_channels, *code_size,
                                 generator=run.generator).to(run.device)
        for decoder in (self.depth_decoder, self.opacity_decoder):
            decoder.reset(run.generator)

        colors = torch.from_numpy(np.stack(rgb)).float().to(run.device) / 255.0    # [V,H,W,3]
        colors = colors[:, o.stride // 2::o.stride, o.stride // 2::o.stride][:, :self.grid[0],
                                                                             :self.grid[1]]
        derived = self._derived()
        n = len(derived["means"])
        return splat_parameters(
            means=derived["means"].detach(),
            quats=torch.tensor([1.0, 0.0, 0.0, 0.0], device=run.device).repeat(n, 1),
            log_scales=self._footprint_scales(derived["depth"]),
            opacity_logits=derived["opacities"].detach(),
            sh0=rgb_to_sh0(colors[self.keep])[:, None, :],
            shN=torch.zeros(n, num_bases(run.max_sh_degree) - 1, 3, device=run.device))

    def _composited_views(self) -> list[np.ndarray]:
        """The training images as uint8 RGB over white (SIFT must not see the colour stored
        under zero alpha)."""
        images = self.run.images.permute(0, 2, 3, 1).float().cpu().numpy()
        if images.shape[-1] == 4:
            alpha = images[..., 3:] / 255.0
            images = images[..., :3] * alpha + 255.0 * (1.0 - alpha)
        return [np.round(im).astype(np.uint8) for im in images]

    def _match_tensors(self, matches) -> dict[str, Tensor]:
        """All matches as flat tensors, at most ``max_matches`` per pair (a seeded subset)."""
        parts: dict[str, list] = {"first": [], "second": [], "xy_first": [], "xy_second": []}
        for m in matches:
            count = len(m.xy_first)
            pick = torch.randperm(count, generator=self.run.generator)[:self.options.max_matches]
            pick = np.sort(pick.numpy())
            parts["first"].append(np.full(len(pick), m.first))
            parts["second"].append(np.full(len(pick), m.second))
            parts["xy_first"].append(m.xy_first[pick])
            parts["xy_second"].append(m.xy_second[pick])
        if not matches:
            raise CoherenceError(
                "No verified SIFT matches between the training views, so --reg coherence has no "
                "depth to start from. The views must overlap and show texture; use more views "
                "or a higher resolution, or fit without --reg coherence.")
        return {k: torch.from_numpy(np.concatenate(v)).to(self.run.device)
                for k, v in parts.items()}

    def _sparse_points(self, matches) -> list[np.ndarray]:
        """Per view, the world points its depth is interpolated from: the dataset's SfM points
        when it has some, else the matches of that view triangulated with the known poses."""
        cams, views = self.run.cameras, len(self.run.cameras)
        dataset_points = getattr(self.run.dataset, "points", None)
        if dataset_points is not None and len(dataset_points) >= MIN_POINTS_PER_VIEW:
            return [np.asarray(dataset_points, dtype=np.float64)] * views
        per_view: list[list[np.ndarray]] = [[] for _ in range(views)]
        for m in matches:
            points, good = triangulate(cams[m.first], cams[m.second], m.xy_first, m.xy_second)
            per_view[m.first].append(points[good])
            per_view[m.second].append(points[good])
        return [np.concatenate(p) if p else np.zeros((0, 3)) for p in per_view]

    # -- the Gaussians ------------------------------------------------------------------------

    def _derived(self) -> dict[str, Tensor]:
        """Depth maps [V, h, w] and the kept pixels' means [N, 3] and opacity logits [N]."""
        o = self.options
        depth_offset = _by_segment(torch.tanh(self.depth_decoder(self.codes)), self.labels,
                                   self.grid)
        opacity_offset = _by_segment(torch.tanh(self.opacity_decoder(self.codes)), self.labels,
                                     self.grid)
        depth = (self.z0 + o.depth_range * self.run.scene_scale * depth_offset)
        depth = depth.clamp_min(1e-3 * self.run.scene_scale)  # stays in front of the camera
        means = self.origins[:, None, None] + depth[..., None] * self.rays
        base = math.log(o.init_opacity / (1.0 - o.init_opacity))
        return {"depth": depth, "means": means[self.keep],
                "opacities": base + o.opacity_range * opacity_offset[self.keep]}

    def _footprint_scales(self, depth: Tensor) -> Tensor:
        """[N, 3] log-scales: scale_factor × the pixel footprint z / 2f (CoherentGS's
        tan(fov/2) z / H), × stride."""
        o = self.options
        footprint = depth.detach() * o.stride / (2.0 * self.focal[:, None, None])
        return (o.scale_factor * footprint[self.keep]).log()[:, None].repeat(1, 3)

    def strategy_active(self, step: int) -> bool:
        return False

    def needs_depth(self, step: int) -> bool:
        return True

    def renderable(self, splats: torch.nn.ParameterDict) -> Mapping[str, Tensor]:
        derived = self._derived()
        self._depth = derived["depth"]
        return with_centres(splats, derived["means"], derived["opacities"])

    def parameters(self) -> list[Tensor]:
        return [*self.depth_decoder.parameters(), *self.opacity_decoder.parameters()]

    def optimizer_step(self) -> None:
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)

    # -- losses ---------------------------------------------------------------------------------

    def loss(self, ctx: StepContext) -> Tensor:
        o = self.options
        gamma = ctx.step / max(self.run.total_steps, 1)
        labels = _upsampled(self.labels[ctx.view], self.options.stride, ctx.result.depth.shape)
        valid = self.foreground[ctx.view] if self.foreground is not None else None
        tv = disparity_tv(ctx.result.depth, labels, gamma, valid)
        consistency = match_consistency(self._depth, self.rays, self.origins, self.matches,
                                        self.options.stride) / self.run.scene_scale
        return o.tv_weight * tv + o.consistency_weight * consistency

    # -- after the step -------------------------------------------------------------------------

    @torch.no_grad()
    def after_step(self, splats: torch.nn.ParameterDict,
                   optimizers: dict[str, torch.optim.Optimizer], strategy_state: dict,
                   step: int) -> None:
        """Write the updated decoders' Gaussians into ``splats``; reset scales on schedule."""
        derived = self._derived()
        gaussians = to_gaussians(splats)
        gaussians.means.copy_(derived["means"])
        gaussians.opacity_logits.copy_(derived["opacities"])
        if (step + 1) % self.options.scale_reset_every == 0:
            gaussians.log_scales.copy_(self._footprint_scales(derived["depth"]))
            ops.zero_moments(optimizers, gaussians.log_scales)

    # -- checkpoints ----------------------------------------------------------------------------

    def state_dict(self) -> dict:
        return {"z0": self.z0, "labels": self.labels, "keep": self.keep, "codes": self.codes,
                "matches": self.matches, "depth_decoder": self.depth_decoder.state_dict(),
                "opacity_decoder": self.opacity_decoder.state_dict(),
                "optimizer": self.optimizer.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.z0, self.labels, self.keep = state["z0"], state["labels"], state["keep"]
        self.codes, self.matches = state["codes"], state["matches"]
        self.depth_decoder.load_state_dict(state["depth_decoder"])
        self.opacity_decoder.load_state_dict(state["opacity_decoder"])
        self.optimizer.load_state_dict(state["optimizer"])


# -- geometry -----------------------------------------------------------------------------------

def pixel_rays(cameras, stride: int, grid: tuple[int, int],
               device: torch.device) -> tuple[Tensor, Tensor]:
    """World ray directions [V, h, w, 3] with camera z = 1 through the centres of the stride
    blocks (pixel (i, j) of the grid looks through image point (stride·j + stride/2,
    stride·i + stride/2)), and camera centres [V, 3]."""
    rows, cols = grid
    u = stride * np.arange(cols) + stride / 2.0
    v = stride * np.arange(rows) + stride / 2.0
    uu, vv = np.meshgrid(u, v)
    rays, origins = [], []
    for cam in cameras:
        local = np.stack([(uu - cam.cx) / cam.fx, (vv - cam.cy) / cam.fy, np.ones_like(uu)], -1)
        rays.append(local @ cam.world_to_camera[:3, :3])  # Rᵀ x for each row vector x
        origins.append(cam.center)
    return (torch.from_numpy(np.stack(rays)).float().to(device),
            torch.from_numpy(np.stack(origins)).float().to(device))


def interpolated_depth(camera, points: np.ndarray, stride: int,
                       grid: tuple[int, int]) -> np.ndarray:
    """[h, w] depth of the grid's pixels from sparse world ``points`` seen by ``camera``:
    disparity 1/z interpolated linearly between the projected points (exact for planes; points
    just outside the image count too, so the borders are interpolated as well), nearest point
    outside their hull."""
    from scipy.interpolate import griddata

    uv, z = camera.project(points) if len(points) else (np.zeros((0, 2)), np.zeros(0))
    front = z > 0
    inside = front & (uv[:, 0] >= 0) & (uv[:, 0] <= camera.width) & (uv[:, 1] >= 0) & \
        (uv[:, 1] <= camera.height)
    if inside.sum() < MIN_POINTS_PER_VIEW:
        raise CoherenceError(
            f"Only {int(inside.sum())} sparse 3D point(s) fall into training view "
            f"{camera.name or '?'}; --reg coherence needs at least {MIN_POINTS_PER_VIEW} per "
            "view to start its depth. Use views that overlap more, a higher resolution, or fit "
            "without --reg coherence.")
    rows, cols = grid
    uu, vv = np.meshgrid(stride * np.arange(cols) + stride / 2.0,
                         stride * np.arange(rows) + stride / 2.0)
    disparity = griddata(uv[front], 1.0 / z[front], (uu, vv), method="linear")
    nearest = griddata(uv[front], 1.0 / z[front], (uu, vv), method="nearest")
    disparity = np.where(np.isfinite(disparity), disparity, nearest)
    return 1.0 / disparity


def depth_layers(depth: Tensor, keep: Tensor, segments: int) -> Tensor:
    """[V, h, w] long layer index 0..segments-1 of each pixel: depth quantiles of the kept
    pixels of each view, so every layer holds about as many pixels."""
    labels = torch.zeros_like(depth, dtype=torch.long)
    if segments == 1:
        return labels
    levels = torch.linspace(0, 1, segments + 1, device=depth.device)[1:-1]
    for v in range(len(depth)):
        values = depth[v][keep[v]] if keep[v].any() else depth[v].flatten()
        edges = torch.quantile(values.float(), levels)
        labels[v] = torch.bucketize(depth[v].contiguous(), edges)
    return labels


def _by_segment(channels: Tensor, labels: Tensor, grid: tuple[int, int]) -> Tensor:
    """Pick each pixel's own layer channel: [V, M, H', W'] (cropped to the grid) -> [V, h, w].
    With one-hot segment masks CoherentGS's Σ_m M_m x_m / Σ_m M_m is exactly this."""
    rows, cols = grid
    return channels[:, :, :rows, :cols].gather(1, labels[:, None])[:, 0]


def _upsampled(labels: Tensor, stride: int, shape) -> Tensor:
    """Grid labels [h, w] -> per image pixel [H, W] (each block's label; edge rows repeated)."""
    full = labels.repeat_interleave(stride, 0).repeat_interleave(stride, 1)
    height, width = shape
    pad_rows, pad_cols = max(height - full.shape[0], 0), max(width - full.shape[1], 0)
    if pad_rows or pad_cols:
        full = F.pad(full[None, None].float(), (0, pad_cols, 0, pad_rows),
                     mode="replicate")[0, 0].long()
    return full[:height, :width]


def disparity_tv(depth: Tensor, labels: Tensor, gamma: float,
                 valid: Tensor | None = None) -> Tensor:
    """TV of the disparity 1 / (depth + 1) [H, W]: the mean over horizontal and vertical pixel
    pairs of |difference|, each pair weighted (1 - γ) + γ·[same segment] (segment-aware as γ
    grows) and 0 when a pixel of the pair is not ``valid`` (e.g. transparent in the input)."""
    disparity = 1.0 / (depth + 1.0)
    total = depth.new_zeros(())
    for dim in (0, 1):
        diff = disparity.diff(dim=dim).abs()
        same = (labels.diff(dim=dim) == 0).to(depth.dtype)
        weight = (1.0 - gamma) + gamma * same
        if valid is not None:
            weight = weight * (valid.narrow(dim, 1, valid.shape[dim] - 1)
                               & valid.narrow(dim, 0, valid.shape[dim] - 1)).to(depth.dtype)
        total = total + (weight * diff).mean()
    return total


def match_consistency(depth: Tensor, rays: Tensor, origins: Tensor, matches: dict[str, Tensor],
                      stride: int) -> Tensor:
    """Mean L1 distance between the 3D points of matched pixels, each read from its own view's
    depth map [V, h, w] (bilinear in the grid) along its own ray (exactly its pixel's ray)."""
    ends = []
    for side in ("first", "second"):
        view, xy = matches[side], matches[f"xy_{side}"].to(depth.dtype)
        rows, cols = depth.shape[1:]
        # Grid cell j is centred on image x = stride·(j + ½), which align_corners=False maps to
        # 2 (j + ½) / cols - 1: so image x maps to 2 x / (stride·cols) - 1.
        norm = torch.stack([2 * xy[:, 0] / (stride * cols) - 1,
                            2 * xy[:, 1] / (stride * rows) - 1], -1)
        z = F.grid_sample(depth[view][:, None], norm[:, None, None], mode="bilinear",
                          padding_mode="border", align_corners=False)[:, 0, 0, 0]
        ends.append(origins[view] + z[:, None] * _ray_at(rays, view, xy, stride))
    return (ends[0] - ends[1]).abs().sum(-1).mean()


def _ray_at(rays: Tensor, view: Tensor, xy: Tensor, stride: int) -> Tensor:
    """The camera-z = 1 ray through image point ``xy`` of ``view``: rays are affine in the
    image coordinates, so it is extrapolated exactly from the grid's first cells."""
    origin = rays[view, 0, 0]
    du = (rays[view, 0, 1] - origin) / stride
    dv = (rays[view, 1, 0] - origin) / stride
    offset = xy - stride / 2.0
    return origin + offset[:, :1] * du + offset[:, 1:] * dv


__all__ = ["CoherenceError", "CoherenceRegularizer", "Decoder", "depth_layers", "disparity_tv",
           "interpolated_depth", "match_consistency", "pixel_rays"]
