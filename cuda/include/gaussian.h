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
