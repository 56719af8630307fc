// The fused EWA projection of 3D Gaussians, one (camera, Gaussian) at a time: the math of
// recon.primitives.gaussians.project_torch (see its docstring) forward, and its hand-written
// adjoint backward. Shared by the OpenMP loops (cuda/cpu/project.cpp) and the CUDA kernels
// (cuda/gpu/project.cu); the torch version stays the reference the tests compare against.
#pragma once

#include "common.h"

namespace recon {

struct ProjectOptions {
  int B, N, width, height;
  double eps2d, near_plane, far_plane, radius_clip;
  bool antialiased;
};

// Inputs: means [N,3], quats [N,4] (w,x,y,z, unnormalised), log_scales [N,3], opacity_logits [N],
// viewmats [B,4,4] (world->camera), Ks [B,3,3]. Outputs [B,N,...]: means2d 2, conics 3,
// opacities, depths (camera z), bounds int32 4, radii int32, normals 3.
template <typename T>
struct ProjectForwardArgs {
  ProjectOptions o;
  const T *means, *quats, *log_scales, *opacity_logits, *viewmats, *Ks;
  T *means2d, *conics, *opacities, *depths, *normals;
  int32_t *bounds, *radii;
};

// Cotangents of the differentiable forward outputs in, gradients of the four inputs out (written,
// one thread per Gaussian summing its B cameras: no atomics).
template <typename T>
struct ProjectBackwardArgs {
  ProjectOptions o;
  const T *means, *quats, *log_scales, *opacity_logits, *viewmats, *Ks;
  const T *v_means2d, *v_conics, *v_opacities, *v_depths, *v_normals;
  T *v_means, *v_quats, *v_log_scales, *v_opacity_logits;
};

constexpr double MAX_EXTENT = 3.33;  // as recon/primitives/gaussians.py
constexpr double NORMALIZE_EPS = 1e-12;  // torch.nn.functional.normalize's default
constexpr double DET_MIN = 1e-10;

// Everything forward computes for one (camera, Gaussian) that backward needs again.
template <typename T>
struct Projected {
  T qn[4], q_norm;          // normalised quaternion, |q|
  T Rv[9], Rw[9], M[9];     // view rotation, Gaussian rotation, M = Rv Rw (row-major)
  T s[3], A[9];             // scales, A = M diag(s)
  T mc[3], zs;              // camera-space mean, z (1 when outside the depth range)
  bool in_depth;
  T fx, fy, cx, cy;
  T qx, qy;                 // x/zs, y/zs before the field-of-view clamp
  bool clamp_x, clamp_y;    // the clamp is active (no gradient through it)
  T ux, uy;                 // clamped tx/zs, ty/zs
  T ja0[3], ja1[3];         // rows of J A
  T a, b, c, ad, cd, det_raw, det_dilated, det;
  T sig;                    // sigmoid(opacity logit)
  int shortest;             // axis of the smallest scale (the normal)
};

template <typename T>
HOST_DEVICE Projected<T> project_one(const ProjectOptions& o, const T* means,
                                                    const T* quats, const T* log_scales,
                                                    const T* logits, const T* viewmats,
                                                    const T* Ks, int b, int n) {
  Projected<T> P;
  const T* q = quats + 4 * static_cast<size_t>(n);
  P.q_norm = sqrt_of(q[0] * q[0] + q[1] * q[1] + q[2] * q[2] + q[3] * q[3]);
  const T inv = T(1) / max_of(P.q_norm, T(NORMALIZE_EPS));
  for (int i = 0; i < 4; ++i) P.qn[i] = q[i] * inv;
  T R[9];
  rotation_of_unit_quat(P.qn[0], P.qn[1], P.qn[2], P.qn[3], R);
  const T* V = viewmats + 16 * static_cast<size_t>(b);
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 3; ++j) P.Rv[3 * i + j] = V[4 * i + j];
  for (int i = 0; i < 9; ++i) P.Rw[i] = R[i];
  const T* ls = log_scales + 3 * static_cast<size_t>(n);
  for (int j = 0; j < 3; ++j) P.s[j] = exp_of(ls[j]);
  P.shortest = 0;
  for (int j = 1; j < 3; ++j)
    if (ls[j] < ls[P.shortest]) P.shortest = j;
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 3; ++j) {
      T m = T(0);
      for (int k = 0; k < 3; ++k) m += P.Rv[3 * i + k] * R[3 * k + j];
      P.M[3 * i + j] = m;
      P.A[3 * i + j] = m * P.s[j];
    }
  const T* mean = means + 3 * static_cast<size_t>(n);
  for (int i = 0; i < 3; ++i)
    P.mc[i] = P.Rv[3 * i] * mean[0] + P.Rv[3 * i + 1] * mean[1] + P.Rv[3 * i + 2] * mean[2] +
              V[4 * i + 3];
  P.in_depth = P.mc[2] > T(o.near_plane) && P.mc[2] < T(o.far_plane);
  P.zs = P.in_depth ? P.mc[2] : T(1);
  const T* K = Ks + 9 * static_cast<size_t>(b);
  P.fx = K[0], P.fy = K[4], P.cx = K[2], P.cy = K[5];
  const T W = T(o.width), H = T(o.height);
  const T lim_x_pos = (W - P.cx) / P.fx + T(0.3) * (T(0.5 * o.width) / P.fx);
  const T lim_x_neg = P.cx / P.fx + T(0.3) * (T(0.5 * o.width) / P.fx);
  const T lim_y_pos = (H - P.cy) / P.fy + T(0.3) * (T(0.5 * o.height) / P.fy);
  const T lim_y_neg = P.cy / P.fy + T(0.3) * (T(0.5 * o.height) / P.fy);
  P.qx = P.mc[0] / P.zs;
  P.qy = P.mc[1] / P.zs;
  P.clamp_x = !(P.qx > -lim_x_neg && P.qx < lim_x_pos);
  P.clamp_y = !(P.qy > -lim_y_neg && P.qy < lim_y_pos);
  const T tx = P.zs * min_of(max_of(P.qx, -lim_x_neg), lim_x_pos);
  const T ty = P.zs * min_of(max_of(P.qy, -lim_y_neg), lim_y_pos);
  P.ux = tx / P.zs;
  P.uy = ty / P.zs;
  const T gx = P.fx / P.zs, gy = P.fy / P.zs;
  for (int k = 0; k < 3; ++k) {
    P.ja0[k] = gx * (P.A[k] - P.ux * P.A[6 + k]);
    P.ja1[k] = gy * (P.A[3 + k] - P.uy * P.A[6 + k]);
  }
  P.a = P.ja0[0] * P.ja0[0] + P.ja0[1] * P.ja0[1] + P.ja0[2] * P.ja0[2];
  P.b = P.ja0[0] * P.ja1[0] + P.ja0[1] * P.ja1[1] + P.ja0[2] * P.ja1[2];
  P.c = P.ja1[0] * P.ja1[0] + P.ja1[1] * P.ja1[1] + P.ja1[2] * P.ja1[2];
  P.det_raw = P.a * P.c - P.b * P.b;
  P.ad = P.a + T(o.eps2d);
  P.cd = P.c + T(o.eps2d);
  P.det_dilated = P.ad * P.cd - P.b * P.b;
  P.det = max_of(P.det_dilated, T(DET_MIN));
  P.sig = T(1) / (T(1) + exp_of(-logits[n]));
  return P;
}

// The camera-space shortest axis (column `shortest` of M) in axis[3]; returns the sign that
// turns it towards the camera. Selects instead of indexing keep M in registers.
template <typename T>
HOST_DEVICE T normal_axis(const Projected<T>& P, T* axis) {
  for (int i = 0; i < 3; ++i)
    axis[i] = P.shortest == 0 ? P.M[3 * i] : P.shortest == 1 ? P.M[3 * i + 1] : P.M[3 * i + 2];
  return axis[0] * P.mc[0] + axis[1] * P.mc[1] + axis[2] * P.mc[2] > T(0) ? T(-1) : T(1);
}

// Forward of item m = b * N + n: footprint of Gaussian n in camera b.
template <typename T>
HOST_DEVICE void project_forward_item(const ProjectForwardArgs<T>& a, long m) {
  const ProjectOptions& o = a.o;
  const int b = static_cast<int>(m / o.N), n = static_cast<int>(m % o.N);
  const Projected<T> P = project_one(o, a.means, a.quats, a.log_scales, a.opacity_logits,
                                     a.viewmats, a.Ks, b, n);
  const T mx = P.fx * P.mc[0] / P.zs + P.cx;
  const T my = P.fy * P.mc[1] / P.zs + P.cy;
  a.means2d[2 * m] = mx;
  a.means2d[2 * m + 1] = my;
  a.conics[3 * m] = P.cd / P.det;
  a.conics[3 * m + 1] = -P.b / P.det;
  a.conics[3 * m + 2] = P.ad / P.det;
  T opacity = P.sig;
  if (o.antialiased) opacity = opacity * sqrt_of(max_of(P.det_raw / P.det, T(0)));
  a.opacities[m] = opacity;
  a.depths[m] = P.mc[2];

  // Pixel box and radius (no gradient), as project_torch.
  const T sx = sqrt_of(max_of(P.ad, T(0))), sy = sqrt_of(max_of(P.cd, T(0)));
  const T radius = max_of(ceil(T(MAX_EXTENT) * sx), ceil(T(MAX_EXTENT) * sy));
  const T extent = min_of(
      sqrt_of(T(2) * log_of(max_of(opacity / T(ALPHA_MIN), T(1)))), T(MAX_EXTENT));
  T box[4] = {floor(mx - extent * sx), floor(my - extent * sy), ceil(mx + extent * sx),
              ceil(my + extent * sy)};
  const T limit[4] = {T(o.width), T(o.height), T(o.width), T(o.height)};
  bool finite = true;
  for (int i = 0; i < 4; ++i) {
    box[i] = min_of(max_of(box[i], T(0)), limit[i]);
    finite = finite && isfinite(box[i]);
  }
  const bool keep = P.in_depth && P.det_dilated > T(0) && extent > T(0) &&
                    radius > T(o.radius_clip) && finite;
  int32_t* bounds = a.bounds + 4 * m;
  for (int i = 0; i < 4; ++i) bounds[i] = keep ? static_cast<int32_t>(box[i]) : 0;
  const bool visible = bounds[2] > bounds[0] && bounds[3] > bounds[1];
  a.radii[m] = visible ? static_cast<int32_t>(radius) : 0;

  // Normal: the shortest axis in camera space (column of M), turned to face the camera.
  T axis[3];
  const T facing = normal_axis(P, axis);
  for (int i = 0; i < 3; ++i) a.normals[3 * m + i] = axis[i] * facing;
}

// Backward of Gaussian n: its cotangents in all B cameras summed in camera order by one thread
// (no atomics, deterministic), the gradients of its four inputs written (not accumulated).
template <typename T>
HOST_DEVICE void project_backward_item(const ProjectBackwardArgs<T>& a, int n) {
  const ProjectOptions& o = a.o;
  // Each camera's gradient is finished (through the quaternion's normalisation and the sigmoid)
  // before it is added to the others': a batch of B cameras then sums the same B numbers as B
  // ranks rendering one camera each and all-reducing, to the bit (tests/train/test_distributed).
  T v_mean[3] = {T(0), T(0), T(0)}, v_q[4] = {T(0), T(0), T(0), T(0)};
  T v_ls[3] = {T(0), T(0), T(0)}, v_logit = T(0);
  for (int b = 0; b < o.B; ++b) {
    T v_sig = T(0);
    const size_t m = static_cast<size_t>(b) * o.N + n;
    const Projected<T> P =
        project_one(o, a.means, a.quats, a.log_scales, a.opacity_logits, a.viewmats, a.Ks, b, n);
    const T v_mx = a.v_means2d[2 * m], v_my = a.v_means2d[2 * m + 1];
    const T v_c0 = a.v_conics[3 * m], v_c1 = a.v_conics[3 * m + 1], v_c2 = a.v_conics[3 * m + 2];
    const T v_op = a.v_opacities[m];

    // Conic (c'/det, -b/det, a'/det) and the antialiasing factor -> a, b, c.
    T v_a = v_c2 / P.det, v_b = -v_c1 / P.det, v_c = v_c0 / P.det;
    T v_det = -(v_c0 * P.cd - v_c1 * P.b + v_c2 * P.ad) / (P.det * P.det);
    if (o.antialiased) {
      const T ratio = P.det_raw / P.det;
      const T comp = sqrt_of(max_of(ratio, T(0)));
      v_sig += v_op * comp;
      if (ratio > T(0)) {
        const T v_ratio = v_op * P.sig * T(0.5) / comp;
        const T v_det_raw = v_ratio / P.det;
        v_det += -v_ratio * P.det_raw / (P.det * P.det);
        v_a += v_det_raw * P.c;
        v_c += v_det_raw * P.a;
        v_b += T(-2) * P.b * v_det_raw;
      }
    } else {
      v_sig += v_op;
    }
    if (P.det_dilated >= T(DET_MIN)) {
      v_a += v_det * P.cd;
      v_c += v_det * P.ad;
      v_b += T(-2) * P.b * v_det;
    }

    // a = |ja0|², b = ja0·ja1, c = |ja1|²; ja0 = gx (A0 - ux A2), ja1 = gy (A1 - uy A2).
    const T gx = P.fx / P.zs, gy = P.fy / P.zs;
    T v_A[9], v_ux = T(0), v_uy = T(0), v_zs = T(0);
    for (int k = 0; k < 3; ++k) {
      const T v_j0 = T(2) * v_a * P.ja0[k] + v_b * P.ja1[k];
      const T v_j1 = T(2) * v_c * P.ja1[k] + v_b * P.ja0[k];
      v_A[k] = gx * v_j0;
      v_A[3 + k] = gy * v_j1;
      v_A[6 + k] = -gx * P.ux * v_j0 - gy * P.uy * v_j1;
      v_ux += -gx * P.A[6 + k] * v_j0;
      v_uy += -gy * P.A[6 + k] * v_j1;
      v_zs += -(P.ja0[k] * v_j0 + P.ja1[k] * v_j1) / P.zs;
    }
    // ux = clamp(x / zs) (tx / zs with tx = zs clamp(...): the zs factors cancel exactly).
    T v_x = T(0), v_y = T(0);
    if (!P.clamp_x) {
      v_x += v_ux / P.zs;
      v_zs += -v_ux * P.qx / P.zs;
    }
    if (!P.clamp_y) {
      v_y += v_uy / P.zs;
      v_zs += -v_uy * P.qy / P.zs;
    }
    // means2d = (fx x / zs + cx, fy y / zs + cy).
    v_x += v_mx * P.fx / P.zs;
    v_y += v_my * P.fy / P.zs;
    v_zs += -(v_mx * P.fx * P.mc[0] + v_my * P.fy * P.mc[1]) / (P.zs * P.zs);
    const T v_mc[3] = {v_x, v_y, a.v_depths[m] + (P.in_depth ? v_zs : T(0))};

    // A = M diag(s); the normal is facing * M[:, shortest].
    T v_M[9], v_ls_b[3] = {T(0), T(0), T(0)};
    for (int i = 0; i < 3; ++i)
      for (int j = 0; j < 3; ++j) {
        v_M[3 * i + j] = v_A[3 * i + j] * P.s[j];
        v_ls_b[j] += v_A[3 * i + j] * P.M[3 * i + j] * P.s[j];
      }
    for (int j = 0; j < 3; ++j) v_ls[j] += v_ls_b[j];
    {
      T axis[3];
      const T facing = normal_axis(P, axis);
      for (int i = 0; i < 3; ++i)
        for (int j = 0; j < 3; ++j)
          if (j == P.shortest) v_M[3 * i + j] += facing * a.v_normals[3 * m + i];
    }
    // M = Rv Rw, mean_c = Rv mean + t.
    T G[9];
    for (int i = 0; i < 3; ++i) {
      for (int j = 0; j < 3; ++j)
        G[3 * i + j] = P.Rv[i] * v_M[j] + P.Rv[3 + i] * v_M[3 + j] + P.Rv[6 + i] * v_M[6 + j];
      v_mean[i] += P.Rv[i] * v_mc[0] + P.Rv[3 + i] * v_mc[1] + P.Rv[6 + i] * v_mc[2];
    }
    // Rw(q̂) -> q̂.
    const T w = P.qn[0], x = P.qn[1], y = P.qn[2], z = P.qn[3];
    T v_qn[4];
    v_qn[0] = T(2) * (-z * G[1] + y * G[2] + z * G[3] - x * G[5] - y * G[6] + x * G[7]);
    v_qn[1] = T(2) * (y * G[1] + z * G[2] + y * G[3] - T(2) * x * G[4] - w * G[5] + z * G[6] +
                      w * G[7] - T(2) * x * G[8]);
    v_qn[2] = T(2) * (T(-2) * y * G[0] + x * G[1] + w * G[2] + x * G[3] + z * G[5] - w * G[6] +
                      z * G[7] - T(2) * y * G[8]);
    v_qn[3] = T(2) * (T(-2) * z * G[0] - w * G[1] + x * G[2] + w * G[3] - T(2) * z * G[4] +
                      y * G[5] + x * G[6] + y * G[7]);
    // q̂ = q / max(|q|, eps).
    if (P.q_norm >= T(NORMALIZE_EPS)) {
      const T dot = v_qn[0] * w + v_qn[1] * x + v_qn[2] * y + v_qn[3] * z;
      for (int i = 0; i < 4; ++i) v_q[i] += (v_qn[i] - dot * P.qn[i]) / P.q_norm;
    } else {
      for (int i = 0; i < 4; ++i) v_q[i] += v_qn[i] / T(NORMALIZE_EPS);
    }
    v_logit += v_sig * P.sig * (T(1) - P.sig);
  }
  for (int i = 0; i < 3; ++i) {
    a.v_means[3 * n + i] = v_mean[i];
    a.v_log_scales[3 * n + i] = v_ls[i];
  }
  for (int i = 0; i < 4; ++i) a.v_quats[4 * n + i] = v_q[i];
  a.v_opacity_logits[n] = v_logit;
}

namespace cpu {
// OpenMP loops over project_forward_item / project_backward_item (cuda/cpu/project.cpp; float and
// double).
template <typename T> void project_gaussians_forward(const ProjectForwardArgs<T>& a);
template <typename T> void project_gaussians_backward(const ProjectBackwardArgs<T>& a);
}  // namespace cpu
}  // namespace recon
