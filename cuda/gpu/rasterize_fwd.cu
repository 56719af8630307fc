// CUDA forward of the tile rasterizer: one block per (camera, tile), one thread per pixel. The
// block walks its tile's depth-sorted intersections front to back in batches that its threads
// first copy into shared memory together (footprint, opacity, pixel box and, when the channel
// count is a compile-time constant, features), then every pixel blends the batch with the shared
// forward_step (cuda/include/rasterize.h). Per-pixel sums live in registers for the channel counts
// of dispatch_channels, in the output buffer otherwise.
#include <cuda_runtime.h>

#include "atomics.h"
#include "rasterize.h"

namespace recon {
namespace gpu {
namespace {

template <typename K, typename T, int CC>
__global__ void forward_kernel(ForwardArgs<T> a) {
  constexpr int BATCH = Batch<K, T, CC>::size;
  constexpr int FEATS = CC > 0 ? K::V * CC : 1;
  __shared__ T s_fp[BATCH * K::P];
  __shared__ T s_opacity[BATCH];
  __shared__ T s_feat[BATCH * FEATS];
  __shared__ T s_max_weight[BATCH];
  __shared__ int4 s_box[BATCH];
  __shared__ int s_prim[BATCH];

  const RasterParams& p = a.p;
  const PixelSlot s = pixel_slot(p, a.tile_ranges);
  const int C = CC > 0 ? CC : p.C;
  const int VC = K::V * C;
  T acc_reg[CC > 0 ? CC : 1];
  T* acc = CC > 0 ? acc_reg : a.out + static_cast<size_t>(s.pix) * C;
  if (s.inside || CC > 0) {
    for (int c = 0; c < C; ++c) acc[c] = T(0);
  }
  const T px = T(s.x) + T(0.5), py = T(s.y) + T(0.5);
  T trans = T(1);
  int last = s.start - 1, median = -1;
  bool done = !s.inside;
  const int tid = static_cast<int>(threadIdx.x);
  const int nthreads = static_cast<int>(blockDim.x);

  for (int base = s.start; base < s.end; base += BATCH) {
    // Also the barrier between the previous batch's max-weight flush and this load.
    if (__syncthreads_count(done) == nthreads) break;
    const int count = min_of(BATCH, s.end - base);
    for (int j = tid; j < count; j += nthreads) {
      const int prim = a.isect_prims[base + j];
      s_prim[j] = prim;
      const T* fp = a.params + static_cast<size_t>(prim) * K::P;
      for (int q = 0; q < K::P; ++q) s_fp[j * K::P + q] = fp[q];
      s_opacity[j] = a.opacities[prim];
      if constexpr (CC > 0) {
        const T* f = a.features + static_cast<size_t>(prim) * FEATS;
        for (int q = 0; q < FEATS; ++q) s_feat[j * FEATS + q] = f[q];
      }
      s_box[j] = a.bounds ? reinterpret_cast<const int4*>(a.bounds)[prim]
                          : make_int4(INT_MIN, INT_MIN, INT_MAX, INT_MAX);
      s_max_weight[j] = T(0);
    }
    __syncthreads();
    for (int j = 0; j < count && !done; ++j) {
      const int4 box = s_box[j];
      if (s.x < box.x || s.x >= box.z || s.y < box.y || s.y >= box.w) continue;  // α < 1/255
      const T* feat = CC > 0 ? s_feat + j * FEATS
                             : a.features + static_cast<size_t>(s_prim[j]) * VC;
      const T before = trans;
      T weight = T(0);
      const int r = forward_step<K>(s_fp + j * K::P, s_opacity[j], feat, C, px, py, trans, acc,
                                    weight);
      if (r == STEP_SATURATED) {
        done = true;
      } else if (r == STEP_BLENDED) {
        last = base + j;
        if (before >= T(MEDIAN_TRANSMITTANCE) && trans < T(MEDIAN_TRANSMITTANCE)) median = base + j;
        if (weight > s_max_weight[j]) atomic_max_nonnegative(s_max_weight + j, weight);
      }
    }
    __syncthreads();
    for (int j = tid; j < count; j += nthreads) {
      const T w = s_max_weight[j];
      const int prim = s_prim[j];
      if (w > T(0) && w > a.max_weight[prim]) atomic_max_nonnegative(a.max_weight + prim, w);
    }
  }
  if (!s.inside) return;
  if constexpr (CC > 0) {
    T* out = a.out + static_cast<size_t>(s.pix) * CC;
#pragma unroll
    for (int c = 0; c < CC; ++c) out[c] = acc_reg[c];
  }
  a.final_T[s.pix] = trans;
  a.last_idx[s.pix] = last;
  a.median_idx[s.pix] = median;
}

}  // namespace

template <typename T>
bool rasterize_forward(int kind, const ForwardArgs<T>& args, void* stream) {
  const int blocks = args.p.B * args.p.tiles_x * args.p.tiles_y;
  const int threads = threads_per_tile(args.p.tile_size);
  return dispatch_kind(kind, [&](auto kernel) {
    using K = decltype(kernel);
    if (blocks == 0) return;
    dispatch_channels<T>(args.p.C, [&](auto cc) {
      forward_kernel<K, T, decltype(cc)::value>
          <<<blocks, threads, 0, static_cast<cudaStream_t>(stream)>>>(args);
    });
  });
}

template bool rasterize_forward<float>(int, const ForwardArgs<float>&, void*);
template bool rasterize_forward<double>(int, const ForwardArgs<double>&, void*);

}  // namespace gpu
}  // namespace recon
