// The generic compositing math of the tile rasterizer, shared by the OpenMP launcher
// (cuda/cpu/rasterize.cpp) and the CUDA kernels (cuda/gpu/): one front-to-back blending step and
// its back-to-front adjoint per (pixel, primitive), templated on the scalar type and the pixel
// kernel, plus the one switch that maps a kind number to a kernel type.
//
// Data layout (all row-major, contiguous):
//   params      [B, N, P]      footprint the kernel reads
//   opacities   [B, N]
//   features    [B, N, V, C]   per-vertex features; the pixel feature is Σ_v w_v(p) f_v
//   isect_prims [M] int32      flat primitive index (b * N + n) of each depth-sorted intersection
//   tile_ranges [B * tiles, 2] int32 [start, end) into isect_prims of each (camera, tile)
//   bounds      [B, N, 4] int32 pixel box [xmin, ymin, xmax, ymax) outside which the primitive
//               has α < 1/255 (optional: nullptr evaluates every pixel of each touched tile)
//   out         [B, H, W, C]   Σ_i α_i T_i f_i(p) (no background: render() adds it in torch)
//   final_T     [B, H, W]      transmittance after the last contributor
//   last_idx    [B, H, W]      sorted intersection index of the last contributor (start - 1: none)
//   median_idx  [B, H, W]      sorted intersection index where T first drops below ½ (-1: never)
//   max_weight  [B, N]         largest blending weight α T of each primitive over all pixels
#pragma once

#include <type_traits>

#include "common.h"
#include "gaussian.h"
#if __has_include("convex.h")
#include "convex.h"
#define RECON_HAS_CONVEX 1
#endif
#if __has_include("triangle.h")
#include "triangle.h"
#define RECON_HAS_TRIANGLE 1
#endif

namespace recon {

// Calls f(Kernel{}) with the kernel type of `kind`; returns false for an unknown kind. This is the
// only place the primitive kinds are enumerated natively.
template <typename F>
inline bool dispatch_kind(int kind, F&& f) {
  switch (kind) {
    case KIND_GAUSSIAN: f(GaussianKernel{}); return true;
#ifdef RECON_HAS_CONVEX
    case KIND_CONVEX: f(ConvexKernel{}); return true;
#endif
#ifdef RECON_HAS_TRIANGLE
    case KIND_TRIANGLE: f(TriangleKernel{}); return true;
#endif
    default: return false;
  }
}

// How a backward step adds into shared gradient buffers: plainly on the CPU (each buffer row is
// owned by one thread), with atomics on the GPU.
struct PlainAdd {
  template <typename T>
  HOST_DEVICE static void add(T* dst, T v) { *dst += v; }
};

// A pixel rectangle [x0, x1) x [y0, y1).
struct PixelRect {
  int x0, y0, x1, y1;
};

// The part of `tile` a primitive can reach: the tile clipped by the primitive's pixel box.
HOST_DEVICE PixelRect clip_to_bounds(PixelRect tile, const int32_t* bounds, int prim) {
  if (!bounds) return tile;
  const int32_t* b = bounds + 4 * static_cast<size_t>(prim);
  return PixelRect{max_of(tile.x0, static_cast<int>(b[0])), max_of(tile.y0, static_cast<int>(b[1])),
                   min_of(tile.x1, static_cast<int>(b[2])), min_of(tile.y1, static_cast<int>(b[3]))};
}

HOST_DEVICE bool in_bounds(const int32_t* bounds, int prim, int x, int y) {
  if (!bounds) return true;
  const int32_t* b = bounds + 4 * static_cast<size_t>(prim);
  return x >= b[0] && x < b[2] && y >= b[1] && y < b[3];
}

// A kernel may also offer vjp_from_value(fp, px, py, k, v_k, v_w, v_fp): the VJP given the value
// k that eval returned, so backward does not recompute it (the Gaussian's exp). Optional.
template <typename K, typename T, typename = void>
struct HasVjpFromValue : std::false_type {};
template <typename K, typename T>
struct HasVjpFromValue<K, T, std::void_t<decltype(K::template vjp_from_value<T>(
                                 std::declval<const T*>(), T(), T(), T(), T(),
                                 std::declval<const T*>(), std::declval<T*>()))>>
    : std::true_type {};

// A kernel may also offer row_span(fp, opacity, py, x0, x1): narrows the pixel range [x0, x1) of
// the row with centre py to where α = opacity·k can reach ALPHA_MIN (the Gaussian's ellipse
// chord), so the CPU launcher skips pixels that cannot blend. Optional.
template <typename K, typename T, typename = void>
struct HasRowSpan : std::false_type {};
template <typename K, typename T>
struct HasRowSpan<K, T, std::void_t<decltype(K::template row_span<T>(
                            std::declval<const T*>(), T(), T(), std::declval<int&>(),
                            std::declval<int&>()))>> : std::true_type {};

template <typename K, typename T>
HOST_DEVICE void narrow_row(const T* fp, T opacity, int y, int& x0, int& x1) {
  if constexpr (HasRowSpan<K, T>::value) K::template row_span<T>(fp, opacity, T(y) + T(0.5), x0, x1);
}

enum StepResult { STEP_SKIPPED = 0, STEP_BLENDED = 1, STEP_SATURATED = 2 };

// One front-to-back blending step at a pixel where the primitive's kernel value is k with
// interpolation weights w[V] (from K::eval). `trans` is the pixel's transmittance before the
// primitive and is updated; `acc[C]` accumulates features; `weight` receives α T when blended.
// A step that would drop T below TRANSMITTANCE_MIN is not blended and ends the pixel (the 3DGS
// rule), which backward reproduces through last_idx.
template <typename K, typename T>
HOST_DEVICE int blend_step(T k, const T* w, T opacity, const T* feat, int C, T& trans, T* acc,
                           T& weight) {
  const T alpha = min_of(T(ALPHA_MAX), opacity * k);
  if (!(alpha >= T(ALPHA_MIN))) return STEP_SKIPPED;  // also skips NaN
  const T next = trans * (T(1) - alpha);
  if (next < T(TRANSMITTANCE_MIN)) return STEP_SATURATED;
  weight = alpha * trans;
  for (int c = 0; c < C; ++c) {
    T f = T(0);
    for (int v = 0; v < K::V; ++v) f += w[v] * feat[v * C + c];
    acc[c] += weight * f;
  }
  trans = next;
  return STEP_BLENDED;
}

// blend_step after evaluating primitive (fp, opacity, feat[V*C]) at pixel centre (px, py).
template <typename K, typename T>
HOST_DEVICE int forward_step(const T* fp, T opacity, const T* feat, int C, T px, T py, T& trans,
                             T* acc, T& weight) {
  T w[K::V];
  const T k = K::template eval<T>(fp, px, py, w);
  return blend_step<K>(k, w, opacity, feat, C, trans, acc, weight);
}

// The adjoint of blend_step, visited back-to-front over a pixel's contributors, given the
// kernel value k and weights w[V] that forward saw at (px, py).
//   trans   in: T after this primitive; out: T before it (divided back out, as in 3DGS)
//   S[C]    in/out: features of everything behind, normalised by the T after this primitive
//   v_out[C], v_alpha: the pixel's output cotangents (v_alpha for alpha = 1 - final_T)
// Adds dL/d(fp, opacity, feat) through Add; with abs_fp, also Σ_pixels |dL/dfp| (absgrad).
// Returns false when the primitive was skipped at this pixel in forward (α < ALPHA_MIN).
template <typename K, typename Add, typename T>
HOST_DEVICE bool backward_blend_step(const T* fp, T k, const T* w, T opacity, const T* feat,
                                     int C, T px, T py, T& trans, T* S, const T* v_out,
                                     T v_alpha, T final_T, T* v_fp, T* v_opacity, T* v_feat,
                                     T* abs_fp) {
  const T raw = opacity * k;
  const T alpha = min_of(T(ALPHA_MAX), raw);
  if (!(alpha >= T(ALPHA_MIN))) return false;
  const T one_minus = T(1) - alpha;
  const T t_before = trans / one_minus;
  const T weight = alpha * t_before;
  T v_a = v_alpha * final_T / one_minus;  // alpha_out = 1 - Π(1 - α_j)
  T v_w[K::V];
  for (int v = 0; v < K::V; ++v) v_w[v] = T(0);
  for (int c = 0; c < C; ++c) {
    T f = T(0);
    for (int v = 0; v < K::V; ++v) {
      const T fv = feat[v * C + c];
      f += w[v] * fv;
      v_w[v] += weight * v_out[c] * fv;
      Add::add(v_feat + v * C + c, weight * w[v] * v_out[c]);
    }
    v_a += v_out[c] * t_before * (f - S[c]);
    S[c] = alpha * f + one_minus * S[c];
  }
  trans = t_before;
  // The clamp at ALPHA_MAX has zero gradient (as in 3DGS); the interpolation weights still do.
  const T v_k = raw < T(ALPHA_MAX) ? v_a * opacity : T(0);
  if (raw < T(ALPHA_MAX)) Add::add(v_opacity, v_a * k);
  T g[K::P];
  for (int j = 0; j < K::P; ++j) g[j] = T(0);
  if constexpr (HasVjpFromValue<K, T>::value) {
    K::template vjp_from_value<T>(fp, px, py, k, v_k, v_w, g);
  } else {
    K::template vjp<T>(fp, px, py, v_k, v_w, g);
  }
  for (int j = 0; j < K::P; ++j) {
    Add::add(v_fp + j, g[j]);
    if (abs_fp) Add::add(abs_fp + j, abs_of(g[j]));
  }
  return true;
}

// backward_blend_step after evaluating the primitive at pixel centre (px, py).
template <typename K, typename Add, typename T>
HOST_DEVICE bool backward_step(const T* fp, T opacity, const T* feat, int C, T px, T py, T& trans,
                               T* S, const T* v_out, T v_alpha, T final_T, T* v_fp, T* v_opacity,
                               T* v_feat, T* abs_fp) {
  T w[K::V];
  const T k = K::template eval<T>(fp, px, py, w);
  return backward_blend_step<K, Add>(fp, k, w, opacity, feat, C, px, py, trans, S, v_out,
                                     v_alpha, final_T, v_fp, v_opacity, v_feat, abs_fp);
}

// Inputs and outputs of one forward launch (raw pointers; sizes in `p`).
template <typename T>
struct ForwardArgs {
  RasterParams p;
  const T* params;
  const T* opacities;
  const T* features;
  const int32_t* bounds;  // [B*N, 4] or nullptr
  const int32_t* isect_prims;
  const int32_t* tile_ranges;
  T* out;
  T* final_T;
  int32_t* last_idx;
  int32_t* median_idx;
  T* max_weight;      // [B*N], zero-initialised by the caller
  T* isect_weight;    // [M] scratch (CPU: per-intersection max weight, reduced in order)
};

// Inputs and outputs of one backward launch.
template <typename T>
struct BackwardArgs {
  RasterParams p;
  const T* params;
  const T* opacities;
  const T* features;
  const int32_t* bounds;  // [B*N, 4] or nullptr
  const int32_t* isect_prims;
  const int32_t* tile_ranges;
  const T* final_T;
  const int32_t* last_idx;
  const T* v_out;     // [B, H, W, C]
  const T* v_alpha;   // [B, H, W]
  T* v_params;        // [B*N, P]     zero-initialised
  T* v_opacities;     // [B*N]        zero-initialised
  T* v_features;      // [B*N, V*C]   zero-initialised
  T* absgrad;         // [B*N, P] or nullptr
  T* scratch;         // CPU: [M, P + 1 + V*C (+ P with absgrad)] zeroed; GPU: [B, H, W, C]
};

namespace cpu {
// Return false for an unknown kind. Defined in cuda/cpu/rasterize.cpp for float and double.
template <typename T> bool rasterize_forward(int kind, const ForwardArgs<T>& args);
template <typename T> bool rasterize_backward(int kind, const BackwardArgs<T>& args);
// Floats per intersection the CPU backward needs in `scratch`.
int backward_scratch_stride(int kind, int C, bool absgrad);
// Footprint size P and vertex count V of a kind (0 when unknown).
int kernel_params(int kind);
int kernel_vertices(int kind);
}  // namespace cpu

}  // namespace recon
