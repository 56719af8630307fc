// Shared by the CPU (bindings.cpp) and CUDA (bindings_cuda.cpp) registrations of recon's ops:
// the input checks (defined in bindings.cpp) and the tensor plumbing of ops whose two versions
// differ only in the loop or kernel launch they call.
#pragma once

#include <ATen/core/Tensor.h>
#include <ATen/Dispatch.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/empty_like.h>

#include <tuple>

#include "include/binning.h"
#include "include/common.h"
#include "include/convex_project.h"
#include "include/project.h"

namespace recon {

RasterParams check_raster_inputs(const at::Tensor& params, const at::Tensor& opacities,
                                 const at::Tensor& features, const at::Tensor& isect_prims,
                                 const at::Tensor& tile_ranges, int64_t kind, int64_t width,
                                 int64_t height, int64_t tile_size);
void check_bounds(const RasterParams& p, const at::Tensor& params, const at::Tensor& bounds);
void check_backward_inputs(const RasterParams& p, const at::Tensor& params,
                           const at::Tensor& final_T, const at::Tensor& last_idx,
                           const at::Tensor& v_out, const at::Tensor& v_alpha);

// dirs [B, N, 3]; coeffs [N, K, C] (shared by the cameras) or [B, N, K, C].
struct ShSizes {
  int B, N, K, C;
  bool shared;
};
ShSizes check_sh_inputs(int64_t degree, const at::Tensor& dirs, const at::Tensor& coeffs);

ProjectOptions check_project_inputs(const at::Tensor& means, const at::Tensor& quats,
                                    const at::Tensor& log_scales, const at::Tensor& opacity_logits,
                                    const at::Tensor& viewmats, const at::Tensor& Ks,
                                    int64_t width, int64_t height, double eps2d,
                                    double near_plane, double far_plane, double radius_clip,
                                    bool antialiased);
void check_project_cotangents(const ProjectOptions& o, const at::Tensor& means,
                              const at::Tensor& v_means2d, const at::Tensor& v_conics,
                              const at::Tensor& v_opacities, const at::Tensor& v_depths,
                              const at::Tensor& v_normals);

// bounds [B, N, 4] and depths [B, N] on one device; returns the tile grid.
BinGrid check_bin_inputs(const at::Tensor& bounds, const at::Tensor& depths, int64_t width,
                         int64_t height, int64_t tile_size);

// means2d, conics, opacities, depths, bounds, radii, normals.
using ProjectOutputs =
    std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor>;
// v_means, v_quats, v_log_scales, v_opacity_logits.
using ProjectGradients = std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor>;

// recon::project_gaussians_fwd: checks, allocates, and calls launch(ProjectForwardArgs<T>).
template <typename Launch>
ProjectOutputs project_forward(const at::Tensor& means, const at::Tensor& quats,
                               const at::Tensor& log_scales, const at::Tensor& opacity_logits,
                               const at::Tensor& viewmats, const at::Tensor& Ks, int64_t width,
                               int64_t height, double eps2d, double near_plane, double far_plane,
                               double radius_clip, bool antialiased, Launch launch) {
  const ProjectOptions o =
      check_project_inputs(means, quats, log_scales, opacity_logits, viewmats, Ks, width, height,
                           eps2d, near_plane, far_plane, radius_clip, antialiased);
  const auto opts = means.options();
  const auto iopts = opts.dtype(at::kInt);
  at::Tensor means2d = at::empty({o.B, o.N, 2}, opts);
  at::Tensor conics = at::empty({o.B, o.N, 3}, opts);
  at::Tensor opacities = at::empty({o.B, o.N}, opts);
  at::Tensor depths = at::empty({o.B, o.N}, opts);
  at::Tensor bounds = at::empty({o.B, o.N, 4}, iopts);
  at::Tensor radii = at::empty({o.B, o.N}, iopts);
  at::Tensor normals = at::empty({o.B, o.N, 3}, opts);
  AT_DISPATCH_FLOATING_TYPES(means.scalar_type(), "recon::project_gaussians_fwd", [&] {
    launch(ProjectForwardArgs<scalar_t>{
        o, means.data_ptr<scalar_t>(), quats.data_ptr<scalar_t>(),
        log_scales.data_ptr<scalar_t>(), opacity_logits.data_ptr<scalar_t>(),
        viewmats.data_ptr<scalar_t>(), Ks.data_ptr<scalar_t>(), means2d.data_ptr<scalar_t>(),
        conics.data_ptr<scalar_t>(), opacities.data_ptr<scalar_t>(), depths.data_ptr<scalar_t>(),
        normals.data_ptr<scalar_t>(), bounds.data_ptr<int32_t>(), radii.data_ptr<int32_t>()});
  });
  return {means2d, conics, opacities, depths, bounds, radii, normals};
}

// recon::project_gaussians_bwd: checks, allocates, and calls launch(ProjectBackwardArgs<T>).
template <typename Launch>
ProjectGradients project_backward(
    const at::Tensor& means, const at::Tensor& quats, const at::Tensor& log_scales,
    const at::Tensor& opacity_logits, const at::Tensor& viewmats, const at::Tensor& Ks,
    int64_t width, int64_t height, double eps2d, double near_plane, double far_plane,
    double radius_clip, bool antialiased, const at::Tensor& v_means2d, const at::Tensor& v_conics,
    const at::Tensor& v_opacities, const at::Tensor& v_depths, const at::Tensor& v_normals,
    Launch launch) {
  const ProjectOptions o =
      check_project_inputs(means, quats, log_scales, opacity_logits, viewmats, Ks, width, height,
                           eps2d, near_plane, far_plane, radius_clip, antialiased);
  check_project_cotangents(o, means, v_means2d, v_conics, v_opacities, v_depths, v_normals);
  at::Tensor v_means = at::empty_like(means);
  at::Tensor v_quats = at::empty_like(quats);
  at::Tensor v_log_scales = at::empty_like(log_scales);
  at::Tensor v_logits = at::empty_like(opacity_logits);
  AT_DISPATCH_FLOATING_TYPES(means.scalar_type(), "recon::project_gaussians_bwd", [&] {
    launch(ProjectBackwardArgs<scalar_t>{
        o, means.data_ptr<scalar_t>(), quats.data_ptr<scalar_t>(),
        log_scales.data_ptr<scalar_t>(), opacity_logits.data_ptr<scalar_t>(),
        viewmats.data_ptr<scalar_t>(), Ks.data_ptr<scalar_t>(), v_means2d.data_ptr<scalar_t>(),
        v_conics.data_ptr<scalar_t>(), v_opacities.data_ptr<scalar_t>(),
        v_depths.data_ptr<scalar_t>(), v_normals.data_ptr<scalar_t>(),
        v_means.data_ptr<scalar_t>(), v_quats.data_ptr<scalar_t>(),
        v_log_scales.data_ptr<scalar_t>(), v_logits.data_ptr<scalar_t>()});
  });
  return {v_means, v_quats, v_log_scales, v_logits};
}

// points [N,K,3] (3 <= K <= 8), log_delta / log_sigma / opacity_logit [N], viewmats [B,4,4],
// Ks [B,3,3]: one float dtype, one device, contiguous.
ConvexProjectOptions check_convex_project_inputs(
    const at::Tensor& points, const at::Tensor& log_delta, const at::Tensor& log_sigma,
    const at::Tensor& opacity_logit, const at::Tensor& viewmats, const at::Tensor& Ks,
    int64_t width, int64_t height, double near_plane);
void check_convex_project_backward(const ConvexProjectOptions& o, const at::Tensor& points,
                                   const at::Tensor& edges, const at::Tensor& v_params,
                                   const at::Tensor& v_opacities, const at::Tensor& v_depths,
                                   const at::Tensor& v_means2d);

// params, opacities, depths, means2d, bounds, radii, edges.
using ConvexProjectOutputs = std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor,
                                        at::Tensor, at::Tensor>;
// v_points, v_log_delta, v_log_sigma, v_opacity_logit.
using ConvexProjectGradients = std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor>;

// recon::project_convexes_fwd: checks, allocates, and calls launch(ConvexProjectForwardArgs<T>).
template <typename Launch>
ConvexProjectOutputs convex_project_forward(const at::Tensor& points, const at::Tensor& log_delta,
                                            const at::Tensor& log_sigma,
                                            const at::Tensor& opacity_logit,
                                            const at::Tensor& viewmats, const at::Tensor& Ks,
                                            int64_t width, int64_t height, double near_plane,
                                            Launch launch) {
  const ConvexProjectOptions o = check_convex_project_inputs(
      points, log_delta, log_sigma, opacity_logit, viewmats, Ks, width, height, near_plane);
  const auto opts = points.options();
  const auto iopts = opts.dtype(at::kInt);
  at::Tensor params = at::empty({o.B, o.N, ConvexKernel::P}, opts);
  at::Tensor opacities = at::empty({o.B, o.N}, opts);
  at::Tensor depths = at::empty({o.B, o.N}, opts);
  at::Tensor means2d = at::empty({o.B, o.N, 2}, opts);
  at::Tensor bounds = at::empty({o.B, o.N, 4}, iopts);
  at::Tensor radii = at::empty({o.B, o.N}, iopts);
  at::Tensor edges = at::empty({o.B, o.N, CONVEX_MAX_LINES}, opts.dtype(at::kByte));
  AT_DISPATCH_FLOATING_TYPES(points.scalar_type(), "recon::project_convexes_fwd", [&] {
    launch(ConvexProjectForwardArgs<scalar_t>{
        o, points.data_ptr<scalar_t>(), log_delta.data_ptr<scalar_t>(),
        log_sigma.data_ptr<scalar_t>(), opacity_logit.data_ptr<scalar_t>(),
        viewmats.data_ptr<scalar_t>(), Ks.data_ptr<scalar_t>(), params.data_ptr<scalar_t>(),
        opacities.data_ptr<scalar_t>(), depths.data_ptr<scalar_t>(),
        means2d.data_ptr<scalar_t>(), bounds.data_ptr<int32_t>(), radii.data_ptr<int32_t>(),
        edges.data_ptr<uint8_t>()});
  });
  return {params, opacities, depths, means2d, bounds, radii, edges};
}

// recon::project_convexes_bwd: checks, allocates, and calls launch(ConvexProjectBackwardArgs<T>).
template <typename Launch>
ConvexProjectGradients convex_project_backward(
    const at::Tensor& points, const at::Tensor& log_delta, const at::Tensor& log_sigma,
    const at::Tensor& opacity_logit, const at::Tensor& viewmats, const at::Tensor& Ks,
    const at::Tensor& edges, int64_t width, int64_t height, double near_plane,
    const at::Tensor& v_params, const at::Tensor& v_opacities, const at::Tensor& v_depths,
    const at::Tensor& v_means2d, Launch launch) {
  const ConvexProjectOptions o = check_convex_project_inputs(
      points, log_delta, log_sigma, opacity_logit, viewmats, Ks, width, height, near_plane);
  check_convex_project_backward(o, points, edges, v_params, v_opacities, v_depths, v_means2d);
  at::Tensor v_points = at::empty_like(points);
  at::Tensor v_log_delta = at::empty_like(log_delta);
  at::Tensor v_log_sigma = at::empty_like(log_sigma);
  at::Tensor v_logit = at::empty_like(opacity_logit);
  AT_DISPATCH_FLOATING_TYPES(points.scalar_type(), "recon::project_convexes_bwd", [&] {
    launch(ConvexProjectBackwardArgs<scalar_t>{
        o, points.data_ptr<scalar_t>(), log_delta.data_ptr<scalar_t>(),
        log_sigma.data_ptr<scalar_t>(), opacity_logit.data_ptr<scalar_t>(),
        viewmats.data_ptr<scalar_t>(), Ks.data_ptr<scalar_t>(), edges.data_ptr<uint8_t>(),
        v_params.data_ptr<scalar_t>(), v_opacities.data_ptr<scalar_t>(),
        v_depths.data_ptr<scalar_t>(), v_means2d.data_ptr<scalar_t>(),
        v_points.data_ptr<scalar_t>(), v_log_delta.data_ptr<scalar_t>(),
        v_log_sigma.data_ptr<scalar_t>(), v_logit.data_ptr<scalar_t>()});
  });
  return {v_points, v_log_delta, v_log_sigma, v_logit};
}

}  // namespace recon
