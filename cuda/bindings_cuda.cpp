// CUDA implementations of the recon rasterizer ops (schemas in bindings.cpp). Compiled only in
// the CUDA build (recon/_ops/build.py); checks and allocates, then calls cuda/gpu launchers.
#include <ATen/core/Tensor.h>
#include <ATen/Dispatch.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAStream.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/cumsum.h>
#include <ATen/ops/empty_like.h>
#include <ATen/ops/zeros.h>
#include <ATen/ops/zeros_like.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include "bindings.h"
#include "gpu/binning.h"
#include "gpu/convex_project.h"
#include "gpu/project.h"
#include "gpu/rasterize.h"
#include "gpu/sh.h"

namespace recon {

namespace {

void check_tile_size(int64_t tile_size) {
  TORCH_CHECK(tile_size * tile_size <= 1024, "recon rasterizer (CUDA): tile_size ", tile_size,
              " needs more than 1024 threads per block; use tile_size <= 32");
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor> rasterize_fwd_cuda(
    const at::Tensor& params, const at::Tensor& opacities, const at::Tensor& features,
    const at::Tensor& bounds, const at::Tensor& isect_prims, const at::Tensor& tile_ranges,
    int64_t kind, int64_t width, int64_t height, int64_t tile_size) {
  const RasterParams p = check_raster_inputs(params, opacities, features, isect_prims, tile_ranges,
                                             kind, width, height, tile_size);
  check_bounds(p, params, bounds);
  check_tile_size(tile_size);
  const c10::cuda::CUDAGuard guard(params.device());
  const auto opts = params.options();
  const auto iopts = opts.dtype(at::kInt);
  at::Tensor out = at::empty({p.B, p.height, p.width, p.C}, opts);
  at::Tensor final_T = at::empty({p.B, p.height, p.width}, opts);
  at::Tensor last_idx = at::empty({p.B, p.height, p.width}, iopts);
  at::Tensor median_idx = at::empty({p.B, p.height, p.width}, iopts);
  at::Tensor max_weight = at::zeros({p.B, p.N}, opts);
  void* stream = c10::cuda::getCurrentCUDAStream().stream();
  AT_DISPATCH_FLOATING_TYPES(params.scalar_type(), "recon::rasterize_fwd_cuda", [&] {
    ForwardArgs<scalar_t> a{p,
                            params.data_ptr<scalar_t>(),
                            opacities.data_ptr<scalar_t>(),
                            features.data_ptr<scalar_t>(),
                            bounds.numel() ? bounds.data_ptr<int32_t>() : nullptr,
                            isect_prims.data_ptr<int32_t>(),
                            tile_ranges.data_ptr<int32_t>(),
                            out.data_ptr<scalar_t>(),
                            final_T.data_ptr<scalar_t>(),
                            last_idx.data_ptr<int32_t>(),
                            median_idx.data_ptr<int32_t>(),
                            max_weight.data_ptr<scalar_t>(),
                            nullptr};
    gpu::rasterize_forward<scalar_t>(static_cast<int>(kind), a, stream);
  });
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return {out, final_T, last_idx, median_idx, max_weight};
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> rasterize_bwd_cuda(
    const at::Tensor& params, const at::Tensor& opacities, const at::Tensor& features,
    const at::Tensor& bounds, const at::Tensor& isect_prims, const at::Tensor& tile_ranges,
    int64_t kind, int64_t width, int64_t height, int64_t tile_size, const at::Tensor& final_T, const at::Tensor& last_idx,
    const at::Tensor& v_out, const at::Tensor& v_alpha, bool absgrad) {
  const RasterParams p = check_raster_inputs(params, opacities, features, isect_prims, tile_ranges,
                                             kind, width, height, tile_size);
  check_bounds(p, params, bounds);
  check_tile_size(tile_size);
  check_backward_inputs(p, params, final_T, last_idx, v_out, v_alpha);
  const c10::cuda::CUDAGuard guard(params.device());
  const auto opts = params.options();
  at::Tensor v_params = at::zeros_like(params);
  at::Tensor v_opacities = at::zeros_like(opacities);
  at::Tensor v_features = at::zeros_like(features);
  at::Tensor abs_params = absgrad ? at::zeros_like(params) : at::empty({0}, opts);
  at::Tensor scratch = at::zeros({p.B, p.height, p.width, p.C}, opts);
  void* stream = c10::cuda::getCurrentCUDAStream().stream();
  AT_DISPATCH_FLOATING_TYPES(params.scalar_type(), "recon::rasterize_bwd_cuda", [&] {
    BackwardArgs<scalar_t> a{p,
                             params.data_ptr<scalar_t>(),
                             opacities.data_ptr<scalar_t>(),
                             features.data_ptr<scalar_t>(),
                             bounds.numel() ? bounds.data_ptr<int32_t>() : nullptr,
                             isect_prims.data_ptr<int32_t>(),
                             tile_ranges.data_ptr<int32_t>(),
                             final_T.data_ptr<scalar_t>(),
                             last_idx.data_ptr<int32_t>(),
                             v_out.data_ptr<scalar_t>(),
                             v_alpha.data_ptr<scalar_t>(),
                             v_params.data_ptr<scalar_t>(),
                             v_opacities.data_ptr<scalar_t>(),
                             v_features.data_ptr<scalar_t>(),
                             absgrad ? abs_params.data_ptr<scalar_t>() : nullptr,
                             scratch.data_ptr<scalar_t>()};
    gpu::rasterize_backward<scalar_t>(static_cast<int>(kind), a, stream);
  });
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return {v_params, v_opacities, v_features, abs_params};
}

at::Tensor sh_fwd_cuda(int64_t degree, const at::Tensor& dirs, const at::Tensor& coeffs) {
  const ShSizes s = check_sh_inputs(degree, dirs, coeffs);
  const c10::cuda::CUDAGuard guard(dirs.device());
  at::Tensor colors = at::empty({s.B, s.N, s.C}, dirs.options());
  void* stream = c10::cuda::getCurrentCUDAStream().stream();
  AT_DISPATCH_FLOATING_TYPES(dirs.scalar_type(), "recon::sh_fwd_cuda", [&] {
    gpu::sh_forward<scalar_t>(static_cast<int>(degree), s.B, s.N, s.K, s.C, s.shared,
                              dirs.data_ptr<scalar_t>(), coeffs.data_ptr<scalar_t>(),
                              colors.data_ptr<scalar_t>(), stream);
  });
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return colors;
}

std::tuple<at::Tensor, at::Tensor> sh_bwd_cuda(int64_t degree, const at::Tensor& dirs,
                                               const at::Tensor& coeffs,
                                               const at::Tensor& v_colors) {
  const ShSizes s = check_sh_inputs(degree, dirs, coeffs);
  TORCH_CHECK(v_colors.sizes() == at::IntArrayRef({s.B, s.N, s.C}) && v_colors.is_contiguous() &&
                  v_colors.scalar_type() == dirs.scalar_type() &&
                  v_colors.device() == dirs.device(),
              "recon sh backward: v_colors must be a contiguous [B, N, C] tensor of the dtype "
              "and device of dirs, got ", v_colors.sizes());
  const c10::cuda::CUDAGuard guard(dirs.device());
  at::Tensor v_dirs = at::empty_like(dirs);
  at::Tensor v_coeffs = at::empty_like(coeffs);
  void* stream = c10::cuda::getCurrentCUDAStream().stream();
  AT_DISPATCH_FLOATING_TYPES(dirs.scalar_type(), "recon::sh_bwd_cuda", [&] {
    gpu::sh_backward<scalar_t>(static_cast<int>(degree), s.B, s.N, s.K, s.C, s.shared,
                               dirs.data_ptr<scalar_t>(), coeffs.data_ptr<scalar_t>(),
                               v_colors.data_ptr<scalar_t>(), v_dirs.data_ptr<scalar_t>(),
                               v_coeffs.data_ptr<scalar_t>(), stream);
  });
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return {v_dirs, v_coeffs};
}

ProjectOutputs project_gaussians_fwd_cuda(
    const at::Tensor& means, const at::Tensor& quats, const at::Tensor& log_scales,
    const at::Tensor& opacity_logits, const at::Tensor& viewmats, const at::Tensor& Ks,
    int64_t width, int64_t height, double eps2d, double near_plane, double far_plane,
    double radius_clip, bool antialiased) {
  const c10::cuda::CUDAGuard guard(means.device());
  void* stream = c10::cuda::getCurrentCUDAStream().stream();
  auto out = project_forward(means, quats, log_scales, opacity_logits, viewmats, Ks, width, height,
                             eps2d, near_plane, far_plane, radius_clip, antialiased,
                             [&](const auto& a) { gpu::project_gaussians_forward(a, stream); });
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return out;
}

ProjectGradients project_gaussians_bwd_cuda(
    const at::Tensor& means, const at::Tensor& quats, const at::Tensor& log_scales,
    const at::Tensor& opacity_logits, const at::Tensor& viewmats, const at::Tensor& Ks,
    int64_t width, int64_t height, double eps2d, double near_plane, double far_plane,
    double radius_clip, bool antialiased, const at::Tensor& v_means2d, const at::Tensor& v_conics,
    const at::Tensor& v_opacities, const at::Tensor& v_depths, const at::Tensor& v_normals) {
  const c10::cuda::CUDAGuard guard(means.device());
  void* stream = c10::cuda::getCurrentCUDAStream().stream();
  auto grads = project_backward(means, quats, log_scales, opacity_logits, viewmats, Ks, width,
                                height, eps2d, near_plane, far_plane, radius_clip, antialiased,
                                v_means2d, v_conics, v_opacities, v_depths, v_normals,
                                [&](const auto& a) { gpu::project_gaussians_backward(a, stream); });
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return grads;
}

ConvexProjectOutputs project_convexes_fwd_cuda(
    const at::Tensor& points, const at::Tensor& log_delta, const at::Tensor& log_sigma,
    const at::Tensor& opacity_logit, const at::Tensor& viewmats, const at::Tensor& Ks,
    int64_t width, int64_t height, double near_plane) {
  const c10::cuda::CUDAGuard guard(points.device());
  void* stream = c10::cuda::getCurrentCUDAStream().stream();
  auto out = convex_project_forward(
      points, log_delta, log_sigma, opacity_logit, viewmats, Ks, width, height, near_plane,
      [&](const auto& a) { gpu::project_convexes_forward(a, stream); });
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return out;
}

ConvexProjectGradients project_convexes_bwd_cuda(
    const at::Tensor& points, const at::Tensor& log_delta, const at::Tensor& log_sigma,
    const at::Tensor& opacity_logit, const at::Tensor& viewmats, const at::Tensor& Ks,
    const at::Tensor& edges, int64_t width, int64_t height, double near_plane,
    const at::Tensor& v_params, const at::Tensor& v_opacities, const at::Tensor& v_depths,
    const at::Tensor& v_means2d) {
  const c10::cuda::CUDAGuard guard(points.device());
  void* stream = c10::cuda::getCurrentCUDAStream().stream();
  auto grads = convex_project_backward(
      points, log_delta, log_sigma, opacity_logit, viewmats, Ks, edges, width, height,
      near_plane, v_params, v_opacities, v_depths, v_means2d,
      [&](const auto& a) { gpu::project_convexes_backward(a, stream); });
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return grads;
}

// Binning in four launches and one host sync (the intersection count sizes the arrays): tile
// counts, their prefix sum, keys + primitive ids, a radix sort over the tile-id and depth bits
// only (32 + bits of the largest camera·tile id), and the per-tile ranges.
std::tuple<at::Tensor, at::Tensor> bin_tiles_cuda(const at::Tensor& bounds,
                                                  const at::Tensor& depths, int64_t width,
                                                  int64_t height, int64_t tile_size) {
  const c10::cuda::CUDAGuard guard(depths.device());
  const BinGrid g = check_bin_inputs(bounds, depths, width, height, tile_size);
  const at::Tensor b = bounds.to(at::kInt).contiguous();
  const at::Tensor d = depths.to(at::kFloat).contiguous();
  const int64_t num_tiles = static_cast<int64_t>(g.B) * g.tiles_x * g.tiles_y;
  const auto iopts = depths.options().dtype(at::kInt);
  const auto lopts = depths.options().dtype(at::kLong);
  void* stream = c10::cuda::getCurrentCUDAStream().stream();
  at::Tensor ranges = at::empty({num_tiles, 2}, iopts);
  const int64_t n = static_cast<int64_t>(g.B) * g.N;
  int64_t M = 0;
  at::Tensor ends;
  if (n > 0) {
    at::Tensor counts = at::empty({n}, iopts);
    gpu::tile_counts(g, b.data_ptr<int32_t>(), counts.data_ptr<int32_t>(), stream);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
    ends = at::cumsum(counts, 0, at::kLong);
    M = ends[n - 1].item<int64_t>();  // the one host sync
  }
  TORCH_CHECK(M < (int64_t{1} << 31), "recon binning: ", M,
              " tile intersections overflow int32; use fewer primitives or a smaller image");
  at::Tensor keys = at::empty({M}, lopts), prims = at::empty({M}, iopts);
  at::Tensor sorted_keys = at::empty({M}, lopts), sorted_prims = at::empty({M}, iopts);
  auto* keys_ptr = reinterpret_cast<uint64_t*>(keys.data_ptr<int64_t>());
  auto* sorted_keys_ptr = reinterpret_cast<uint64_t*>(sorted_keys.data_ptr<int64_t>());
  if (M > 0) {
    gpu::tile_keys(g, b.data_ptr<int32_t>(), d.data_ptr<float>(), ends.data_ptr<int64_t>(),
                   keys_ptr, prims.data_ptr<int32_t>(), stream);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
    int tile_bits = 0;
    while (tile_bits < 32 && (int64_t{1} << tile_bits) < num_tiles) ++tile_bits;
    const int end_bit = 32 + tile_bits;
    const size_t scratch_bytes = gpu::sort_pairs_scratch(M, end_bit);
    at::Tensor scratch =
        at::empty({static_cast<int64_t>(scratch_bytes)}, depths.options().dtype(at::kByte));
    gpu::sort_pairs(scratch.data_ptr(), scratch_bytes, keys_ptr, sorted_keys_ptr,
                    prims.data_ptr<int32_t>(), sorted_prims.data_ptr<int32_t>(), M, end_bit,
                    stream);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  }
  gpu::tile_ranges(sorted_keys_ptr, M, num_tiles, ranges.data_ptr<int32_t>(), stream);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return {sorted_prims, ranges};
}

}  // namespace
}  // namespace recon

TORCH_LIBRARY_IMPL(recon, CUDA, m) {
  m.impl("rasterize_fwd", &recon::rasterize_fwd_cuda);
  m.impl("rasterize_bwd", &recon::rasterize_bwd_cuda);
  m.impl("sh_fwd", &recon::sh_fwd_cuda);
  m.impl("sh_bwd", &recon::sh_bwd_cuda);
  m.impl("bin_tiles", &recon::bin_tiles_cuda);
  m.impl("project_gaussians_fwd", &recon::project_gaussians_fwd_cuda);
  m.impl("project_gaussians_bwd", &recon::project_gaussians_bwd_cuda);
  m.impl("project_convexes_fwd", &recon::project_convexes_fwd_cuda);
  m.impl("project_convexes_bwd", &recon::project_convexes_bwd_cuda);
}
