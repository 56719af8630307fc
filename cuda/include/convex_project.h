// The fused projection of smooth convexes, one (camera, convex) at a time: the math of
// recon.primitives.convexes.project (see its docstring) forward, and its hand-written adjoint
// backward. Shared by the OpenMP loops (cuda/cpu/convex_project.cpp) and the CUDA kernels
// (cuda/gpu/convex_project.cu); the torch version stays the reference the tests compare against,
// so every rule below (near-plane culling, hull tolerance and line order, the float64 support
// box) is the torch code's rule.
//
// Forward of one convex in one camera: project its K points (pinhole), take the centroid depth d,
// pick the 2D hull edges i->j (kept in `edges` so backward replays the same lines), write the
// footprint [num_lines, d exp(log δ), d exp(log σ), 8 x (nx, ny, c)] (convex.h), the box of
// pixels the kernel can reach with α >= 1/255 and the screen radius.
#pragma once

#include "common.h"
#include "convex.h"

namespace recon {

constexpr int CONVEX_MAX_POINTS = CONVEX_MAX_LINES;  // as recon.primitives.convexes.MAX_POINTS
constexpr double CONVEX_HULL_TOLERANCE = 1e-3;       // HULL_TOLERANCE (pixels)
constexpr double CONVEX_MAX_RADIUS = 10000.0;        // MAX_RADIUS (pixels)
constexpr uint8_t CONVEX_NO_EDGE = 0xFF;             // an unused line slot in `edges`

struct ConvexProjectOptions {
  int B, N, K, width, height;
  double near_plane;
};

// Inputs: points [N,K,3], log_delta [N], log_sigma [N], opacity_logit [N], viewmats [B,4,4]
// (world->camera), Ks [B,3,3]. Outputs [B,N,...]: params ConvexKernel::P, opacities, depths
// (camera z of the point centroid), means2d 2, bounds int32 4, radii int32, and edges uint8 8
// (i*K+j of each line slot's hull edge i->j, CONVEX_NO_EDGE past the last line).
template <typename T>
struct ConvexProjectForwardArgs {
  ConvexProjectOptions o;
  const T *points, *log_delta, *log_sigma, *opacity_logit, *viewmats, *Ks;
  T *params, *opacities, *depths, *means2d;
  int32_t *bounds, *radii;
  uint8_t* edges;
};

// Cotangents of the differentiable forward outputs in, gradients of the four inputs out (written,
// one thread per convex summing its B cameras: no atomics).
template <typename T>
struct ConvexProjectBackwardArgs {
  ConvexProjectOptions o;
  const T *points, *log_delta, *log_sigma, *opacity_logit, *viewmats, *Ks;
  const uint8_t* edges;
  const T *v_params, *v_opacities, *v_depths, *v_means2d;
  T *v_points, *v_log_delta, *v_log_sigma, *v_opacity_logit;
};

// One convex seen by one camera: what forward computes before the hull and backward needs again.
template <typename T>
struct ConvexView {
  T cam[CONVEX_MAX_POINTS][3];  // camera coordinates of the points
  T zs[CONVEX_MAX_POINTS];      // their z, or 1 at or before the near plane (projected, never drawn)
  T q[CONVEX_MAX_POINTS][2];    // pixels, as means2d + (q - mean q) like the torch code
  T mean[2];                    // means2d: the mean of the projected points
  T depth;                      // camera z of the point centroid (the sort key)
  T d;                          // depth where every point is in front, else 1 (scales δ and σ)
  bool in_front;
  T R[9], fx, fy, cx, cy;
};

template <typename T>
HOST_DEVICE ConvexView<T> view_convex(const ConvexProjectOptions& o, const T* points,
                                      const T* viewmats, const T* Ks, int b, int n) {
  ConvexView<T> v;
  const T* V = viewmats + 16 * static_cast<size_t>(b);
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 3; ++j) v.R[3 * i + j] = V[4 * i + j];
  const T* K = Ks + 9 * static_cast<size_t>(b);
  v.fx = K[0], v.fy = K[4], v.cx = K[2], v.cy = K[5];
  const T* p = points + 3 * static_cast<size_t>(n) * o.K;
  T q[CONVEX_MAX_POINTS][2];
  T zsum = T(0), qsum[2] = {T(0), T(0)};
  v.in_front = true;
  for (int k = 0; k < o.K; ++k) {
    const T* pk = p + 3 * k;
    for (int i = 0; i < 3; ++i)
      v.cam[k][i] = v.R[3 * i] * pk[0] + v.R[3 * i + 1] * pk[1] + v.R[3 * i + 2] * pk[2] +
                    V[4 * i + 3];
    const T z = v.cam[k][2];
    const bool front = z > T(o.near_plane);
    v.in_front = v.in_front && front;
    v.zs[k] = front ? z : T(1);
    q[k][0] = v.fx * v.cam[k][0] / v.zs[k] + v.cx;
    q[k][1] = v.fy * v.cam[k][1] / v.zs[k] + v.cy;
    zsum += z;
    qsum[0] += q[k][0];
    qsum[1] += q[k][1];
  }
  v.depth = zsum / T(o.K);
  v.d = v.in_front ? v.depth : T(1);
  for (int i = 0; i < 2; ++i) v.mean[i] = qsum[i] / T(o.K);
  // The torch code builds the lines from means2d + (q - mean q): equal to q up to rounding, and
  // the hull decisions are taken on exactly these values there, so take them on these here.
  for (int k = 0; k < o.K; ++k)
    for (int i = 0; i < 2; ++i) v.q[k][i] = v.mean[i] + (q[k][i] - v.mean[i]);
  return v;
}

// The hull edges i->j of points q[K] in the order of the torch code (flat index i*K+j ascending,
// at most CONVEX_MAX_LINES): the edge is kept iff no point lies more than `tol` px outside its
// line (to its right), every point on the line (within tol) lies within the segment, its ends are
// more than tol apart and neither end is within tol of an earlier point. Both orientations of a
// pair share the segment test and see each point on opposite sides, so each unordered pair is
// tested once (the torch code measures j->i from q_j: the same numbers up to rounding, so only a
// point within rounding of a tolerance band could be judged differently), in a branch-free loop
// over the points (measured: early exits cost more in branch misses than they save at K <= 8).
// Returns the count; edges[] gets i*K+j.
template <typename T>
HOST_DEVICE int hull_edges(const T (*q)[2], int K, uint8_t* edges) {
  const T tol = T(CONVEX_HULL_TOLERANCE);
  T length[CONVEX_MAX_POINTS][CONVEX_MAX_POINTS];  // |q_j - q_i| for i < j
  bool keep[CONVEX_MAX_POINTS];
  for (int k = 0; k < K; ++k) keep[k] = true;
  for (int i = 0; i < K; ++i)
    for (int j = i + 1; j < K; ++j) {
      const T ex = q[j][0] - q[i][0], ey = q[j][1] - q[i][1];
      length[i][j] = sqrt_of(ex * ex + ey * ey);
      if (length[i][j] < tol) keep[j] = false;  // a duplicate of the earlier point i
    }
  uint64_t valid = 0;  // bit i*K+j: edge i->j (K*K <= 64)
  for (int i = 0; i < K; ++i) {
    if (!keep[i]) continue;
    for (int j = i + 1; j < K; ++j) {
      if (!keep[j] || length[i][j] < tol) continue;
      const T ex = q[j][0] - q[i][0], ey = q[j][1] - q[i][1];
      const T length2 = ex * ex + ey * ey;
      const T band = tol * length[i][j];
      bool forward = true, backward = true;  // i->j, j->i
      for (int k = 0; k < K; ++k) {
        const T fx = q[k][0] - q[i][0], fy = q[k][1] - q[i][1];
        const T cross = ex * fy - ey * fx;  // > 0: k on the hull side of i->j
        const T along = ex * fx + ey * fy;
        const bool beyond = (along < -band) | (along > length2 + band);
        const bool on_line = !(cross < -band) & !(cross > band);
        forward = forward & !(cross < -band) & !(on_line & beyond);
        backward = backward & !(cross > band) & !(on_line & beyond);
      }
      if (forward) valid |= uint64_t(1) << (i * K + j);
      if (backward) valid |= uint64_t(1) << (j * K + i);
    }
  }
  int count = 0;
  for (int bit = 0; bit < K * K && count < CONVEX_MAX_LINES; ++bit)
    if (valid >> bit & 1) edges[count++] = static_cast<uint8_t>(bit);
  for (int s = count; s < CONVEX_MAX_LINES; ++s) edges[s] = CONVEX_NO_EDGE;
  return count;
}

// The line of hull edge i->j: normal n = (q_j - q_i) rotated by -90° (outward, |n| = the edge
// length), offset c = -n·q_i.
template <typename T>
HOST_DEVICE void edge_line(const T (*q)[2], int K, uint8_t edge, T* line) {
  const T* s = q[edge / K];
  const T* e = q[edge % K];
  line[0] = e[1] - s[1];
  line[1] = -(e[0] - s[0]);
  line[2] = -(line[0] * s[0] + line[1] * s[1]);
}

// Pixel box (x0, y0, x1, y1) and radius about `centre` of the region where the kernel can reach
// 1/255: the hull with every line pushed out to L_j = M = log(254) / (a b) (see _support_box in
// convexes.py), from the corners where two pushed lines meet inside all others. In double, as
// the torch code. No corner: an infinite box and radius (culled).
HOST_DEVICE void support_box(const double (*lines)[3], int count, double ab, const double* centre,
                             double* box, double* radius) {
  const double inf = INFINITY;
  box[0] = box[1] = inf;
  box[2] = box[3] = -inf;
  double r = 0.0;
  bool any = false;
  const double margin = ConvexKernel::LOG_INV_ALPHA_MIN_ODDS / max_of(ab, 1e-300);
  double rhs[CONVEX_MAX_LINES], norm[CONVEX_MAX_LINES];  // n·x = rhs on each pushed line
  for (int l = 0; l < count; ++l) {
    rhs[l] = margin - lines[l][2];
    norm[l] = sqrt(lines[l][0] * lines[l][0] + lines[l][1] * lines[l][1]);
  }
  for (int i = 0; i < count; ++i) {
    const double* ni = lines[i];
    for (int j = i + 1; j < count; ++j) {
      const double* nj = lines[j];
      const double det = ni[0] * nj[1] - ni[1] * nj[0];
      if (!(abs_of(det) > 1e-9 * (norm[i] * norm[j]))) continue;  // parallel: they never meet
      const double x = (rhs[i] * nj[1] - rhs[j] * ni[1]) / det;
      const double y = (ni[0] * rhs[j] - nj[0] * rhs[i]) / det;
      if (!isfinite(x) || !isfinite(y)) continue;
      bool feasible = true;
      for (int l = 0; l < count && feasible; ++l) {
        const double lhs = x * lines[l][0] + y * lines[l][1];
        feasible = lhs <= rhs[l] + (1e-6 * (abs_of(lhs) + abs_of(rhs[l])) + 1e-9);  // slack
      }
      if (!feasible) continue;
      box[0] = min_of(box[0], x);
      box[1] = min_of(box[1], y);
      box[2] = max_of(box[2], x);
      box[3] = max_of(box[3], y);
      const double dx = x - centre[0], dy = y - centre[1];
      r = max_of(r, sqrt(dx * dx + dy * dy));
      any = true;
    }
  }
  *radius = any ? r : inf;
}

// Forward of item m = b * N + n: footprint of convex n in camera b.
template <typename T>
HOST_DEVICE void convex_project_forward_item(const ConvexProjectForwardArgs<T>& a, long m) {
  const ConvexProjectOptions& o = a.o;
  const int b = static_cast<int>(m / o.N), n = static_cast<int>(m % o.N);
  const ConvexView<T> v = view_convex(o, a.points, a.viewmats, a.Ks, b, n);
  uint8_t* edges = a.edges + CONVEX_MAX_LINES * static_cast<size_t>(m);
  const int count = hull_edges<T>(v.q, o.K, edges);

  T* fp = a.params + ConvexKernel::P * static_cast<size_t>(m);
  const T a_delta = v.d * exp_of(a.log_delta[n]), b_sigma = v.d * exp_of(a.log_sigma[n]);
  fp[0] = T(count);
  fp[1] = a_delta;
  fp[2] = b_sigma;
  double lines[CONVEX_MAX_LINES][3];
  for (int s = 0; s < CONVEX_MAX_LINES; ++s) {
    T* line = fp + 3 + 3 * s;
    if (s < count) {
      edge_line<T>(v.q, o.K, edges[s], line);
    } else {
      line[0] = line[1] = line[2] = T(0);
    }
    for (int i = 0; i < 3; ++i) lines[s][i] = static_cast<double>(line[i]);
  }
  a.opacities[m] = T(1) / (T(1) + exp_of(-a.opacity_logit[n]));
  a.depths[m] = v.depth;
  a.means2d[2 * m] = v.mean[0];
  a.means2d[2 * m + 1] = v.mean[1];

  // Pixel box and radius (no gradient), as _support_box + pixel_bounds.
  const double centre[2] = {static_cast<double>(v.mean[0]), static_cast<double>(v.mean[1])};
  double box[4] = {0.0, 0.0, 0.0, 0.0}, radius_d = INFINITY;
  const bool drawable = v.in_front && count >= 3;  // else culled whatever the box
  // a b in the footprint's precision first, as the torch code multiplies before going to double.
  if (drawable)
    support_box(lines, count, static_cast<double>(a_delta * b_sigma), centre, box, &radius_d);
  const T radius = static_cast<T>(radius_d);
  const bool visible = drawable && radius <= T(CONVEX_MAX_RADIUS);
  // Pixel i has its centre at i + 0.5; the box is [ceil(x0 - ½), floor(x1 - ½) + 1) clipped to
  // the image. NaN survives the clamps (comparisons with it are false) and then zeroes the bound.
  const double edge[4] = {ceil(box[0] - 0.5), ceil(box[1] - 0.5), floor(box[2] - 0.5) + 1.0,
                          floor(box[3] - 0.5) + 1.0};
  const double limit[4] = {double(o.width), double(o.height), double(o.width), double(o.height)};
  int32_t* bounds = a.bounds + 4 * static_cast<size_t>(m);
  for (int i = 0; i < 4; ++i) {
    double e = edge[i] < 0.0 ? 0.0 : edge[i];
    e = e > limit[i] ? limit[i] : e;
    bounds[i] = visible && isfinite(e) ? static_cast<int32_t>(e) : 0;
  }
  const bool on_screen = bounds[2] > bounds[0] && bounds[3] > bounds[1];
  a.radii[m] = on_screen ? static_cast<int32_t>(ceil(radius)) : 0;
}

// Backward of convex n: its cotangents in all B cameras summed in camera order by one thread
// (no atomics, deterministic), the gradients of its four inputs written (not accumulated).
//
// The torch code draws the lines from q' = means2d + (q - mean q), so a line cotangent reaches q
// as v_q' - mean(v_q') plus 1/K of means2d's total cotangent. That total is v_means2d here: the
// autograd wrapper (recon/_ops/convex_project.py) already adds the footprint's translation
// gradient Σ v_q' into it, which keeps means2d.grad what the torch projection gives.
template <typename T>
HOST_DEVICE void convex_project_backward_item(const ConvexProjectBackwardArgs<T>& a, int n) {
  const ConvexProjectOptions& o = a.o;
  const int K = o.K;
  T v_p[CONVEX_MAX_POINTS][3];
  for (int k = 0; k < K; ++k) v_p[k][0] = v_p[k][1] = v_p[k][2] = T(0);
  T v_ld = T(0), v_ls = T(0), v_op = T(0);
  const T delta = exp_of(a.log_delta[n]), sigma = exp_of(a.log_sigma[n]);
  const T sig = T(1) / (T(1) + exp_of(-a.opacity_logit[n]));
  for (int b = 0; b < o.B; ++b) {
    const size_t m = static_cast<size_t>(b) * o.N + n;
    const ConvexView<T> v = view_convex(o, a.points, a.viewmats, a.Ks, b, n);
    const T* g = a.v_params + ConvexKernel::P * m;
    v_op += a.v_opacities[m];

    // a = d δ, b = d σ (d = depth where every point is in front, else the constant 1).
    v_ld += g[1] * v.d * delta;
    v_ls += g[2] * v.d * sigma;
    const T v_depth = a.v_depths[m] + (v.in_front ? g[1] * delta + g[2] * sigma : T(0));

    // Lines n = (e_y, -e_x), c = -n·q_i with e = q_j - q_i, on q'.
    T v_q[CONVEX_MAX_POINTS][2];
    for (int k = 0; k < K; ++k) v_q[k][0] = v_q[k][1] = T(0);
    const uint8_t* edges = a.edges + CONVEX_MAX_LINES * m;
    for (int s = 0; s < CONVEX_MAX_LINES && edges[s] != CONVEX_NO_EDGE; ++s) {
      const int i = edges[s] / K, j = edges[s] % K;
      T line[3];
      edge_line<T>(v.q, K, edges[s], line);
      const T* gl = g + 3 + 3 * s;
      const T v_nx = gl[0] - gl[2] * v.q[i][0], v_ny = gl[1] - gl[2] * v.q[i][1];
      const T v_ex = -v_ny, v_ey = v_nx;
      v_q[j][0] += v_ex;
      v_q[j][1] += v_ey;
      v_q[i][0] += -v_ex - gl[2] * line[0];
      v_q[i][1] += -v_ey - gl[2] * line[1];
    }
    T shift[2] = {T(0), T(0)};
    for (int k = 0; k < K; ++k) {
      shift[0] += v_q[k][0];
      shift[1] += v_q[k][1];
    }
    const T* v_mean = a.v_means2d + 2 * m;
    for (int i = 0; i < 2; ++i) shift[i] = (v_mean[i] - shift[i]) / T(K);

    // q = (fx x / zs + cx, fy y / zs + cy); depth = mean z; cam = R p + t.
    for (int k = 0; k < K; ++k) {
      const T vx = v_q[k][0] + shift[0], vy = v_q[k][1] + shift[1];
      const T zs = v.zs[k];
      T v_cam[3] = {vx * v.fx / zs, vy * v.fy / zs, v_depth / T(K)};
      if (v.cam[k][2] > T(o.near_plane))
        v_cam[2] += -(vx * v.fx * v.cam[k][0] + vy * v.fy * v.cam[k][1]) / (zs * zs);
      for (int i = 0; i < 3; ++i)
        v_p[k][i] += v.R[i] * v_cam[0] + v.R[3 + i] * v_cam[1] + v.R[6 + i] * v_cam[2];
    }
  }
  T* out = a.v_points + 3 * static_cast<size_t>(n) * K;
  for (int k = 0; k < K; ++k)
    for (int i = 0; i < 3; ++i) out[3 * k + i] = v_p[k][i];
  a.v_log_delta[n] = v_ld;
  a.v_log_sigma[n] = v_ls;
  a.v_opacity_logit[n] = v_op * sig * (T(1) - sig);
}

namespace cpu {
// OpenMP loops over convex_project_forward_item / convex_project_backward_item
// (cuda/cpu/convex_project.cpp; float and double).
template <typename T> void project_convexes_forward(const ConvexProjectForwardArgs<T>& a);
template <typename T> void project_convexes_backward(const ConvexProjectBackwardArgs<T>& a);
}  // namespace cpu
}  // namespace recon
