// Triangle pixel kernel (Triangle Splatting window, Held et al. 2025) and its opaque-mesh variant.
//
// A triangle is projected (in torch, recon/primitives/triangles.py) to its three edge lines
// L_i(p) = n_i . p + c_i with UNIT outward normals, so phi(p) = max_i L_i(p) is the signed distance
// to the boundary in pixels for points inside (negative there) and bounds it from below outside.
// phi is smallest at the incenter s, where phi(s) = -inradius.
//   window mode (sigma >= 0):  I(p) = ReLU(phi(p) / phi(s))^sigma
//       exactly 0 on and outside the edges, 1 at the incenter; sigma -> 0 gives a solid triangle
//       (sigma == 0 is the solid limit: 1 inside, 0 outside); larger sigma concentrates the window.
//       phi(p)/phi(s) is invariant to a uniform scaling of the projection, so no depth factor.
//   opaque mode (sigma < 0, band = -sigma pixels):  I(p) = clamp(1 - phi(p) / band, 0, 1)
//       solid inside, then a linear ramp over one band outside the edges, so coverage (and
//       anything interpolated with it) has a gradient w.r.t. the edge lines, hence the vertices,
//       at silhouettes. Used with opacity 1 for mesh rendering. The ramp sits outside rather
//       than centred on the edge (0.5 - phi/band) so that two triangles sharing an edge cover it
//       fully: centred ramps give each 0.5 there, compositing to a 0.75-coverage seam along
//       every interior edge of a mesh. The price is a silhouette dilated by band/2 on average.
//       The ramp around a corner of angle theta reaches band / sin(theta / 2) beyond it, a spike
//       for the slivers a closed mesh shows at its silhouettes; so points more than MITRE_LIMIT
//       bands beyond a corner along its bisector are outside (a bevel, as a stroke's miter
//       limit; corners of 60 degrees and more are untouched).
// Interpolation weights are the barycentrics of the pixel from an affine pixel->barycentric map:
//   w0 = b00 px + b01 py + b02,  w1 = b10 px + b11 py + b12,  w2 = 1 - w0 - w1.
//
// Footprint layout (P floats):
//   [n0x, n0y, c0, n1x, n1y, c1, n2x, n2y, c2, inv_phi_s, sigma, b00, b01, b02, b10, b11, b12]
// inv_phi_s = 1/phi(s) < 0; projection writes 0 for degenerate triangles, which makes I = 0.
#pragma once

#include "common.h"

namespace recon {

struct TriangleKernel {
  static constexpr int P = 17;
  static constexpr int V = 3;
  static constexpr int INV_PHI_S = 9;
  static constexpr int SIGMA = 10;
  static constexpr int BARY = 11;
  static constexpr float MITRE_LIMIT = 2.0f;

  // phi = max of the three lines; returns the index of the maximising line (first on ties).
  template <typename T>
  HOST_DEVICE static int max_line(const T* fp, T px, T py, T* phi) {
    int arg = 0;
    T best = fp[0] * px + fp[1] * py + fp[2];
    for (int i = 1; i < 3; ++i) {
      const T L = fp[3 * i] * px + fp[3 * i + 1] * py + fp[3 * i + 2];
      if (L > best) {
        best = L;
        arg = i;
      }
    }
    *phi = best;
    return arg;
  }

  template <typename T>
  HOST_DEVICE static void weights(const T* fp, T px, T py, T* w) {
    const T* b = fp + BARY;
    w[0] = b[0] * px + b[1] * py + b[2];
    w[1] = b[3] * px + b[4] * py + b[5];
    w[2] = T(1) - w[0] - w[1];
  }

  // Opaque mode: is the pixel past the bevel of a corner? Corner i joins lines i-1 and i; its
  // bisector m = (n_{i-1} + n_i) / |n_{i-1} + n_i| points out, and the bevel is the line
  // m . (p - q_i) = MITRE_LIMIT band, where m . q_i = -(c_{i-1} + c_i) / |n_{i-1} + n_i|.
  template <typename T>
  HOST_DEVICE static bool past_bevel(const T* fp, T px, T py, T band) {
    const T limit = T(MITRE_LIMIT) * band;
    for (int i = 0; i < 3; ++i) {
      const T* a = fp + 3 * ((i + 2) % 3);
      const T* b = fp + 3 * i;
      const T mx = a[0] + b[0], my = a[1] + b[1];
      const T along = mx * px + my * py + a[2] + b[2];  // |n_{i-1} + n_i| m . (p - q_i)
      if (along > T(0) && along * along > limit * limit * (mx * mx + my * my)) return true;
    }
    return false;
  }

  template <typename T>
  HOST_DEVICE static T eval(const T* fp, T px, T py, T* w) {
    weights(fp, px, py, w);
    T phi;
    max_line(fp, px, py, &phi);
    const T sigma = fp[SIGMA];
    if (sigma < T(0)) {
      if (phi > T(0) && past_bevel(fp, px, py, -sigma)) return T(0);
      const T k = T(1) - phi / (-sigma);
      return k < T(0) ? T(0) : (k > T(1) ? T(1) : k);
    }
    const T r = phi * fp[INV_PHI_S];
    if (!(r > T(0))) return T(0);
    return exp_of(sigma * log_of(r));  // r^sigma; exactly 1 for sigma = 0
  }

  template <typename T>
  HOST_DEVICE static void vjp(const T* fp, T px, T py, T v_k, const T* v_w, T* v_fp) {
    // Barycentric weights: w2 = 1 - w0 - w1 folds into the first two rows.
    const T g0 = v_w[0] - v_w[2], g1 = v_w[1] - v_w[2];
    T* vb = v_fp + BARY;
    vb[0] += g0 * px;
    vb[1] += g0 * py;
    vb[2] += g0;
    vb[3] += g1 * px;
    vb[4] += g1 * py;
    vb[5] += g1;

    T phi;
    const int arg = max_line(fp, px, py, &phi);
    const T sigma = fp[SIGMA];
    T v_phi;
    if (sigma < T(0)) {
      const T band = -sigma;
      const T k = T(1) - phi / band;
      if (!(k > T(0) && k < T(1))) return;  // clamped: no gradient
      if (past_bevel(fp, px, py, band)) return;  // cut off: I = 0
      v_phi = -v_k / band;
      v_fp[SIGMA] += -v_k * phi / (band * band);  // dk/dsigma = -dk/dband = -phi/band^2
    } else {
      const T inv = fp[INV_PHI_S];
      const T r = phi * inv;
      if (!(r > T(0))) return;  // zero on and outside the edges
      const T logr = log_of(r);
      const T k = exp_of(sigma * logr);
      v_fp[SIGMA] += v_k * k * logr;
      const T v_r = v_k * sigma * k / r;
      v_fp[INV_PHI_S] += v_r * phi;
      v_phi = v_r * inv;
    }
    T* g = v_fp + 3 * arg;
    g[0] += v_phi * px;
    g[1] += v_phi * py;
    g[2] += v_phi;
  }
};

}  // namespace recon
