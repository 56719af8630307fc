// Smooth-convex pixel kernel (3D Convex Splatting, Held et al. 2025).
//
// A convex is projected (recon/primitives/convexes.py, natively convex_project.h) to the 2D hull of its points: up to
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

  // exp(z) below this adds less than half an ulp to the log-sum-exp's sum (which is >= 1 once the
  // maximal line is in): such lines are left out of the sum, saving most of the exps away from
  // the corners, where one line dominates. exp(-17) < 2^-24, exp(-38) < 2^-53.
  template <typename T>
  HOST_DEVICE static constexpr T negligible_exponent() {
    return sizeof(T) == sizeof(float) ? T(-17) : T(-38);
  }

  // The log-sum-exp's terms e_j = exp(a (L_j - m)) (0 where negligible) and their sum s.
  template <typename T>
  HOST_DEVICE static T lse_terms(const T* L, int n, T a, T m, T* e) {
    T s = T(0);
    for (int j = 0; j < n; ++j) {
      const T z = a * (L[j] - m);
      e[j] = z > negligible_exponent<T>() ? exp_of(z) : T(0);
      s += e[j];
    }
    return s;
  }

  // eval's early-out: where I <= sigmoid(-a b m) < ALPHA_MIN no exp is needed.
  template <typename T>
  HOST_DEVICE static bool below_threshold(T a, T b, T m) {
    return a > T(0) && b > T(0) && a * b * m > T(LOG_INV_ALPHA_MIN_ODDS);
  }

  template <typename T>
  HOST_DEVICE static T eval(const T* fp, T px, T py, T* w) {
    w[0] = T(1);
    const int n = num_lines(fp);
    if (n < 3) return T(0);
    const T a = fp[1], b = fp[2];
    T L[MAX_LINES], e[MAX_LINES];
    const T m = lines_at(fp, n, px, py, L);
    if (below_threshold(a, b, m)) return T(0);
    const T phi = a * m + log_of(lse_terms(L, n, a, m, e));
    return stable_sigmoid(-b * phi);
  }

  // The pixels [x0, x1) of row py where α = o·I can reach ALPHA_MIN, narrowed from the given
  // range. Since φ >= a max_j L_j, α >= 1/255 needs sigmoid(-a b max_j L_j) >= 1/(255 o), i.e.
  // L_j <= M = log(255 o - 1) / (a b) for every line: on a row each line bounds the pixel centre x
  // from one side. (For o <= 1/255 the opacity-free log(254) bound is used: rounding could still
  // let α reach 1/255 there.) M is widened by 1e-3 in the sigmoid's argument and every line by
  // 1e-5 of its terms' size, far above rounding, so no pixel that blends is dropped; pixels kept
  // below the threshold are skipped by the blending step as before.
  template <typename T>
  HOST_DEVICE static void row_span(const T* fp, T opacity, T py, int& x0, int& x1) {
    const int n = num_lines(fp);
    if (n < 3) {  // eval is 0: nothing blends
      x1 = x0;
      return;
    }
    const T a = fp[1], b = fp[2];
    if (!(a > T(0) && b > T(0))) return;
    const T odds = opacity * T(1.0 / ALPHA_MIN) - T(1);
    const T logit = odds > T(1e-3) ? log_of(odds) : T(LOG_INV_ALPHA_MIN_ODDS);
    const T M = (logit + T(1e-3)) / (a * b);
    T lo = -T(INFINITY), hi = T(INFINITY);  // pixel-centre x range
    for (int j = 0; j < n; ++j) {
      const T* l = fp + 3 + 3 * j;
      const T rest = l[1] * py + l[2];
      const T rhs = M - rest + T(1e-5) * (abs_of(M) + abs_of(rest));  // l[0] x <= rhs
      if (l[0] > T(0)) {
        hi = min_of(hi, rhs / l[0]);
      } else if (l[0] < T(0)) {
        lo = max_of(lo, rhs / l[0]);
      } else if (rhs < T(0)) {
        x1 = x0;
        return;
      }
    }
    // Pixel x has its centre at x + 0.5. NaN bounds (a broken footprint) narrow nothing.
    const T first = ceil(lo - T(0.5)), end = floor(hi - T(0.5)) + T(1);
    if (first > T(x0)) x0 = first >= T(x1) ? x1 : static_cast<int>(first);
    if (end < T(x1)) x1 = end <= T(x0) ? x0 : static_cast<int>(end);
  }

  // dI/dx = I (1 - I) for x = -b phi;  dphi/da = sum_j s_j L_j,  dphi/dL_j = a s_j  (s = softmax(a L)).
  // The weight (w = 1) carries no parameter, so v_w is ignored.
  template <typename T>
  HOST_DEVICE static void vjp(const T* fp, T px, T py, T v_k, const T* v_w, T* v_fp) {
    T w[V];
    vjp_from_value(fp, px, py, eval(fp, px, py, w), v_k, v_w, v_fp);
  }

  // The VJP given I = eval(...) (the rasterizer's backward has it: saves the sigmoid's exp).
  template <typename T>
  HOST_DEVICE static void vjp_from_value(const T* fp, T px, T py, T I, T v_k, const T* /*v_w*/,
                                         T* v_fp) {
    const int n = num_lines(fp);
    if (n < 3) return;
    const T a = fp[1], b = fp[2];
    T L[MAX_LINES], e[MAX_LINES];
    const T m = lines_at(fp, n, px, py, L);
    if (below_threshold(a, b, m)) return;  // eval gave 0
    const T s = lse_terms(L, n, a, m, e);
    const T phi = a * m + log_of(s);
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
