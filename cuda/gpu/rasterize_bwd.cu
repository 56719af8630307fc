// CUDA backward of the tile rasterizer: one block per (camera, tile), one thread per pixel,
// walking the tile's intersections back to front in shared-memory batches (as the forward) with
// the shared backward_step (cuda/include/rasterize.h).
//
// Gradient accumulation is where a naive kernel spends its time: every pixel of a tile adds into
// the same primitive's gradient. With a compile-time channel count (dispatch_channels) each thread
// computes its contribution into registers, the warp sums them with shuffles and one lane adds
// the warp's total atomically (32x fewer atomics, skipped entirely when no lane of the warp was
// touched). Other channel counts use the generic kernel: per-pixel atomics, sums in global memory.
#include <cuda_runtime.h>

#include "atomics.h"
#include "rasterize.h"

namespace recon {
namespace gpu {
namespace {

// Stages intersections [top - count + 1, top] of the tile, highest first, into shared memory.
template <typename K, typename T, int FEATS, bool WITH_FEATS>
__device__ __forceinline__ void stage_batch(const BackwardArgs<T>& a, int top, int count,
                                            T* s_fp, T* s_opacity, T* s_feat, int4* s_box,
                                            int* s_prim) {
  const int nthreads = static_cast<int>(blockDim.x);
  for (int j = static_cast<int>(threadIdx.x); j < count; j += nthreads) {
    const int prim = a.isect_prims[top - j];
    s_prim[j] = prim;
    const T* fp = a.params + static_cast<size_t>(prim) * K::P;
    for (int q = 0; q < K::P; ++q) s_fp[j * K::P + q] = fp[q];
    s_opacity[j] = a.opacities[prim];
    if constexpr (WITH_FEATS) {
      const T* f = a.features + static_cast<size_t>(prim) * FEATS;
      for (int q = 0; q < FEATS; ++q) s_feat[j * FEATS + q] = f[q];
    }
    s_box[j] = a.bounds ? reinterpret_cast<const int4*>(a.bounds)[prim]
                        : make_int4(INT_MIN, INT_MIN, INT_MAX, INT_MAX);
  }
}

// The highest last-contributor index of the block's pixels (start - 1: nothing to do).
__device__ __forceinline__ int block_last(int last, int* s_last) {
  if (threadIdx.x == 0) *s_last = INT_MIN;
  __syncthreads();
  atomicMax(s_last, last);
  __syncthreads();
  return *s_last;
}

template <typename K, typename T, int CC>
__global__ void backward_kernel(BackwardArgs<T> a) {
  constexpr int BATCH = Batch<K, T, CC>::size;
  constexpr int FEATS = CC > 0 ? K::V * CC : 1;
  __shared__ T s_fp[BATCH * K::P];
  __shared__ T s_opacity[BATCH];
  __shared__ T s_feat[BATCH * FEATS];
  __shared__ int4 s_box[BATCH];
  __shared__ int s_prim[BATCH];
  __shared__ int s_last;

  const RasterParams& p = a.p;
  const PixelSlot s = pixel_slot(p, a.tile_ranges);
  const int C = CC > 0 ? CC : p.C;
  const int VC = K::V * C;
  const int last = s.inside ? a.last_idx[s.pix] : s.start - 1;
  const T final_T = s.inside ? a.final_T[s.pix] : T(1);
  const T v_alpha = s.inside ? a.v_alpha[s.pix] : T(0);
  const T px = T(s.x) + T(0.5), py = T(s.y) + T(0.5);
  // Features behind (S) and the output cotangent: registers, or global memory (generic kernel).
  T S_reg[CC > 0 ? CC : 1], v_out_reg[CC > 0 ? CC : 1];
  T* S = CC > 0 ? S_reg : a.scratch + static_cast<size_t>(s.pix) * C;  // scratch zeroed by caller
  const T* v_out = CC > 0 ? v_out_reg : a.v_out + static_cast<size_t>(s.pix) * C;
  if constexpr (CC > 0) {
#pragma unroll
    for (int c = 0; c < CC; ++c) {
      S_reg[c] = T(0);
      v_out_reg[c] = s.inside ? a.v_out[static_cast<size_t>(s.pix) * CC + c] : T(0);
    }
  }
  T trans = final_T;
  const int top_of_block = block_last(last, &s_last);
  const bool want_abs = a.absgrad != nullptr;
  const int lane = static_cast<int>(threadIdx.x) & 31;

  for (int top = top_of_block; top >= s.start; top -= BATCH) {
    const int count = min_of(BATCH, top - s.start + 1);
    __syncthreads();  // the previous batch is no longer read
    stage_batch<K, T, FEATS, (CC > 0)>(a, top, count, s_fp, s_opacity, s_feat, s_box, s_prim);
    __syncthreads();
    for (int j = 0; j < count; ++j) {
      const int i = top - j;
      const int4 box = s_box[j];
      const bool active = s.inside && i <= last && s.x >= box.x && s.x < box.z && s.y >= box.y &&
                          s.y < box.w;
      const size_t prim = static_cast<size_t>(s_prim[j]);
      if constexpr (CC > 0) {
        T g_fp[K::P], g_abs[K::P], g_feat[FEATS], g_opacity = T(0);
#pragma unroll
        for (int q = 0; q < K::P; ++q) g_fp[q] = g_abs[q] = T(0);
#pragma unroll
        for (int q = 0; q < FEATS; ++q) g_feat[q] = T(0);
        bool hit = false;
        if (active) {
          hit = backward_step<K, PlainAdd>(s_fp + j * K::P, s_opacity[j], s_feat + j * FEATS, CC,
                                           px, py, trans, S, v_out, v_alpha, final_T, g_fp,
                                           &g_opacity, g_feat, want_abs ? g_abs : nullptr);
        }
        if (!__any_sync(0xffffffffu, hit)) continue;  // warp-uniform
#pragma unroll
        for (int q = 0; q < K::P; ++q) g_fp[q] = warp_sum(g_fp[q]);
#pragma unroll
        for (int q = 0; q < FEATS; ++q) g_feat[q] = warp_sum(g_feat[q]);
        g_opacity = warp_sum(g_opacity);
        if (want_abs) {
#pragma unroll
          for (int q = 0; q < K::P; ++q) g_abs[q] = warp_sum(g_abs[q]);
        }
        if (lane == 0) {
#pragma unroll
          for (int q = 0; q < K::P; ++q) AtomicAdd::add(a.v_params + prim * K::P + q, g_fp[q]);
#pragma unroll
          for (int q = 0; q < FEATS; ++q) AtomicAdd::add(a.v_features + prim * FEATS + q, g_feat[q]);
          AtomicAdd::add(a.v_opacities + prim, g_opacity);
          if (want_abs) {
#pragma unroll
            for (int q = 0; q < K::P; ++q) AtomicAdd::add(a.absgrad + prim * K::P + q, g_abs[q]);
          }
        }
      } else {
        if (!active) continue;
        backward_step<K, AtomicAdd>(s_fp + j * K::P, s_opacity[j], a.features + prim * VC, C, px,
                                    py, trans, S, v_out, v_alpha, final_T,
                                    a.v_params + prim * K::P, a.v_opacities + prim,
                                    a.v_features + prim * VC,
                                    want_abs ? a.absgrad + prim * K::P : nullptr);
      }
    }
  }
}

}  // namespace

template <typename T>
bool rasterize_backward(int kind, const BackwardArgs<T>& args, void* stream) {
  const int blocks = args.p.B * args.p.tiles_x * args.p.tiles_y;
  const int threads = threads_per_tile(args.p.tile_size);
  return dispatch_kind(kind, [&](auto kernel) {
    using K = decltype(kernel);
    if (blocks == 0) return;
    dispatch_channels<T>(args.p.C, [&](auto cc) {
      backward_kernel<K, T, decltype(cc)::value>
          <<<blocks, threads, 0, static_cast<cudaStream_t>(stream)>>>(args);
    });
  });
}

template bool rasterize_backward<float>(int, const BackwardArgs<float>&, void*);
template bool rasterize_backward<double>(int, const BackwardArgs<double>&, void*);

}  // namespace gpu
}  // namespace recon
