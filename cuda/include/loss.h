// The fused photometric loss (1 - λ)·L1 + λ·(1 - SSIM) of the trainer (recon/train/losses.py is
// the torch reference): the per-window SSIM math, shared by the CPU loops and any device kernel.
//
// SSIM (Wang et al. 2004, the constants every 3DGS paper reports) of one 11x11 Gaussian window
// (σ 1.5) with 'valid' padding: from the blurred statistics μx, μy, E[x²], E[y²], E[xy] of the
// window, S = (2 μx μy + C1)(2 cov + C2) / ((μx² + μy² + C1)(σx² + σy² + C2)).
// Its gradient with respect to the rendered image x follows from the chain rule through the
// blur: ∂S/∂x(q) = Σ_windows w(q) [∂S/∂μx + 2 x(q) ∂S/∂E[x²] + y(q) ∂S/∂E[xy]], so the forward
// pass keeps the three partial derivatives of every window and the backward pass blurs them back
// (the transposed filter) onto the pixels.
#pragma once

#include "common.h"

namespace recon {

constexpr int SSIM_RADIUS = 5;                    // the window is 2·5 + 1 = 11 pixels wide
constexpr int SSIM_TAPS = 2 * SSIM_RADIUS + 1;
constexpr double SSIM_SIGMA = 1.5;
constexpr double SSIM_C1 = 0.01 * 0.01;           // (K1 L)², data range L = 1
constexpr double SSIM_C2 = 0.03 * 0.03;           // (K2 L)²

// The normalised 1D Gaussian taps (the 2D window is their outer product).
template <typename T>
HOST_DEVICE void ssim_taps(T* taps) {
  double g[SSIM_TAPS], total = 0.0;
  for (int i = 0; i < SSIM_TAPS; ++i) {
    const double d = (i - SSIM_RADIUS) / SSIM_SIGMA;
    g[i] = exp(-0.5 * d * d);
    total += g[i];
  }
  for (int i = 0; i < SSIM_TAPS; ++i) taps[i] = static_cast<T>(g[i] / total);
}

// SSIM of one window and its partial derivatives with respect to μx, E[x²] and E[xy] (the
// statistics that depend on the rendered image x; y is the target).
template <typename T>
struct SsimWindow {
  T value, d_mu_x, d_xx, d_xy;
};

template <typename T>
HOST_DEVICE SsimWindow<T> ssim_window(T mu_x, T mu_y, T e_xx, T e_yy, T e_xy) {
  const T c1 = static_cast<T>(SSIM_C1), c2 = static_cast<T>(SSIM_C2);
  const T a1 = T(2) * mu_x * mu_y + c1;
  const T a2 = T(2) * (e_xy - mu_x * mu_y) + c2;
  const T b1 = mu_x * mu_x + mu_y * mu_y + c1;
  const T b2 = (e_xx - mu_x * mu_x) + (e_yy - mu_y * mu_y) + c2;
  const T s = (a1 * a2) / (b1 * b2);
  // d log S = d a1/a1 + d a2/a2 - d b1/b1 - d b2/b2, with ∂a1/∂μx = 2μy, ∂a2/∂μx = -2μy,
  // ∂b1/∂μx = 2μx, ∂b2/∂μx = -2μx, ∂a2/∂E[xy] = 2, ∂b2/∂E[x²] = 1.
  SsimWindow<T> w;
  w.value = s;
  w.d_mu_x = T(2) * s * (mu_y / a1 - mu_y / a2 - mu_x / b1 + mu_x / b2);
  w.d_xx = -s / b2;
  w.d_xy = T(2) * s / a2;
  return w;
}

namespace cpu {
// image, target: [P, H, W] planes (channels of all images), H, W >= SSIM_TAPS. Writes the
// partials [3, P, H - 10, W - 10] (∂S/∂μx, ∂S/∂E[x²], ∂S/∂E[xy] of every valid window) and
// returns {Σ |x - y|, Σ S}. Defined in cuda/cpu/loss.cpp for float and double.
template <typename T>
void photometric_loss_forward(int P, int H, int W, const T* image, const T* target, T* partials,
                              double sums[2]);
// v_image [P, H, W] = ssim_scale · (blurᵀ partials · (1, 2x, y)) + l1_scale · sign(x - y).
template <typename T>
void photometric_loss_backward(int P, int H, int W, const T* image, const T* target,
                               const T* partials, T ssim_scale, T l1_scale, T* v_image);
}  // namespace cpu

}  // namespace recon
