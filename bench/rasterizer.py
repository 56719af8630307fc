"""Benchmark: recon's CPU rasterizer against a CPU peer built from gsplat's pure-torch functions.

Prints one JSON line per measurement (forward and forward+backward seconds, best of repeats),
then one line per size with the speedup. The peer: gsplat's ``_fully_fused_projection`` and
``_spherical_harmonics`` + recon's torch binning + tile-padded vectorised torch compositing
(autograd backward). Both render SH degree 3 colours of the same Gaussians, RGB only.

    python bench/rasterizer.py [--sizes 256,800] [--counts 10000,100000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time

# Threads that wait at the end of each parallel region sleep instead of spinning. On a machine
# shared with other work a spinning OpenMP team waits for descheduled members at every one of the
# hundreds of small torch ops (measured: 10-20x slower runs); both contestants get the same policy.
# It must be set before torch (and its OpenMP runtime) loads.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from recon.cameras import Camera, cameras_to_tensors, look_at  # noqa: E402
from recon.primitives import Gaussians  # noqa: E402
from recon.primitives.gaussians import covariances  # noqa: E402
from recon.primitives.gaussians import project_native as project  # noqa: E402
from recon.render import render  # noqa: E402
from recon.render.binning import bin_footprints  # noqa: E402

TILE = 16
PEER_CHUNK_ELEMENTS = 1 << 23  # tiles x padded list x pixels per chunk: bounds the peer's memory


def scene(n: int, size: int, seed: int = 0):
    """n Gaussians filling a 2-unit cube, sized like a fitted scene (spacing ~ n^-1/3)."""
    gen = torch.Generator().manual_seed(seed)
    spacing = 2.0 / n ** (1 / 3)
    g = Gaussians(
        means=(torch.rand(n, 3, generator=gen) * 2 - 1),
        quats=torch.randn(n, 4, generator=gen),
        log_scales=torch.randn(n, 3, generator=gen) * 0.3 + math.log(0.5 * spacing),
        opacity_logits=torch.randn(n, generator=gen))
    sh = torch.randn(n, 16, 3, generator=gen) * 0.2
    f = 0.8 * size
    cam = Camera(size, size, f, f, size / 2, size / 2, look_at(np.array([0.0, -3.5, 1.0]),
                                                               np.zeros(3)))
    return g, sh, cam


def leaves(g: Gaussians, sh: torch.Tensor):
    ts = [t.detach().clone().requires_grad_() for t in (g.means, g.quats, g.log_scales,
                                                        g.opacity_logits, sh)]
    return Gaussians(*ts[:4]), ts[4], ts


def recon_cpu(g, sh, cam, backward: bool):
    g, sh, ts = leaves(g, sh)
    r = render(g, cam, sh, sh_degree=3, backend="cpu", depth=False, normals=False)
    if backward:
        (r.features.square().sum()).backward()
    return r.features


def peer(g, sh, cam, backward: bool):
    from gsplat.cuda._torch_impl import _fully_fused_projection, _spherical_harmonics

    g, sh, ts = leaves(g, sh)
    viewmat = torch.tensor(cam.world_to_camera, dtype=torch.float32)[None]
    K = torch.tensor(cam.K, dtype=torch.float32)[None]
    W, H = cam.width, cam.height
    radii, means2d, depths, conics, _ = _fully_fused_projection(
        g.means, covariances(g.quats, g.scales), viewmat, K, W, H)
    dirs = g.means - torch.linalg.inv(viewmat)[0, :3, 3]
    colors = (_spherical_harmonics(3, dirs, sh) + 0.5).clamp_min(0.0)
    r = radii.amax(-1)[0]
    box = torch.stack([means2d[0, :, 0] - r, means2d[0, :, 1] - r,
                       means2d[0, :, 0] + r, means2d[0, :, 1] + r], -1).detach()
    box = torch.where((r > 0)[:, None], box, torch.zeros_like(box))
    box = torch.minimum(box.clamp_min(0), torch.tensor([W, H, W, H], dtype=box.dtype))
    bins = bin_footprints(box.floor().to(torch.int32)[None], depths, W, H, TILE)
    image = _peer_composite(means2d[0], conics[0], colors, torch.sigmoid(g.opacity_logits),
                            bins, W, H)
    if backward:
        image.square().sum().backward()
    return image


def _peer_composite(means2d, conics, colors, opacities, bins, W, H):
    """Vectorised torch compositing over padded per-tile lists (3DGS rules minus early stop).
    Tiles are grouped by list length so each chunk pads only to its own longest list."""
    starts, ends = bins.tile_ranges[:, 0].long(), bins.tile_ranges[:, 1].long()
    counts = ends - starts
    ys, xs = torch.meshgrid(torch.arange(TILE), torch.arange(TILE), indexing="ij")
    num_tiles = bins.tiles_x * bins.tiles_y
    tiles = torch.arange(num_tiles)
    px = (tiles % bins.tiles_x)[:, None] * TILE + xs.reshape(1, -1) + 0.5   # [T, 256]
    py = (tiles // bins.tiles_x)[:, None] * TILE + ys.reshape(1, -1) + 0.5
    prims = bins.isect_prims.long()
    order = torch.argsort(counts, descending=True)
    pieces, done = [], 0
    while done < num_tiles:
        K = max(int(counts[order[done]]), 1)
        sel = order[done:done + max(1, PEER_CHUNK_ELEMENTS // (K * TILE * TILE))]
        done += len(sel)
        slot = torch.arange(K)
        valid = slot[None] < counts[sel, None]                               # [t, K]
        if len(prims) == 0:
            pieces.append((sel, torch.zeros(len(sel), TILE * TILE, 3)))
            continue
        idx = prims[(starts[sel, None] + slot[None]).clamp(max=len(prims) - 1)]
        m, c = means2d[idx], conics[idx]                                     # [t,K,2], [t,K,3]
        dx = px[sel, None, :] - m[..., 0:1]                                  # [t, K, 256]
        dy = py[sel, None, :] - m[..., 1:2]
        sigma = 0.5 * (c[..., 0:1] * dx * dx + c[..., 2:3] * dy * dy) + c[..., 1:2] * dx * dy
        alpha = (opacities[idx][..., None] * torch.exp(-sigma)).clamp_max(0.99)
        alpha = torch.where(valid[..., None] & (alpha >= 1 / 255), alpha, torch.zeros_like(alpha))
        trans = torch.cumprod(torch.cat([torch.ones_like(alpha[:, :1]), 1 - alpha[:, :-1]], 1), 1)
        pieces.append((sel, torch.einsum("tkp,tkc->tpc", alpha * trans, colors[idx])))
    inverse = torch.argsort(torch.cat([sel for sel, _ in pieces]))
    img = torch.cat([piece for _, piece in pieces])[inverse]
    img = img.reshape(bins.tiles_y, bins.tiles_x, TILE, TILE, 3)
    img = img.permute(0, 2, 1, 3, 4).reshape(bins.tiles_y * TILE, bins.tiles_x * TILE, 3)
    return img[:H, :W]


@torch.no_grad()
def intersection_counts(g: Gaussians, cam: Camera) -> tuple[int, int]:
    """Sorted intersections, and the pixels they cover (each primitive's box ∩ its tile): the
    number of kernel evaluations the CPU forward does before early termination."""
    viewmats, Ks = cameras_to_tensors([cam])
    fp = project(g, viewmats, Ks, cam.width, cam.height)
    bins = bin_footprints(fp.bounds, fp.depths, cam.width, cam.height, TILE)
    counts = (bins.tile_ranges[:, 1] - bins.tile_ranges[:, 0]).long()
    tile = torch.repeat_interleave(torch.arange(len(counts)), counts)
    box = fp.bounds.reshape(-1, 4)[bins.isect_prims.long()].long()
    tx, ty = (tile % bins.tiles_x) * TILE, (tile // bins.tiles_x) * TILE
    w = torch.minimum(box[:, 2], tx + TILE) - torch.maximum(box[:, 0], tx)
    h = torch.minimum(box[:, 3], ty + TILE) - torch.maximum(box[:, 1], ty)
    return int(counts.sum()), int((w.clamp_min(0) * h.clamp_min(0)).sum())


def timed(fn, repeats: int) -> float:
    fn()  # warm-up (and the JIT build for recon)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)  # the least disturbed run: the cores are shared with other work


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="256,800")
    ap.add_argument("--counts", default="10000,100000")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--peer-max-pixels-x-gaussians", type=float, default=256 * 256 * 100_000,
                    help="skip the peer above this image-pixels x Gaussians (its memory and time)")
    args = ap.parse_args()
    threads = torch.get_num_threads()
    for size in (int(s) for s in args.sizes.split(",")):
        for n in (int(c) for c in args.counts.split(",")):
            g, sh, cam = scene(n, size)
            isects, evals = intersection_counts(g, cam)
            row = {"bench": "rasterizer", "primitive": "gaussian", "n": n, "width": size,
                   "height": size, "isects": isects, "pixel_evals": evals, "threads": threads,
                   "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
                   "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY")}
            rec = {}
            for backend, fn in (("recon-cpu", recon_cpu), ("gsplat-torch-peer", peer)):
                if backend != "recon-cpu" and size * size * n > args.peer_max_pixels_x_gaussians:
                    print(json.dumps({**row, "backend": backend, "skipped":
                                      "peer too slow / memory-hungry at this size; raise "
                                      "--peer-max-pixels-x-gaussians to run it"}))
                    continue
                fwd = timed(lambda: fn(g, sh, cam, False), args.repeats)
                both = timed(lambda: fn(g, sh, cam, True), args.repeats)
                rec[backend] = (fwd, both)
                extra = {}
                if backend == "recon-cpu":
                    # Pixel-primitive evaluations of the forward pass (upper bound: pixels that
                    # saturated early skip theirs) per second per thread, the whole render().
                    extra["pixel_evals_per_s_per_core"] = round(evals / fwd / threads)
                print(json.dumps({**row, "backend": backend, "fwd_s": round(fwd, 4),
                                  "fwd_bwd_s": round(both, 4), **extra}), flush=True)
            if len(rec) == 2:
                print(json.dumps({**row, "speedup_fwd": round(rec["gsplat-torch-peer"][0] /
                                                              rec["recon-cpu"][0], 2),
                                  "speedup_fwd_bwd": round(rec["gsplat-torch-peer"][1] /
                                                           rec["recon-cpu"][1], 2)}), flush=True)


if __name__ == "__main__":
    main()
