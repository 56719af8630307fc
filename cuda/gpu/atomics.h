// Device-side accumulation helpers of the CUDA launchers.
#pragma once

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

// Max of non-negative values through their bit patterns (IEEE order = integer order for x >= 0).
__device__ __forceinline__ void atomic_max_nonnegative(float* dst, float v) {
  atomicMax(reinterpret_cast<int*>(dst), __float_as_int(v));
}
__device__ __forceinline__ void atomic_max_nonnegative(double* dst, double v) {
  atomicMax(reinterpret_cast<unsigned long long*>(dst),
            static_cast<unsigned long long>(__double_as_longlong(v)));
}

// The pixel of this thread in its (camera, tile) block.
struct PixelSlot {
  int b, x, y, start, end;
  bool inside;
};

__device__ __forceinline__ PixelSlot pixel_slot(const RasterParams& p, const int32_t* ranges) {
  const int tile = blockIdx.x;
  const int tiles = p.tiles_x * p.tiles_y;
  PixelSlot s;
  s.b = tile / tiles;
  const int t = tile % tiles;
  s.x = (t % p.tiles_x) * p.tile_size + static_cast<int>(threadIdx.x) % p.tile_size;
  s.y = (t / p.tiles_x) * p.tile_size + static_cast<int>(threadIdx.x) / p.tile_size;
  s.inside = s.x < p.width && s.y < p.height;
  s.start = ranges[2 * tile];
  s.end = ranges[2 * tile + 1];
  return s;
}

}  // namespace gpu
}  // namespace recon
