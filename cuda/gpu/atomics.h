// Device-side helpers of the CUDA launchers: atomics, warp sums, the block's tile and pixel, and
// the shared-memory batch size.
#pragma once

#include <type_traits>

#include "../include/common.h"

namespace recon {
namespace gpu {

// Gradient accumulation into buffers shared by all threads (the GPU twin of PlainAdd).
struct AtomicAdd {
  template <typename T>
  HOST_DEVICE static void add(T* dst, T v) {
#ifdef __CUDA_ARCH__
    if (v != T(0)) atomicAdd(dst, v);
#else
    *dst += v;
#endif
  }
};

#ifdef __CUDACC__
// Max of non-negative values through their bit patterns (IEEE order = integer order for x >= 0).
// Works on global and shared memory.
__device__ __forceinline__ void atomic_max_nonnegative(float* dst, float v) {
  atomicMax(reinterpret_cast<int*>(dst), __float_as_int(v));
}
__device__ __forceinline__ void atomic_max_nonnegative(double* dst, double v) {
  atomicMax(reinterpret_cast<unsigned long long*>(dst),
            static_cast<unsigned long long>(__double_as_longlong(v)));
}

// Sum over the 32 lanes of a full warp; lane 0 gets the total.
template <typename T>
__device__ __forceinline__ T warp_sum(T v) {
#pragma unroll
  for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_down_sync(0xffffffffu, v, offset);
  return v;
}

// The pixel of this thread in its (camera, tile) block. Blocks have a whole number of warps
// (threads_per_tile), so threads past tile_size² exist but own no pixel (inside = false).
struct PixelSlot {
  int b, x, y, pix, start, end;
  bool inside;
};

__device__ __forceinline__ PixelSlot pixel_slot(const RasterParams& p, const int32_t* ranges) {
  const int tile = blockIdx.x;
  const int tiles = p.tiles_x * p.tiles_y;
  const int local = static_cast<int>(threadIdx.x);
  PixelSlot s;
  s.b = tile / tiles;
  const int t = tile % tiles;
  s.x = (t % p.tiles_x) * p.tile_size + local % p.tile_size;
  s.y = (t / p.tiles_x) * p.tile_size + local / p.tile_size;
  s.inside = local < p.tile_size * p.tile_size && s.x < p.width && s.y < p.height;
  s.pix = s.inside ? (s.b * p.height + s.y) * p.width + s.x : 0;
  s.start = ranges[2 * tile];
  s.end = ranges[2 * tile + 1];
  return s;
}
#endif

// Threads per block: one per pixel of the tile, rounded up to whole warps (the backward's warp
// sums need full warps).
inline int threads_per_tile(int tile_size) { return (tile_size * tile_size + 31) / 32 * 32; }

// How many sorted intersections a block stages in shared memory at once: as many as fit in
// ~40 KB given the bytes each one takes (footprint, opacity, features when their count is known
// at compile time, pixel box, primitive index and one scalar of scratch).
template <typename K, typename T, int CC>
struct Batch {
  static constexpr int bytes = (K::P + 2 + (CC > 0 ? K::V * CC : 0)) * int(sizeof(T)) + 20;
  static constexpr int size = bytes * 256 <= 40960   ? 256
                              : bytes * 128 <= 40960 ? 128
                              : bytes * 64 <= 40960  ? 64
                                                     : 32;
};

// Calls f(std::integral_constant<int, CC>) with CC = C for the channel counts that get a kernel
// with per-pixel sums in registers (RGB; RGB + depth; RGB + depth + normal), CC = 0 otherwise
// (the generic kernel, which keeps them in global memory).
template <typename T, typename F>
inline void dispatch_channels(int C, F&& f) {
  if constexpr (std::is_same<T, float>::value) {
    switch (C) {
      case 3: f(std::integral_constant<int, 3>{}); return;
      case 4: f(std::integral_constant<int, 4>{}); return;
      case 7: f(std::integral_constant<int, 7>{}); return;
      default: break;
    }
  }
  f(std::integral_constant<int, 0>{});
}

}  // namespace gpu
}  // namespace recon
