// CUDA forward of the tile rasterizer: thread per pixel, walking its tile's sorted primitives
// front to back with the shared forward_step (cuda/include/rasterize.h).
#include <cuda_runtime.h>

#include "atomics.h"
#include "rasterize.h"

namespace recon {
namespace gpu {
namespace {

template <typename K, typename T>
__global__ void forward_kernel(ForwardArgs<T> a) {
  const RasterParams& p = a.p;
  const PixelSlot s = pixel_slot(p, a.tile_ranges);
  if (!s.inside) return;  // no block-wide synchronisation below, so partial tiles may leave
  const int pix = (s.b * p.height + s.y) * p.width + s.x;
  const int C = p.C;
  T* acc = a.out + static_cast<size_t>(pix) * C;
  for (int c = 0; c < C; ++c) acc[c] = T(0);
  const T px = T(s.x) + T(0.5), py = T(s.y) + T(0.5);
  T trans = T(1);
  int last = s.start - 1, median = -1;
  for (int i = s.start; i < s.end; ++i) {
    const int prim = a.isect_prims[i];
    if (!in_bounds(a.bounds, prim, s.x, s.y)) continue;  // α < 1/255 outside the box
    const T before = trans;
    T weight = T(0);
    const int r = forward_step<K>(a.params + static_cast<size_t>(prim) * K::P, a.opacities[prim],
                                  a.features + static_cast<size_t>(prim) * K::V * C, C, px, py,
                                  trans, acc, weight);
    if (r == STEP_SATURATED) break;
    if (r == STEP_BLENDED) {
      last = i;
      if (before >= T(MEDIAN_TRANSMITTANCE) && trans < T(MEDIAN_TRANSMITTANCE)) median = i;
      if (weight > a.max_weight[prim]) atomic_max_nonnegative(a.max_weight + prim, weight);
    }
  }
  a.final_T[pix] = trans;
  a.last_idx[pix] = last;
  a.median_idx[pix] = median;
}

}  // namespace

template <typename T>
bool rasterize_forward(int kind, const ForwardArgs<T>& args, void* stream) {
  const int blocks = args.p.B * args.p.tiles_x * args.p.tiles_y;
  const int threads = args.p.tile_size * args.p.tile_size;
  return dispatch_kind(kind, [&](auto kernel) {
    if (blocks == 0) return;
    forward_kernel<decltype(kernel), T>
        <<<blocks, threads, 0, static_cast<cudaStream_t>(stream)>>>(args);
  });
}

template bool rasterize_forward<float>(int, const ForwardArgs<float>&, void*);
template bool rasterize_forward<double>(int, const ForwardArgs<double>&, void*);

}  // namespace gpu
}  // namespace recon
