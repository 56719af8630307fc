// Tile binning on the CPU: a counting sort of the intersections into their tiles (primitives in
// index order), then each tile's list sorted by depth in parallel. Same output as the torch
// binning's stable sort of (tile << 32 | depth bits) keys, without one global sort of M keys.
#include <algorithm>
#include <cstring>
#include <vector>

#include "../include/binning.h"

namespace recon {
namespace cpu {
namespace {

int64_t num_tiles(const BinGrid& g) { return static_cast<int64_t>(g.B) * g.tiles_x * g.tiles_y; }

// Calls visit(tile id, flat primitive id) for every intersection, primitives in index order.
template <typename Visit>
void for_each_intersection(const BinGrid& g, const int32_t* bounds, Visit visit) {
  const int64_t items = static_cast<int64_t>(g.B) * g.N;
  for (int64_t i = 0; i < items; ++i) {
    const TileRect r = tile_rect(g, bounds + 4 * i);
    const int64_t camera_tile0 = (i / g.N) * g.tiles_x * g.tiles_y;
    for (int y = r.ty0; y < r.ty0 + r.sy; ++y)
      for (int x = r.tx0; x < r.tx0 + r.sx; ++x)
        visit(camera_tile0 + static_cast<int64_t>(y) * g.tiles_x + x, i);
  }
}

}  // namespace

int64_t count_tile_intersections(const BinGrid& g, const int32_t* bounds, int64_t* tile_counts) {
  std::fill(tile_counts, tile_counts + num_tiles(g), int64_t{0});
  int64_t total = 0;
  for_each_intersection(g, bounds, [&](int64_t tile, int64_t) {
    ++tile_counts[tile];
    ++total;
  });
  return total;
}

void fill_tile_bins(const BinGrid& g, const int32_t* bounds, const float* depths,
                    const int64_t* tile_counts, int32_t* isect_prims, int32_t* tile_ranges) {
  const int64_t tiles = num_tiles(g);
  std::vector<int64_t> cursor(tiles);
  int64_t start = 0;
  for (int64_t t = 0; t < tiles; ++t) {
    cursor[t] = start;
    tile_ranges[2 * t] = static_cast<int32_t>(start);
    start += tile_counts[t];
    tile_ranges[2 * t + 1] = static_cast<int32_t>(start);
  }
  for_each_intersection(g, bounds, [&](int64_t tile, int64_t prim) {
    isect_prims[cursor[tile]++] = static_cast<int32_t>(prim);
  });
  // Visible depths are > 0, where float order is the order of the bits as unsigned integers (the
  // torch keys' low 32 bits). Each tile sorts 64-bit keys (depth bits, primitive id): the ids
  // grow along the tile's list, so equal depths keep index order as the torch stable sort does,
  // and the keys sort in place without the indirect loads and merge buffer of a stable sort.
#pragma omp parallel
  {
    std::vector<uint64_t> keys;
#pragma omp for schedule(dynamic, 16)
    for (int64_t t = 0; t < tiles; ++t) {
      int32_t* list = isect_prims + tile_ranges[2 * t];
      const int64_t count = tile_ranges[2 * t + 1] - tile_ranges[2 * t];
      keys.resize(count);
      for (int64_t i = 0; i < count; ++i) {
        uint32_t bits;
        std::memcpy(&bits, depths + list[i], sizeof bits);
        keys[i] = (static_cast<uint64_t>(bits) << 32) | static_cast<uint32_t>(list[i]);
      }
      std::sort(keys.begin(), keys.end());
      for (int64_t i = 0; i < count; ++i) list[i] = static_cast<int32_t>(keys[i] & 0xffffffffu);
    }
  }
}

}  // namespace cpu
}  // namespace recon
