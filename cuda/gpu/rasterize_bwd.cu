// CUDA backward of the tile rasterizer: thread per pixel, walking its contributors back to front
// with the shared backward_step (cuda/include/rasterize.h); gradients are added atomically.
#include <cuda_runtime.h>

#include "atomics.h"
#include "rasterize.h"

namespace recon {
namespace gpu {
namespace {

template <typename K, typename T>
__global__ void backward_kernel(BackwardArgs<T> a) {
  const RasterParams& p = a.p;
  const PixelSlot s = pixel_slot(p, a.tile_ranges);
  if (!s.inside) return;
  const int pix = (s.b * p.height + s.y) * p.width + s.x;
  const int C = p.C;
  const int VC = K::V * C;
  T* S = a.scratch + static_cast<size_t>(pix) * C;  // zeroed by the caller
  const T* v_out = a.v_out + static_cast<size_t>(pix) * C;
  const T v_alpha = a.v_alpha[pix];
  const T final_T = a.final_T[pix];
  const T px = T(s.x) + T(0.5), py = T(s.y) + T(0.5);
  T trans = final_T;
  for (int i = a.last_idx[pix]; i >= s.start; --i) {
    const int prim_index = a.isect_prims[i];
    if (!in_bounds(a.bounds, prim_index, s.x, s.y)) continue;  // skipped in forward too
    const size_t prim = static_cast<size_t>(prim_index);
    backward_step<K, AtomicAdd>(a.params + prim * K::P, a.opacities[prim],
                                a.features + prim * VC, C, px, py, trans, S, v_out, v_alpha,
                                final_T, a.v_params + prim * K::P, a.v_opacities + prim,
                                a.v_features + prim * VC,
                                a.absgrad ? a.absgrad + prim * K::P : nullptr);
  }
}

}  // namespace

template <typename T>
bool rasterize_backward(int kind, const BackwardArgs<T>& args, void* stream) {
  const int blocks = args.p.B * args.p.tiles_x * args.p.tiles_y;
  const int threads = args.p.tile_size * args.p.tile_size;
  return dispatch_kind(kind, [&](auto kernel) {
    if (blocks == 0) return;
    backward_kernel<decltype(kernel), T>
        <<<blocks, threads, 0, static_cast<cudaStream_t>(stream)>>>(args);
  });
}

template bool rasterize_backward<float>(int, const BackwardArgs<float>&, void*);
template bool rasterize_backward<double>(int, const BackwardArgs<double>&, void*);

}  // namespace gpu
}  // namespace recon
