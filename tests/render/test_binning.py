"""Tile binning against a brute-force enumeration of (camera, tile, primitive) overlaps."""

from __future__ import annotations

import torch

from recon.render.binning import bin_footprints, tile_grid


def random_boxes(seed: int, B: int, N: int, width: int, height: int):
    gen = torch.Generator().manual_seed(seed)
    x0 = torch.randint(-20, width, (B, N), generator=gen)
    y0 = torch.randint(-20, height, (B, N), generator=gen)
    w = torch.randint(-3, 40, (B, N), generator=gen)  # negative / zero: empty (culled) boxes
    h = torch.randint(1, 40, (B, N), generator=gen)
    bounds = torch.stack([x0, y0, x0 + w, y0 + h], -1).clamp(0).to(torch.int32)
    bounds[..., 2] = bounds[..., 2].clamp(max=width)
    bounds[..., 3] = bounds[..., 3].clamp(max=height)
    depths = torch.rand(B, N, generator=gen) * 10 + 0.1
    return bounds, depths


def test_bins_match_brute_force():
    B, N, width, height, ts = 2, 60, 70, 45, 16
    bounds, depths = random_boxes(0, B, N, width, height)
    depths[0, 5] = depths[0, 6]  # a tie: broken by primitive index (stable sort)
    bins = bin_footprints(bounds, depths, width, height, ts)
    tiles_x, tiles_y = tile_grid(width, height, ts)
    assert (bins.tiles_x, bins.tiles_y) == (5, 3)
    ranges = bins.tile_ranges.long()
    assert ranges.shape == (B * tiles_x * tiles_y, 2)
    assert ranges[0, 0] == 0 and ranges[-1, 1] == bins.isect_prims.numel()
    assert torch.equal(ranges[1:, 0], ranges[:-1, 1])  # contiguous, in tile order
    for b in range(B):
        for ty in range(tiles_y):
            for tx in range(tiles_x):
                t = b * tiles_x * tiles_y + ty * tiles_x + tx
                got = bins.isect_prims[ranges[t, 0]:ranges[t, 1]].long()
                bx = bounds[b]
                overlap = ((bx[:, 0] < (tx + 1) * ts) & (bx[:, 2] > tx * ts)
                           & (bx[:, 1] < (ty + 1) * ts) & (bx[:, 3] > ty * ts)
                           & (bx[:, 2] > bx[:, 0]) & (bx[:, 3] > bx[:, 1]))
                ids = torch.nonzero(overlap).flatten()
                want = ids[torch.sort(depths[b, ids], stable=True).indices] + b * N
                assert torch.equal(got, want), (b, tx, ty)


def test_empty_and_culled_inputs():
    bins = bin_footprints(torch.zeros(1, 0, 4, dtype=torch.int32), torch.zeros(1, 0), 20, 20)
    assert bins.isect_prims.numel() == 0
    assert torch.all(bins.tile_ranges == 0) and bins.tile_ranges.shape == (4, 2)
    culled = torch.tensor([[[5, 5, 5, 9], [0, 0, 0, 0]]], dtype=torch.int32)
    assert bin_footprints(culled, torch.ones(1, 2), 20, 20).isect_prims.numel() == 0


def test_whole_image_primitive_hits_every_tile_once():
    bounds = torch.tensor([[[0, 0, 33, 17]]], dtype=torch.int32)
    bins = bin_footprints(bounds, torch.ones(1, 1), 33, 17, 16)
    assert bins.isect_prims.numel() == 3 * 2
    assert torch.all(bins.tile_ranges[:, 1] - bins.tile_ranges[:, 0] == 1)
