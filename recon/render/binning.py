"""Tile binning: every (camera, primitive, touched tile) triple becomes one intersection, sorted by
a 64-bit key (camera·tile id in the high 32 bits, the depth's float bits in the low 32), so each
tile's primitives come out contiguous and front to back. The native op ``recon::bin_tiles``
(a counting sort by tile + per-tile depth sorts on the CPU, a radix sort on a GPU) computes it;
the torch version is its reference and the fallback where the extension cannot be built. On a GPU
the only host synchronisation is reading the intersection count (to size the arrays)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass
class Bins:
    isect_prims: Tensor  # [M] int32 flat primitive index (b * N + n), sorted by (tile, depth)
    tile_ranges: Tensor  # [B * tiles_y * tiles_x, 2] int32 [start, end) into isect_prims
    tiles_x: int
    tiles_y: int


def tile_grid(width: int, height: int, tile_size: int) -> tuple[int, int]:
    return (width + tile_size - 1) // tile_size, (height + tile_size - 1) // tile_size


@torch.no_grad()
def bin_footprints(bounds: Tensor, depths: Tensor, width: int, height: int,
                   tile_size: int = 16) -> Bins:
    """Bin pixel boxes ``bounds`` [B,N,4] (int [xmin, ymin, xmax, ymax), empty = culled) with sort
    keys ``depths`` [B,N] (> 0 where visible) into tiles of ``tile_size`` pixels."""
    from recon._ops.build import NativeBuildError, load_ops

    try:
        load_ops()
    except NativeBuildError:
        return bin_footprints_torch(bounds, depths, width, height, tile_size)
    tiles_x, tiles_y = tile_grid(width, height, tile_size)
    isect_prims, tile_ranges = torch.ops.recon.bin_tiles(bounds, depths, width, height, tile_size)
    return Bins(isect_prims, tile_ranges, tiles_x, tiles_y)


@torch.no_grad()
def bin_footprints_torch(bounds: Tensor, depths: Tensor, width: int, height: int,
                         tile_size: int = 16) -> Bins:
    """The torch binning (any device): the CPU path and the reference of ``recon::bin_tiles``."""
    B, N = depths.shape
    device = depths.device
    tiles_x, tiles_y = tile_grid(width, height, tile_size)
    num_tiles = tiles_x * tiles_y
    b = bounds.reshape(B * N, 4).to(torch.int64)
    tx0 = b[:, 0].clamp(0, width) // tile_size
    ty0 = b[:, 1].clamp(0, height) // tile_size
    span_x = ((b[:, 2].clamp(0, width) + tile_size - 1) // tile_size - tx0).clamp_min(0)
    span_y = ((b[:, 3].clamp(0, height) + tile_size - 1) // tile_size - ty0).clamp_min(0)
    empty = (b[:, 2] <= b[:, 0]) | (b[:, 3] <= b[:, 1])
    counts = torch.where(empty, 0, span_x * span_y)

    ends = torch.cumsum(counts, 0)
    total = int(ends[-1]) if ends.numel() else 0  # the one host sync: sizes the arrays below
    prims = torch.repeat_interleave(torch.arange(B * N, device=device), counts,
                                    output_size=total)
    # Position of each intersection inside its primitive's tile rectangle.
    local = torch.arange(total, device=device) - (ends - counts)[prims]
    width_p = span_x[prims].clamp_min(1)
    tile = (prims // N) * num_tiles + (ty0[prims] + local // width_p) * tiles_x \
        + tx0[prims] + local % width_p

    depth_bits = depths.reshape(-1).to(torch.float32).view(torch.int32)[prims].to(torch.int64)
    keys = (tile << 32) | (depth_bits & 0xFFFFFFFF)
    keys, order = torch.sort(keys, stable=True)
    isect_prims = prims[order].to(torch.int32)

    # Each tile's [start, end) by binary search in the sorted tile ids (no bincount: that syncs).
    edges = torch.searchsorted(keys >> 32, torch.arange(B * num_tiles + 1, device=device))
    tile_ranges = torch.stack([edges[:-1], edges[1:]], -1).to(torch.int32)
    return Bins(isect_prims.contiguous(), tile_ranges.contiguous(), tiles_x, tiles_y)
