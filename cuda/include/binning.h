// Tile binning shared by the OpenMP (cuda/cpu/binning.cpp) and CUDA (cuda/gpu/binning.cu) versions
// of recon::bin_tiles: which tiles a primitive's pixel box touches. Both produce, bit for bit, the
// output of recon.render.binning.bin_footprints_torch (the reference): per tile, the primitives
// whose box touches it, sorted by depth (ties by primitive index).
#pragma once

#include "common.h"

namespace recon {

struct BinGrid {
  int B, N, width, height, tile_size, tiles_x, tiles_y;
};

// The touched tile rectangle [tx0, tx0 + sx) x [ty0, ty0 + sy) of a box; empty boxes give 0 x 0.
struct TileRect {
  int tx0, ty0, sx, sy;
};

HOST_DEVICE int clamp_int(int v, int lo, int hi) { return v < lo ? lo : (v > hi ? hi : v); }

HOST_DEVICE TileRect tile_rect(const BinGrid& g, const int32_t* box) {
  const int ts = g.tile_size;
  TileRect r;
  r.tx0 = clamp_int(box[0], 0, g.width) / ts;
  r.ty0 = clamp_int(box[1], 0, g.height) / ts;
  r.sx = max_of(0, (clamp_int(box[2], 0, g.width) + ts - 1) / ts - r.tx0);
  r.sy = max_of(0, (clamp_int(box[3], 0, g.height) + ts - 1) / ts - r.ty0);
  if (box[2] <= box[0] || box[3] <= box[1]) r.sx = r.sy = 0;
  return r;
}

namespace cpu {
// Counts the intersections of every tile of every camera: tile_counts[B * tiles] (written).
// Returns their total M.
int64_t count_tile_intersections(const BinGrid& g, const int32_t* bounds, int64_t* tile_counts);
// Fills isect_prims[M] (flat primitive ids b * N + n, per tile sorted front to back) and
// tile_ranges[B * tiles, 2] = [start, end) from the counts above.
void fill_tile_bins(const BinGrid& g, const int32_t* bounds, const float* depths,
                    const int64_t* tile_counts, int32_t* isect_prims, int32_t* tile_ranges);
}  // namespace cpu
}  // namespace recon
