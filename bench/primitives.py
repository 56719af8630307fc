"""Benchmark: convex and triangle rendering, recon's CPU rasterizer against the torch reference,
or against Gaussians of the same count.

Prints one JSON line per measurement (forward and forward+backward seconds, median of repeats;
the whole render(): projection, binning, compositing, RGB + depth + normals), then one line per
case with the speedup. The reference is recon's dense pure-torch rasterizer (every primitive at
every pixel, autograd backward); its memory grows with pixels x primitives, so it only runs below
``--reference-max-pixels-x-prims`` and prints a ``skipped`` line elsewhere.

With ``--versus gaussian`` the peer is instead recon's CPU rasterizer on as many Gaussians (the
scene of bench/rasterizer.py: sized like a fitted scene, as the convexes and triangles here), and
the case line gives ``ratio_fwd`` / ``ratio_fwd_bwd`` = primitive time / Gaussian time. The two
are timed alternately, so load from other work on the machine hits both alike.

    python bench/primitives.py [--sizes 128,256] [--counts 1000,10000] [--repeats 3]
    python bench/primitives.py --versus gaussian --primitives convex --sizes 256 \
        --counts 10000,100000
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import time

# As bench/rasterizer.py: threads that finish a parallel region sleep instead of spinning, which
# keeps timings sane on a machine shared with other work (both contestants get the same policy).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from recon.cameras import Camera, cameras_to_tensors, look_at  # noqa: E402
from recon.primitives import Convexes, Triangles  # noqa: E402
from recon.primitives.base import ops_for  # noqa: E402
from recon.render import render  # noqa: E402
from recon.render.binning import bin_footprints  # noqa: E402

TILE = 16


def camera(size: int) -> Camera:
    f = 0.8 * size
    return Camera(size, size, f, f, size / 2, size / 2,
                  look_at(np.array([0.0, -3.5, 1.0]), np.zeros(3)))


def convex_scene(n: int, seed: int = 0):
    """n convexes filling a 2-unit cube: 6 points about each centre, δ = 0.1 / spacing (3DCS's
    initial δ), σ = 0.05, opacity 0.1 (spacing ~ n^-1/3 as in a fitted scene). 3DCS starts from
    σ = 0.001, but its edges span tens of pixels; at 128-256 px the convexes here are a few
    pixels wide, and σ = 0.001 would leave every one a diffuse blob over the whole image."""
    gen = torch.Generator().manual_seed(seed)
    spacing = 2.0 / n ** (1 / 3)
    centres = torch.rand(n, 1, 3, generator=gen) * 2 - 1
    prims = Convexes(
        points=centres + 0.6 * spacing * torch.randn(n, 6, 3, generator=gen),
        log_delta=torch.full((n,), math.log(0.1 / spacing)),
        log_sigma=torch.full((n,), math.log(0.05)),
        opacity_logit=torch.full((n,), math.log(0.1 / 0.9)),
    )
    return prims, torch.rand(n, 3, generator=gen)


def triangle_scene(n: int, seed: int = 0):
    """n triangles with the Triangle Splatting initialisation scale (vertices ~ spacing from the
    centre, σ = 1.16, opacity 0.28) and per-vertex colours."""
    gen = torch.Generator().manual_seed(seed)
    spacing = 2.0 / n ** (1 / 3)
    centres = torch.rand(n, 1, 3, generator=gen) * 2 - 1
    prims = Triangles(
        vertices=centres + spacing * torch.randn(n, 3, 3, generator=gen),
        log_sigma=torch.full((n,), math.log(1.16)),
        opacity_logit=torch.full((n,), math.log(0.28 / 0.72)),
    )
    return prims, torch.rand(n, 3, 3, generator=gen)


def gaussian_scene(n: int, seed: int = 0):
    """n Gaussians as in bench/rasterizer.py (σ ~ half the spacing), with RGB features."""
    from rasterizer import scene  # bench/ is the script's folder, so on sys.path

    gaussians, _, _ = scene(n, 256, seed)
    return gaussians, torch.rand(n, 3, generator=torch.Generator().manual_seed(seed))


SCENES = {"convex": convex_scene, "triangle": triangle_scene, "gaussian": gaussian_scene}


def run(prims, features, cam: Camera, backend: str, backward: bool) -> None:
    leaves = {k: v.detach().clone().requires_grad_() for k, v in vars(prims).items()}
    feats = features.detach().clone().requires_grad_()
    r = render(type(prims)(**leaves), cam, feats, backend=backend)
    if backward:
        (r.features.square().sum() + r.depth.sum()).backward()


def timed(fn, repeats: int) -> float:
    return timed_alternately([fn], repeats)[0]


def timed_alternately(fns, repeats: int) -> list[float]:
    """Median seconds of each function, run in turn ``repeats`` times after one warm-up each (the
    first also builds recon's extension)."""
    for fn in fns:
        fn()
    times = [[] for _ in fns]
    for _ in range(repeats):
        for fn, ts in zip(fns, times):
            t0 = time.perf_counter()
            fn()
            ts.append(time.perf_counter() - t0)
    return [statistics.median(ts) for ts in times]


def intersections(prims, cam: Camera) -> int:
    with torch.no_grad():
        vm, Ks = cameras_to_tensors([cam])
        fp = ops_for(prims).project(prims, vm, Ks, cam.width, cam.height)
        return int(bin_footprints(fp.bounds, fp.depths, cam.width, cam.height,
                                  TILE).isect_prims.numel())


def versus(kind: str, peer: str, size: int, n: int, repeats: int, threads: int) -> None:
    """recon-cpu on ``kind`` against recon-cpu on ``peer`` primitives of the same count."""
    cam = camera(size)
    rows, fns = [], []
    for name in (kind, peer):
        prims, features = SCENES[name](n)
        rows.append({"bench": "primitives", "primitive": name, "n": n, "width": size,
                     "height": size, "isects": intersections(prims, cam), "threads": threads,
                     "backend": "recon-cpu"})
        fns += [lambda p=prims, f=features: run(p, f, cam, "cpu", False),
                lambda p=prims, f=features: run(p, f, cam, "cpu", True)]
    own_fwd, own_both, peer_fwd, peer_both = timed_alternately(fns, repeats)
    for row, fwd, both in zip(rows, (own_fwd, peer_fwd), (own_both, peer_both)):
        print(json.dumps({**row, "fwd_s": round(fwd, 4), "fwd_bwd_s": round(both, 4)}),
              flush=True)
    print(json.dumps({"bench": "primitives", "primitive": kind, "versus": peer, "n": n,
                      "width": size, "height": size, "threads": threads,
                      "ratio_fwd": round(own_fwd / peer_fwd, 2),
                      "ratio_fwd_bwd": round(own_both / peer_both, 2)}), flush=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--primitives", default="convex,triangle")
    ap.add_argument("--sizes", default="128,256")
    ap.add_argument("--counts", default="1000,10000")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--versus", choices=["reference", "gaussian"], default="reference",
                    help="the peer: the dense torch reference, or recon-cpu on as many Gaussians")
    ap.add_argument("--reference-max-pixels-x-prims", type=float, default=128 * 128 * 1000,
                    help="skip the dense torch reference above this image-pixels x primitives")
    args = ap.parse_args()
    threads = torch.get_num_threads()
    for kind in args.primitives.split(","):
        for size in (int(s) for s in args.sizes.split(",")):
            for n in (int(c) for c in args.counts.split(",")):
                if args.versus == "gaussian":
                    versus(kind, "gaussian", size, n, args.repeats, threads)
                    continue
                prims, features = SCENES[kind](n)
                cam = camera(size)
                row = {"bench": "primitives", "primitive": kind, "n": n, "width": size,
                       "height": size, "isects": intersections(prims, cam), "threads": threads}
                rec = {}
                for name, backend in (("recon-cpu", "cpu"), ("torch-reference", "torch")):
                    if backend == "torch" and size * size * n > args.reference_max_pixels_x_prims:
                        print(json.dumps({**row, "backend": name, "skipped":
                                          "dense reference memory grows with pixels x "
                                          "primitives; raise --reference-max-pixels-x-prims"}))
                        continue
                    fwd = timed(lambda: run(prims, features, cam, backend, False), args.repeats)
                    both = timed(lambda: run(prims, features, cam, backend, True), args.repeats)
                    rec[name] = (fwd, both)
                    print(json.dumps({**row, "backend": name, "fwd_s": round(fwd, 4),
                                      "fwd_bwd_s": round(both, 4)}), flush=True)
                if len(rec) == 2:
                    ref, own = rec["torch-reference"], rec["recon-cpu"]
                    print(json.dumps({**row, "speedup_fwd": round(ref[0] / own[0], 2),
                                      "speedup_fwd_bwd": round(ref[1] / own[1], 2)}), flush=True)


if __name__ == "__main__":
    main()
