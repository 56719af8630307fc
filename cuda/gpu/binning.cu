// Tile binning on the GPU: per-primitive tile counts, one kernel that writes every intersection's
// key and primitive id, a radix sort over only the key bits in use, and a kernel that turns the
// sorted tile ids into per-tile ranges. Same output, bit for bit, as the torch binning.
#include <cub/device/device_radix_sort.cuh>
#include <cuda_runtime.h>

#include "binning.h"

namespace recon {
namespace gpu {
namespace {

constexpr int kThreads = 256;

inline int blocks_for(int64_t n) { return static_cast<int>((n + kThreads - 1) / kThreads); }

__global__ void tile_counts_kernel(BinGrid g, const int32_t* __restrict__ bounds,
                                   int32_t* __restrict__ counts) {
  const int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (i >= static_cast<int64_t>(g.B) * g.N) return;
  const TileRect r = tile_rect(g, bounds + 4 * i);
  counts[i] = r.sx * r.sy;
}

// A thread writes the keys of its own primitive when it touches few tiles; the warp writes those
// of big primitives together (lane k takes tiles k, k + 32, ...), so one large splat does not
// hold its warp for hundreds of serial iterations.
constexpr int kSerialTiles = 8;

__device__ inline void write_tile_keys(const BinGrid& g, int64_t prim, const TileRect& r,
                                       int64_t first, uint64_t depth_bits, int k0, int dk,
                                       uint64_t* keys, int32_t* prims) {
  const uint64_t cam_tile0 = static_cast<uint64_t>(prim / g.N) * g.tiles_x * g.tiles_y;
  const int count = r.sx * r.sy;
  for (int k = k0; k < count; k += dk) {
    const uint64_t tile = cam_tile0 + static_cast<uint64_t>(r.ty0 + k / r.sx) * g.tiles_x +
                          r.tx0 + k % r.sx;
    keys[first + k] = (tile << 32) | depth_bits;
    prims[first + k] = static_cast<int32_t>(prim);
  }
}

__global__ void tile_keys_kernel(BinGrid g, const int32_t* __restrict__ bounds,
                                 const float* __restrict__ depths,
                                 const int64_t* __restrict__ ends, uint64_t* __restrict__ keys,
                                 int32_t* __restrict__ prims) {
  const int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  const bool valid = i < static_cast<int64_t>(g.B) * g.N;  // no early return: warp votes below
  TileRect r{0, 0, 0, 0};
  if (valid) r = tile_rect(g, bounds + 4 * i);
  const int count = r.sx * r.sy;
  const int64_t first = count ? ends[i] - count : 0;
  const uint64_t depth_bits = count ? __float_as_uint(depths[i]) : 0u;
  if (count > 0 && count <= kSerialTiles)
    write_tile_keys(g, i, r, first, depth_bits, 0, 1, keys, prims);
  unsigned big = __ballot_sync(0xffffffffu, count > kSerialTiles);
  const int lane = static_cast<int>(threadIdx.x) & 31;
  while (big) {
    const int src = __ffs(big) - 1;
    big &= big - 1;
    TileRect rs;
    rs.tx0 = __shfl_sync(0xffffffffu, r.tx0, src);
    rs.ty0 = __shfl_sync(0xffffffffu, r.ty0, src);
    rs.sx = __shfl_sync(0xffffffffu, r.sx, src);
    rs.sy = __shfl_sync(0xffffffffu, r.sy, src);
    const int64_t prim = __shfl_sync(0xffffffffu, i, src);
    const int64_t start = __shfl_sync(0xffffffffu, first, src);
    const uint64_t bits = __shfl_sync(0xffffffffu, depth_bits, src);
    write_tile_keys(g, prim, rs, start, bits, lane, 32, keys, prims);
  }
}

// edge(t) = first sorted index whose tile id is >= t (edge(num_tiles) = M). Intersection i owns
// the edges of the tiles in (tile[i-1], tile[i]]; the last one also those after its tile.
__global__ void tile_ranges_kernel(const uint64_t* __restrict__ keys, int64_t M, int64_t num_tiles,
                                   int32_t* __restrict__ ranges) {
  const int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (i >= M) return;
  const int64_t tile = static_cast<int64_t>(keys[i] >> 32);
  const int64_t prev = i == 0 ? -1 : static_cast<int64_t>(keys[i - 1] >> 32);
  for (int64_t t = prev + 1; t <= tile; ++t) {
    ranges[2 * t] = static_cast<int32_t>(i);
    if (t > 0) ranges[2 * t - 1] = static_cast<int32_t>(i);
  }
  if (i == M - 1) {
    for (int64_t t = tile + 1; t < num_tiles; ++t) {
      ranges[2 * t] = static_cast<int32_t>(M);
      ranges[2 * t - 1] = static_cast<int32_t>(M);
    }
    ranges[2 * num_tiles - 1] = static_cast<int32_t>(M);
  }
}

__global__ void zero_ranges_kernel(int64_t n, int32_t* __restrict__ ranges) {
  const int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (i < n) ranges[i] = 0;
}

}  // namespace

void tile_counts(const BinGrid& g, const int32_t* bounds, int32_t* counts, void* stream) {
  const int64_t n = static_cast<int64_t>(g.B) * g.N;
  if (n == 0) return;
  tile_counts_kernel<<<blocks_for(n), kThreads, 0, static_cast<cudaStream_t>(stream)>>>(
      g, bounds, counts);
}

void tile_keys(const BinGrid& g, const int32_t* bounds, const float* depths, const int64_t* ends,
               uint64_t* keys, int32_t* prims, void* stream) {
  const int64_t n = static_cast<int64_t>(g.B) * g.N;
  if (n == 0) return;
  tile_keys_kernel<<<blocks_for(n), kThreads, 0, static_cast<cudaStream_t>(stream)>>>(
      g, bounds, depths, ends, keys, prims);
}

size_t sort_pairs_scratch(int64_t n, int end_bit) {
  size_t bytes = 0;
  cub::DeviceRadixSort::SortPairs(nullptr, bytes, static_cast<const uint64_t*>(nullptr),
                                  static_cast<uint64_t*>(nullptr),
                                  static_cast<const int32_t*>(nullptr),
                                  static_cast<int32_t*>(nullptr), n, 0, end_bit);
  return bytes;
}

void sort_pairs(void* scratch, size_t scratch_bytes, const uint64_t* keys_in, uint64_t* keys_out,
                const int32_t* values_in, int32_t* values_out, int64_t n, int end_bit,
                void* stream) {
  if (n == 0) return;
  cub::DeviceRadixSort::SortPairs(scratch, scratch_bytes, keys_in, keys_out, values_in,
                                  values_out, n, 0, end_bit, static_cast<cudaStream_t>(stream));
}

void tile_ranges(const uint64_t* sorted_keys, int64_t M, int64_t num_tiles, int32_t* ranges,
                 void* stream) {
  const auto s = static_cast<cudaStream_t>(stream);
  if (M == 0) {
    if (num_tiles > 0) zero_ranges_kernel<<<blocks_for(2 * num_tiles), kThreads, 0, s>>>(
        2 * num_tiles, ranges);
    return;
  }
  tile_ranges_kernel<<<blocks_for(M), kThreads, 0, s>>>(sorted_keys, M, num_tiles, ranges);
}

}  // namespace gpu
}  // namespace recon
