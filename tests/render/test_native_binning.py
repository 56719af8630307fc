"""The native binning op ``recon::bin_tiles`` (CPU: counting sort by tile + per-tile depth sorts;
CUDA: tile counts, key writing, radix sort over the used key bits, tile ranges) against the torch
binning it replaces: identical arrays, since the rasterizer's output order (and thus every float
sum) depends on them. The CUDA cases skip without a GPU."""

from __future__ import annotations

import pytest
import torch

from recon.render.binning import bin_footprints, bin_footprints_torch

DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.gpu)]


def boxes(seed: int, B: int, N: int, width: int, height: int, max_size: int, device: str):
    """Random pixel boxes, some empty (culled), some partly or fully off-screen, with depth ties."""
    gen = torch.Generator().manual_seed(seed)
    x0 = torch.randint(-40, width + 10, (B, N), generator=gen)
    y0 = torch.randint(-40, height + 10, (B, N), generator=gen)
    w = torch.randint(-3, max_size, (B, N), generator=gen)  # <= 0: empty
    h = torch.randint(-1, max_size, (B, N), generator=gen)
    bounds = torch.stack([x0, y0, x0 + w, y0 + h], -1).to(torch.int32)
    depths = torch.rand(B, N, generator=gen) * 10 + 0.1
    depths[:, 1::7] = depths[:, :1]  # ties: broken by primitive index (stable sort)
    return bounds.to(device), depths.to(device)


@pytest.mark.parametrize("B,N,width,height,tile,max_size", [
    (1, 2000, 800, 800, 16, 120),
    (3, 500, 67, 45, 16, 40),      # partial tiles, several cameras
    (2, 3000, 1920, 1080, 16, 300),  # big boxes: many tiles per primitive
    (1, 50, 100, 60, 8, 30),
])
@pytest.mark.parametrize("device", DEVICES)
def test_native_binning_equals_torch(B, N, width, height, tile, max_size, device):
    bounds, depths = boxes(B * N + width, B, N, width, height, max_size, device)
    got = bin_footprints(bounds, depths, width, height, tile)
    want = bin_footprints_torch(bounds, depths, width, height, tile)
    assert (got.tiles_x, got.tiles_y) == (want.tiles_x, want.tiles_y)
    assert got.isect_prims.dtype == got.tile_ranges.dtype == torch.int32
    assert got.isect_prims.numel() > 0
    assert torch.equal(got.isect_prims, want.isect_prims)
    assert torch.equal(got.tile_ranges, want.tile_ranges)


@pytest.mark.parametrize("device", DEVICES)
def test_native_binning_float64_depths_match(device):
    bounds, depths = boxes(1, 2, 300, 90, 70, 40, device)
    got = bin_footprints(bounds, depths.double(), 90, 70, 16)
    want = bin_footprints_torch(bounds, depths.double(), 90, 70, 16)
    assert torch.equal(got.isect_prims, want.isect_prims)
    assert torch.equal(got.tile_ranges, want.tile_ranges)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("N", [0, 5])
def test_native_binning_without_intersections(N, device):
    bounds = torch.zeros(2, N, 4, dtype=torch.int32, device=device)  # empty boxes: all culled
    bins = bin_footprints(bounds, torch.ones(2, N, device=device), 40, 20, 16)
    assert bins.isect_prims.numel() == 0
    assert bins.tile_ranges.shape == (2 * 3 * 2, 2)
    assert int(bins.tile_ranges.abs().sum()) == 0
