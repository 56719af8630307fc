// The 2D Gaussian pixel kernel: k(p) = exp(-σ), σ = ½ (a dx² + c dy²) + b dx dy with d = p - μ
// and (a, b, c) the upper triangle of the inverse 2D covariance ("conic").
#pragma once

#include "common.h"

namespace recon {

struct GaussianKernel {
  // Footprint: mean x, mean y, conic a, conic b, conic c (pixels, pixel centres at i + 0.5).
  static constexpr int P = 5;
  static constexpr int V = 1;

  template <typename T>
  HOST_DEVICE static T eval(const T* fp, T px, T py, T* w) {
    const T dx = px - fp[0];
    const T dy = py - fp[1];
    const T sigma = T(0.5) * (fp[2] * dx * dx + fp[4] * dy * dy) + fp[3] * dx * dy;
    w[0] = T(1);
    // A conic that is not positive definite (σ < 0) never comes out of the projection; clamp so a
    // hand-made footprint can at worst saturate, never overflow.
    return fast_exp(-max_of(sigma, T(0)));
  }

  template <typename T>
  HOST_DEVICE static void vjp(const T* fp, T px, T py, T v_k, const T* v_w, T* v_fp) {
    T w[V];
    vjp_from_value(fp, px, py, eval(fp, px, py, w), v_k, v_w, v_fp);
  }

  // The pixels [x0, x1) of row y (centre py) where α = o·k can reach 1/255, narrowed from the
  // given range: σ ≤ τ = ln(255 o) is a quadratic in dx whose roots bound the ellipse's chord.
  // The chord is widened by a hundredth of a pixel so that rounding never drops a pixel that
  // blends; pixels it keeps below the threshold are skipped by the blending step as before.
  template <typename T>
  HOST_DEVICE static void row_span(const T* fp, T opacity, T py, int& x0, int& x1) {
    const T tau = log_of(opacity * T(1.0 / ALPHA_MIN));
    const T a = fp[2], b = fp[3], c = fp[4];
    if (!(a > T(0))) return;  // not an ellipse (hand-made footprint): keep the whole range
    const T dy = py - fp[1];
    const T disc = (b * b - a * c) * dy * dy + T(2) * a * tau;
    if (!(disc >= T(0))) {  // the row misses the ellipse
      x1 = x0;
      return;
    }
    const T root = sqrt_of(disc);
    const T centre = fp[0] - b * dy / a - T(0.5);  // x of the chord's middle, as a pixel index
    const T lo = centre - root / a - T(0.01), hi = centre + root / a + T(0.01);
    if (lo > T(x0)) x0 = min_of(x1, static_cast<int>(ceil(lo)));
    if (hi < T(x1 - 1)) x1 = max_of(x0, static_cast<int>(floor(hi)) + 1);
  }

  // The VJP given k = eval(...) (saves the exp in the rasterizer's backward).
  template <typename T>
  HOST_DEVICE static void vjp_from_value(const T* fp, T px, T py, T k, T v_k, const T* /*v_w*/,
                                         T* v_fp) {
    const T dx = px - fp[0];
    const T dy = py - fp[1];
    const T sigma = T(0.5) * (fp[2] * dx * dx + fp[4] * dy * dy) + fp[3] * dx * dy;
    if (sigma < T(0)) return;  // clamped branch of eval: constant
    const T v_sigma = -k * v_k;
    v_fp[0] += -v_sigma * (fp[2] * dx + fp[3] * dy);
    v_fp[1] += -v_sigma * (fp[3] * dx + fp[4] * dy);
    v_fp[2] += v_sigma * T(0.5) * dx * dx;
    v_fp[3] += v_sigma * dx * dy;
    v_fp[4] += v_sigma * T(0.5) * dy * dy;
  }
};

}  // namespace recon
