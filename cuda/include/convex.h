// Smooth-convex pixel kernel (3D Convex Splatting, Held et al. 2025).
//
// A convex is projected (in torch, recon/primitives/convexes.py) to the 2D hull of its points: up to
// CONVEX_MAX_LINES lines L_j(q) = n_j . q + c_j whose normals n_j are NOT normalised (their length is
// the edge length in pixels, as in 3DCS) and point outward, so L_j < 0 inside the hull. With a = d*delta
// and b = d*sigma (delta and sigma scaled by the centroid camera depth d) the kernel is
//   phi(q) = log sum_j exp_of(a L_j(q))      (a smooth max of the lines: the soft signed distance)
//   I(q)   = sigmoid(-b phi(q)).
// I = 0.5 where phi = 0 (just inside the hard hull, since LSE >= max), -> 1 deep inside, -> 0 outside.
// phi is evaluated as a*m + log sum_j exp_of(a (L_j - m)) with m = max_j L_j so no exponent is positive,
// and the sigmoid is evaluated in the form whose exponent is never positive: no overflow for any
// input. Fewer than 3 lines do not bound a region; such footprints (culled by projection anyway)
// evaluate to 0. Since phi >= a*m, I <= sigmoid(-a*b*m): where that bound is below ALPHA_MIN
// (a*b*m > log(254)) eval returns 0 without any exp. The compositor skips alpha < ALPHA_MIN
// anyway (opacity <= 1), so images and gradients are unchanged; only the work is saved on the
// wide soft tails of diffuse convexes.
//
// Footprint layout (P floats): [num_lines, a, b, n0x, n0y, c0, n1x, n1y, c1, ...] padded to 8 lines.
#pragma once

#include "common.h"

namespace recon {

#define CONVEX_MAX_LINES 8

struct ConvexKernel {
  static constexpr int MAX_LINES = CONVEX_MAX_LINES;
  static constexpr int P = 3 + 3 * MAX_LINES;
  static constexpr int V = 1;
  // log((1 - ALPHA_MIN) / ALPHA_MIN) = log(254): sigmoid(-x) < ALPHA_MIN beyond it.
  static constexpr double LOG_INV_ALPHA_MIN_ODDS = 5.537334267018537;

  template <typename T>
  HOST_DEVICE static int num_lines(const T* fp) {
    const int n = static_cast<int>(fp[0] + T(0.5));
    return n < 0 ? 0 : (n > MAX_LINES ? MAX_LINES : n);
  }

  // sigmoid(x) without overflow: exp_of() only ever sees a non-positive argument.
  template <typename T>
  HOST_DEVICE static T stable_sigmoid(T x) {
    if (x >= T(0)) return T(1) / (T(1) + exp_of(-x));
    const T e = exp_of(x);
    return e / (T(1) + e);
  }

  // Line values L_j at (px, py); returns their maximum. Requires n >= 1.
  template <typename T>
  HOST_DEVICE static T lines_at(const T* fp, int n, T px, T py, T* L) {
    T m = T(0);
    for (int j = 0; j < n; ++j) {
      const T* l = fp + 3 + 3 * j;
      L[j] = l[0] * px + l[1] * py + l[2];
      m = (j == 0 || L[j] > m) ? L[j] : m;
    }
    return m;
  }

  template <typename T>
  HOST_DEVICE static T eval(const T* fp, T px, T py, T* w) {
    w[0] = T(1);
    const int n = num_lines(fp);
    if (n < 3) return T(0);
    const T a = fp[1], b = fp[2];
    T L[MAX_LINES];
    const T m = lines_at(fp, n, px, py, L);
    if (a > T(0) && b > T(0) && a * b * m > T(LOG_INV_ALPHA_MIN_ODDS)) return T(0);
    T s = T(0);
    for (int j = 0; j < n; ++j) s += exp_of(a * (L[j] - m));
    const T phi = a * m + log_of(s);
    return stable_sigmoid(-b * phi);
  }

  // dI/dx = I (1 - I) for x = -b phi;  dphi/da = sum_j s_j L_j,  dphi/dL_j = a s_j  (s = softmax(a L)).
  // The weight (w = 1) carries no parameter, so v_w is ignored.
  template <typename T>
  HOST_DEVICE static void vjp(const T* fp, T px, T py, T v_k, const T* /*v_w*/, T* v_fp) {
    const int n = num_lines(fp);
    if (n < 3) return;
    const T a = fp[1], b = fp[2];
    T L[MAX_LINES], e[MAX_LINES];
    const T m = lines_at(fp, n, px, py, L);
    if (a > T(0) && b > T(0) && a * b * m > T(LOG_INV_ALPHA_MIN_ODDS)) return;  // eval gave 0
    T s = T(0);
    for (int j = 0; j < n; ++j) {
      e[j] = exp_of(a * (L[j] - m));
      s += e[j];
    }
    const T phi = a * m + log_of(s);
    const T I = stable_sigmoid(-b * phi);
    const T v_x = v_k * I * (T(1) - I);
    const T v_phi = -b * v_x;
    v_fp[2] += -phi * v_x;
    T mean_L = T(0);
    for (int j = 0; j < n; ++j) {
      const T soft = e[j] / s;
      mean_L += soft * L[j];
      const T v_L = v_phi * a * soft;
      T* g = v_fp + 3 + 3 * j;
      g[0] += v_L * px;
      g[1] += v_L * py;
      g[2] += v_L;
    }
    v_fp[1] += v_phi * mean_L;
  }
};

}  // namespace recon
