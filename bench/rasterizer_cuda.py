"""Benchmark on a CUDA GPU: recon's CUDA rasterizer against gsplat's `rasterization`.

Both render the same Gaussians (SH degree 3, RGB) into one camera and back-propagate the same
loss; each measurement is the median of ``--repeats`` runs after warm-up, with the GPU
synchronised around every run. One JSON line per measurement, then one with the ratio
recon / gsplat (below 1: recon is faster). Convex and triangle timings of recon's own kernels
follow at the same sizes.

    python bench/rasterizer_cuda.py [--sizes 800x800,1920x1080] [--counts 100000,1000000]
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import time

import numpy as np
import torch

from recon.cameras import Camera, look_at
from recon.primitives import Gaussians
from recon.render import render
from recon.render.testing import filled_cube


def camera(width: int, height: int) -> Camera:
    f = 0.8 * max(width, height)
    return Camera(width, height, f, f, width / 2, height / 2,
                  look_at(np.array([0.0, -3.5, 1.0]), np.zeros(3)))


def gaussian_scene(n: int, seed: int = 0):
    """n Gaussians filling a 2-unit cube, sized like a fitted scene, on the GPU."""
    return [t.cuda() for t in filled_cube(n, seed)]


def leaves(tensors):
    return [t.detach().clone().requires_grad_() for t in tensors]


def recon_cuda(tensors, cam, backward):
    means, quats, log_scales, logits, sh = leaves(tensors)
    r = render(Gaussians(means, quats, log_scales, logits), cam, sh, sh_degree=3,
               backend="cuda", depth=False, normals=False)
    if backward:
        r.features.square().sum().backward()


def gsplat_cuda(tensors, cam, backward):
    import gsplat

    means, quats, log_scales, logits, sh = leaves(tensors)
    viewmat = torch.tensor(cam.world_to_camera, dtype=torch.float32, device="cuda")[None]
    K = torch.tensor(cam.K, dtype=torch.float32, device="cuda")[None]
    colors, _, _ = gsplat.rasterization(means, quats, log_scales.exp(), torch.sigmoid(logits), sh,
                                        viewmat, K, cam.width, cam.height, sh_degree=3,
                                        packed=False)
    if backward:
        colors.square().sum().backward()


def convex_scene(n: int, seed: int = 0):
    from recon.primitives.convexes import Convexes

    gen = torch.Generator().manual_seed(seed)
    spacing = 2.0 / n ** (1 / 3)
    centers = torch.rand(n, 1, 3, generator=gen) * 2 - 1
    points = centers + torch.randn(n, 6, 3, generator=gen) * 0.5 * spacing
    fields = dict(points=points, log_delta=torch.full((n,), math.log(5.0)),
                  log_sigma=torch.full((n,), math.log(0.05)), opacity_logit=torch.randn(n, generator=gen))
    return Convexes, {k: v.cuda() for k, v in fields.items()}, torch.rand(n, 3, generator=gen).cuda()


def triangle_scene(n: int, seed: int = 0):
    from recon.primitives.triangles import Triangles

    gen = torch.Generator().manual_seed(seed)
    spacing = 2.0 / n ** (1 / 3)
    centers = torch.rand(n, 1, 3, generator=gen) * 2 - 1
    vertices = centers + torch.randn(n, 3, 3, generator=gen) * spacing
    fields = dict(vertices=vertices, log_sigma=torch.full((n,), math.log(1.0)),
                  opacity_logit=torch.randn(n, generator=gen))
    return Triangles, {k: v.cuda() for k, v in fields.items()}, torch.rand(n, 3, 3, generator=gen).cuda()


def recon_other(kind_scene, cam, backward):
    cls, fields, features = kind_scene
    params = {k: v.detach().clone().requires_grad_() for k, v in fields.items()}
    feats = features.detach().clone().requires_grad_()
    r = render(cls(**params), cam, feats, backend="cuda", depth=False, normals=False)
    if backward:
        r.features.square().sum().backward()


def timed(fn, repeats: int, warmup: int = 3) -> float:
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def profile(spec: str, iterations: int = 5) -> None:
    """Where recon's fwd+bwd time goes: CUDA kernels by total time, launches, host syncs."""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    size, n = spec.split(":")
    width, height = (int(v) for v in size.split("x"))
    tensors, cam = gaussian_scene(int(n)), camera(width, height)
    timed(lambda: recon_cuda(tensors, cam, True), 3)
    with torch_profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        for _ in range(iterations):
            recon_cuda(tensors, cam, True)
        torch.cuda.synchronize()
    print(prof.key_averages().table(sort_by="cuda_time_total", row_limit=25), flush=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="800x800,1920x1080")
    ap.add_argument("--counts", default="100000,1000000")
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--no-gsplat", action="store_true", help="time recon's kernels only")
    ap.add_argument("--other-counts", default="10000,100000",
                    help="convex and triangle counts (empty: skip them)")
    ap.add_argument("--profile", default="",
                    help="WxH:N: print torch.profiler's top CUDA kernels of recon fwd+bwd there")
    args = ap.parse_args()
    if args.profile:
        profile(args.profile)
        return
    device = {"device": torch.cuda.get_device_name(), "torch": torch.__version__,
              "cuda": torch.version.cuda}
    try:
        import gsplat

        device["gsplat"] = gsplat.__version__
    except ImportError:
        args.no_gsplat = True
    print(json.dumps({"bench": "rasterizer_cuda", **device}), flush=True)
    sizes = [tuple(int(v) for v in s.split("x")) for s in args.sizes.split(",")]
    for width, height in sizes:
        cam = camera(width, height)
        for n in (int(c) for c in args.counts.split(",")):
            tensors = gaussian_scene(n)
            row = {"bench": "rasterizer_cuda", "primitive": "gaussian", "n": n, "width": width,
                   "height": height, "repeats": args.repeats}
            rec = {}
            contestants = [("recon-cuda", recon_cuda)]
            if not args.no_gsplat:
                contestants.append(("gsplat-cuda", gsplat_cuda))
            for name, fn in contestants:
                fwd = timed(lambda: fn(tensors, cam, False), args.repeats)
                both = timed(lambda: fn(tensors, cam, True), args.repeats)
                rec[name] = (fwd, both)
                print(json.dumps({**row, "backend": name, "fwd_ms": round(fwd * 1e3, 3),
                                  "fwd_bwd_ms": round(both * 1e3, 3)}), flush=True)
            if len(rec) == 2:
                print(json.dumps({**row, "recon_over_gsplat_fwd": round(rec["recon-cuda"][0] /
                                                                        rec["gsplat-cuda"][0], 3),
                                  "recon_over_gsplat_fwd_bwd": round(rec["recon-cuda"][1] /
                                                                     rec["gsplat-cuda"][1], 3)}),
                      flush=True)
        for n in (int(c) for c in args.other_counts.split(",") if c):
            for kind, make in (("convex", convex_scene), ("triangle", triangle_scene)):
                data = make(n)
                fwd = timed(lambda: recon_other(data, cam, False), args.repeats)
                both = timed(lambda: recon_other(data, cam, True), args.repeats)
                print(json.dumps({"bench": "rasterizer_cuda", "primitive": kind, "n": n,
                                  "width": width, "height": height, "backend": "recon-cuda",
                                  "fwd_ms": round(fwd * 1e3, 3), "fwd_bwd_ms": round(both * 1e3, 3)}),
                      flush=True)


if __name__ == "__main__":
    main()
