// Real spherical harmonics up to degree 3 (the 3DGS basis and order) and their adjoint, for the
// view-dependent colour of primitives. Same constants and order as recon/render/sh.py.
#pragma once

#include "common.h"

namespace recon {

constexpr int SH_MAX_DEGREE = 3;
constexpr int SH_MAX_BASES = 16;

// Bases b[(degree+1)²] at the unit direction (x, y, z).
template <typename T>
HOST_DEVICE void sh_bases(int degree, T x, T y, T z, T* b) {
  const T C0 = T(0.28209479177387814), C1 = T(0.4886025119029199);
  b[0] = C0;
  if (degree < 1) return;
  b[1] = -C1 * y;
  b[2] = C1 * z;
  b[3] = -C1 * x;
  if (degree < 2) return;
  const T xx = x * x, yy = y * y, zz = z * z;
  b[4] = T(1.0925484305920792) * x * y;
  b[5] = T(-1.0925484305920792) * y * z;
  b[6] = T(0.31539156525252005) * (T(2) * zz - xx - yy);
  b[7] = T(-1.0925484305920792) * x * z;
  b[8] = T(0.5462742152960396) * (xx - yy);
  if (degree < 3) return;
  b[9] = T(-0.5900435899266435) * y * (T(3) * xx - yy);
  b[10] = T(2.890611442640554) * x * y * z;
  b[11] = T(-0.4570457994644658) * y * (T(4) * zz - xx - yy);
  b[12] = T(0.3731763325901154) * z * (T(2) * zz - T(3) * xx - T(3) * yy);
  b[13] = T(-0.4570457994644658) * x * (T(4) * zz - xx - yy);
  b[14] = T(1.445305721320277) * z * (xx - yy);
  b[15] = T(-0.5900435899266435) * x * (xx - T(3) * yy);
}

// dL/d(x, y, z) of the bases at a unit direction, given dL/db (v_b).
template <typename T>
HOST_DEVICE void sh_bases_vjp(int degree, T x, T y, T z, const T* v_b, T* v_xyz) {
  T gx = T(0), gy = T(0), gz = T(0);
  if (degree >= 1) {
    const T C1 = T(0.4886025119029199);
    gy += -C1 * v_b[1];
    gz += C1 * v_b[2];
    gx += -C1 * v_b[3];
  }
  if (degree >= 2) {
    const T a = T(1.0925484305920792), c = T(0.31539156525252005), d = T(0.5462742152960396);
    gx += a * y * v_b[4];
    gy += a * x * v_b[4];
    gy += -a * z * v_b[5];
    gz += -a * y * v_b[5];
    gx += T(-2) * c * x * v_b[6];
    gy += T(-2) * c * y * v_b[6];
    gz += T(4) * c * z * v_b[6];
    gx += -a * z * v_b[7];
    gz += -a * x * v_b[7];
    gx += T(2) * d * x * v_b[8];
    gy += T(-2) * d * y * v_b[8];
  }
  if (degree >= 3) {
    const T xx = x * x, yy = y * y, zz = z * z;
    const T k0 = T(-0.5900435899266435), k1 = T(2.890611442640554), k2 = T(-0.4570457994644658),
            k3 = T(0.3731763325901154), k5 = T(1.445305721320277);
    gx += k0 * T(6) * x * y * v_b[9];
    gy += k0 * T(3) * (xx - yy) * v_b[9];
    gx += k1 * y * z * v_b[10];
    gy += k1 * x * z * v_b[10];
    gz += k1 * x * y * v_b[10];
    gx += k2 * T(-2) * x * y * v_b[11];
    gy += k2 * (T(4) * zz - xx - T(3) * yy) * v_b[11];
    gz += k2 * T(8) * y * z * v_b[11];
    gx += k3 * T(-6) * x * z * v_b[12];
    gy += k3 * T(-6) * y * z * v_b[12];
    gz += k3 * (T(6) * zz - T(3) * xx - T(3) * yy) * v_b[12];
    gx += k2 * (T(4) * zz - T(3) * xx - yy) * v_b[13];
    gy += k2 * T(-2) * x * y * v_b[13];
    gz += k2 * T(8) * x * z * v_b[13];
    gx += k5 * T(2) * x * z * v_b[14];
    gy += k5 * T(-2) * y * z * v_b[14];
    gz += k5 * (xx - yy) * v_b[14];
    gx += k0 * T(3) * (xx - yy) * v_b[15];
    gy += k0 * T(-6) * x * y * v_b[15];
  }
  v_xyz[0] = gx;
  v_xyz[1] = gy;
  v_xyz[2] = gz;
}

// colour[C] = Σ_k b_k(d / |d|) coeffs[k * C + c] for one point (coeffs has K >= bases rows).
template <typename T>
HOST_DEVICE void sh_forward_point(int degree, const T* dir, const T* coeffs, int C, T* color) {
  const T len = sqrt_of(dir[0] * dir[0] + dir[1] * dir[1] + dir[2] * dir[2]);
  const T inv = len > T(0) ? T(1) / len : T(0);
  T b[SH_MAX_BASES];
  sh_bases(degree, dir[0] * inv, dir[1] * inv, dir[2] * inv, b);
  const int nb = (degree + 1) * (degree + 1);
  for (int c = 0; c < C; ++c) {
    T s = T(0);
    for (int k = 0; k < nb; ++k) s += b[k] * coeffs[k * C + c];
    color[c] = s;
  }
}

// Adjoint of sh_forward_point: adds into v_coeffs[K * C] and writes v_dir[3].
template <typename T>
HOST_DEVICE void sh_backward_point(int degree, const T* dir, const T* coeffs, int C,
                                   const T* v_color, T* v_dir, T* v_coeffs) {
  const T len = sqrt_of(dir[0] * dir[0] + dir[1] * dir[1] + dir[2] * dir[2]);
  const T inv = len > T(0) ? T(1) / len : T(0);
  const T x = dir[0] * inv, y = dir[1] * inv, z = dir[2] * inv;
  T b[SH_MAX_BASES], v_b[SH_MAX_BASES];
  sh_bases(degree, x, y, z, b);
  const int nb = (degree + 1) * (degree + 1);
  for (int k = 0; k < nb; ++k) {
    T s = T(0);
    for (int c = 0; c < C; ++c) {
      v_coeffs[k * C + c] += b[k] * v_color[c];
      s += coeffs[k * C + c] * v_color[c];
    }
    v_b[k] = s;
  }
  T v_n[3];
  sh_bases_vjp(degree, x, y, z, v_b, v_n);
  // Through the normalisation n = d / |d|: (I - n nᵀ) v_n / |d|.
  const T dot = v_n[0] * x + v_n[1] * y + v_n[2] * z;
  v_dir[0] = (v_n[0] - dot * x) * inv;
  v_dir[1] = (v_n[1] - dot * y) * inv;
  v_dir[2] = (v_n[2] - dot * z) * inv;
}

}  // namespace recon

namespace recon {
namespace cpu {
// Colours of B x N points: dirs [B, N, 3]; coeffs [N, K, C] shared by all B (shared_coeffs) or
// [B, N, K, C]; colors [B, N, C]. Defined in cuda/cpu/sh.cpp for float and double.
template <typename T>
void sh_forward(int degree, int B, int N, int K, int C, bool shared_coeffs, const T* dirs,
                const T* coeffs, T* colors);
// v_dirs [B, N, 3] written; v_coeffs (shape of coeffs) zero-initialised and accumulated.
template <typename T>
void sh_backward(int degree, int B, int N, int K, int C, bool shared_coeffs, const T* dirs,
                 const T* coeffs, const T* v_colors, T* v_dirs, T* v_coeffs);
}  // namespace cpu
}  // namespace recon
