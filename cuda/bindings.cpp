// The torch ops of recon's rasterizer: schemas declared once under TORCH_LIBRARY(recon), the CPU
// implementation registered here; the CUDA one is registered by bindings_cuda.cpp, which only the
// CUDA build compiles. This file checks shapes and allocates; cuda/cpu/rasterize.cpp computes.
#include <ATen/core/Tensor.h>
#include <ATen/Dispatch.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/empty_like.h>
#include <ATen/ops/scalar_tensor.h>
#include <ATen/ops/zeros.h>
#include <ATen/ops/zeros_like.h>
#include <torch/library.h>

#include "bindings.h"
#include "include/loss.h"
#include "include/noise.h"
#include "include/rasterize.h"
#include "include/sh.h"

namespace recon {

// Shape, dtype and device checks shared with the CUDA registration (declared in bindings.h).
// Messages name the argument and the expected shape.
RasterParams check_raster_inputs(const at::Tensor& params, const at::Tensor& opacities,
                                 const at::Tensor& features, const at::Tensor& isect_prims,
                                 const at::Tensor& tile_ranges, int64_t kind, int64_t width,
                                 int64_t height, int64_t tile_size) {
  const int P = cpu::kernel_params(static_cast<int>(kind));
  const int V = cpu::kernel_vertices(static_cast<int>(kind));
  TORCH_CHECK(P > 0, "recon rasterizer: unknown primitive kind ", kind,
              " (this build knows gaussian=0, convex=1, triangle=2 where compiled in)");
  TORCH_CHECK(width > 0 && height > 0 && tile_size > 0, "recon rasterizer: width, height and ",
              "tile_size must be positive, got ", width, "x", height, " tile ", tile_size);
  TORCH_CHECK(params.dim() == 3 && params.size(2) == P, "recon rasterizer: params must be [B, N, ",
              P, "] for kind ", kind, ", got ", params.sizes());
  TORCH_CHECK(at::isFloatingType(params.scalar_type()) &&
                  (params.scalar_type() == at::kFloat || params.scalar_type() == at::kDouble),
              "recon rasterizer: params must be float32 or float64, got ", params.scalar_type());
  const int64_t B = params.size(0), N = params.size(1);
  TORCH_CHECK(opacities.dim() == 2 && opacities.size(0) == B && opacities.size(1) == N,
              "recon rasterizer: opacities must be [B, N] = [", B, ", ", N, "], got ",
              opacities.sizes());
  TORCH_CHECK(features.dim() == 4 && features.size(0) == B && features.size(1) == N &&
                  features.size(2) == V,
              "recon rasterizer: features must be [B, N, V, C] = [", B, ", ", N, ", ", V,
              ", C], got ", features.sizes());
  for (const at::Tensor* t : {&opacities, &features}) {
    TORCH_CHECK(t->scalar_type() == params.scalar_type(),
                "recon rasterizer: opacities and features must have the dtype of params (",
                params.scalar_type(), "), got ", t->scalar_type());
  }
  for (const at::Tensor* t : {&params, &opacities, &features, &isect_prims, &tile_ranges}) {
    TORCH_CHECK(t->device() == params.device(), "recon rasterizer: all inputs must be on ",
                params.device(), ", got one on ", t->device());
    TORCH_CHECK(t->is_contiguous(), "recon rasterizer: inputs must be contiguous");
  }
  const int64_t tiles_x = (width + tile_size - 1) / tile_size;
  const int64_t tiles_y = (height + tile_size - 1) / tile_size;
  TORCH_CHECK(isect_prims.dim() == 1 && isect_prims.scalar_type() == at::kInt,
              "recon rasterizer: isect_prims must be a 1-D int32 tensor, got ",
              isect_prims.scalar_type(), " ", isect_prims.sizes());
  TORCH_CHECK(tile_ranges.dim() == 2 && tile_ranges.size(0) == B * tiles_x * tiles_y &&
                  tile_ranges.size(1) == 2 && tile_ranges.scalar_type() == at::kInt,
              "recon rasterizer: tile_ranges must be int32 [B * tiles, 2] = [",
              B * tiles_x * tiles_y, ", 2], got ", tile_ranges.scalar_type(), " ",
              tile_ranges.sizes());
  TORCH_CHECK(B * N < (int64_t(1) << 31) && isect_prims.size(0) < (int64_t(1) << 31),
              "recon rasterizer: too many primitives or intersections for int32 indices");
  RasterParams p;
  p.B = static_cast<int>(B);
  p.N = static_cast<int>(N);
  p.C = static_cast<int>(features.size(3));
  p.width = static_cast<int>(width);
  p.height = static_cast<int>(height);
  p.tile_size = static_cast<int>(tile_size);
  p.tiles_x = static_cast<int>(tiles_x);
  p.tiles_y = static_cast<int>(tiles_y);
  p.num_isects = static_cast<int>(isect_prims.size(0));
  return p;
}

void check_backward_inputs(const RasterParams& p, const at::Tensor& params,
                           const at::Tensor& final_T, const at::Tensor& last_idx,
                           const at::Tensor& v_out, const at::Tensor& v_alpha) {
  auto expect = [&](const at::Tensor& t, std::vector<int64_t> shape, at::ScalarType dtype,
                    const char* name) {
    TORCH_CHECK(t.sizes() == at::IntArrayRef(shape) && t.scalar_type() == dtype &&
                    t.device() == params.device() && t.is_contiguous(),
                "recon rasterizer backward: ", name, " must be a contiguous ", dtype, " tensor of ",
                "shape ", at::IntArrayRef(shape), " on ", params.device(), ", got ", t.scalar_type(),
                " ", t.sizes());
  };
  expect(final_T, {p.B, p.height, p.width}, params.scalar_type(), "final_T");
  expect(last_idx, {p.B, p.height, p.width}, at::kInt, "last_idx");
  expect(v_out, {p.B, p.height, p.width, p.C}, params.scalar_type(), "v_out");
  expect(v_alpha, {p.B, p.height, p.width}, params.scalar_type(), "v_alpha");
}

// `bounds` is [B, N, 4] int32, or empty for "no boxes" (every pixel of a touched tile).
void check_bounds(const RasterParams& p, const at::Tensor& params, const at::Tensor& bounds) {
  if (bounds.numel() == 0) return;
  TORCH_CHECK(bounds.dim() == 3 && bounds.size(0) == p.B && bounds.size(1) == p.N &&
                  bounds.size(2) == 4 && bounds.scalar_type() == at::kInt &&
                  bounds.device() == params.device() && bounds.is_contiguous(),
              "recon rasterizer: bounds must be a contiguous int32 [B, N, 4] = [", p.B, ", ", p.N,
              ", 4] tensor on ", params.device(), " (or empty), got ", bounds.scalar_type(), " ",
              bounds.sizes());
}

ShSizes check_sh_inputs(int64_t degree, const at::Tensor& dirs, const at::Tensor& coeffs) {
  TORCH_CHECK(degree >= 0 && degree <= SH_MAX_DEGREE, "recon sh: degree must be in [0, ",
              SH_MAX_DEGREE, "], got ", degree);
  TORCH_CHECK(dirs.dim() == 3 && dirs.size(2) == 3, "recon sh: dirs must be [B, N, 3], got ",
              dirs.sizes());
  const int64_t B = dirs.size(0), N = dirs.size(1);
  const bool shared = coeffs.dim() == 3;
  TORCH_CHECK((shared && coeffs.size(0) == N) ||
                  (coeffs.dim() == 4 && coeffs.size(0) == B && coeffs.size(1) == N),
              "recon sh: coeffs must be [N, K, C] or [B, N, K, C] with B = ", B, ", N = ", N,
              ", got ", coeffs.sizes());
  const int64_t K = coeffs.size(-2);
  TORCH_CHECK(K >= (degree + 1) * (degree + 1), "recon sh: degree ", degree, " needs ",
              (degree + 1) * (degree + 1), " coefficients per channel, got ", K);
  TORCH_CHECK(dirs.scalar_type() == coeffs.scalar_type() &&
                  (dirs.scalar_type() == at::kFloat || dirs.scalar_type() == at::kDouble),
              "recon sh: dirs and coeffs must share a float32/float64 dtype");
  TORCH_CHECK(dirs.is_contiguous() && coeffs.is_contiguous() && dirs.device() == coeffs.device(),
              "recon sh: inputs must be contiguous and on one device");
  return ShSizes{static_cast<int>(B), static_cast<int>(N), static_cast<int>(K),
                 static_cast<int>(coeffs.size(-1)), shared};
}

BinGrid check_bin_inputs(const at::Tensor& bounds, const at::Tensor& depths, int64_t width,
                         int64_t height, int64_t tile_size) {
  TORCH_CHECK(depths.dim() == 2 && bounds.dim() == 3 && bounds.size(0) == depths.size(0) &&
                  bounds.size(1) == depths.size(1) && bounds.size(2) == 4,
              "recon binning: bounds must be [B,N,4] and depths [B,N], got ", bounds.sizes(),
              " and ", depths.sizes());
  TORCH_CHECK(bounds.device() == depths.device(),
              "recon binning: bounds and depths must be on the same device");
  TORCH_CHECK(width > 0 && height > 0 && tile_size > 0,
              "recon binning: width, height and tile_size must be positive");
  return BinGrid{static_cast<int>(depths.size(0)), static_cast<int>(depths.size(1)),
                 static_cast<int>(width), static_cast<int>(height), static_cast<int>(tile_size),
                 static_cast<int>((width + tile_size - 1) / tile_size),
                 static_cast<int>((height + tile_size - 1) / tile_size)};
}

// Checks the projection inputs (shapes in cuda/include/project.h) and returns the sizes.
ProjectOptions check_project_inputs(const at::Tensor& means, const at::Tensor& quats,
                                         const at::Tensor& log_scales,
                                         const at::Tensor& opacity_logits,
                                         const at::Tensor& viewmats, const at::Tensor& Ks,
                                         int64_t width, int64_t height, double eps2d,
                                         double near_plane, double far_plane, double radius_clip,
                                         bool antialiased) {
  TORCH_CHECK(means.dim() == 2 && means.size(1) == 3, "recon projection: means must be [N, 3], got ",
              means.sizes());
  const int64_t N = means.size(0);
  const int64_t B = viewmats.size(0);
  auto expect = [&](const at::Tensor& t, std::vector<int64_t> shape, const char* name) {
    TORCH_CHECK(t.sizes() == at::IntArrayRef(shape) && t.scalar_type() == means.scalar_type() &&
                    t.device() == means.device() && t.is_contiguous(),
                "recon projection: ", name, " must be a contiguous ", means.scalar_type(),
                " tensor of shape ", at::IntArrayRef(shape), " on ", means.device(), ", got ",
                t.scalar_type(), " ", t.sizes(), " on ", t.device());
  };
  TORCH_CHECK(means.scalar_type() == at::kFloat || means.scalar_type() == at::kDouble,
              "recon projection: float32 or float64 tensors expected, got ", means.scalar_type());
  expect(means, {N, 3}, "means");
  expect(quats, {N, 4}, "quats");
  expect(log_scales, {N, 3}, "log_scales");
  expect(opacity_logits, {N}, "opacity_logits");
  expect(viewmats, {B, 4, 4}, "viewmats");
  expect(Ks, {B, 3, 3}, "Ks");
  TORCH_CHECK(width > 0 && height > 0, "recon projection: image size must be positive");
  TORCH_CHECK(B * N < (int64_t(1) << 31), "recon projection: too many Gaussians x cameras");
  return ProjectOptions{static_cast<int>(B), static_cast<int>(N), static_cast<int>(width),
                             static_cast<int>(height), eps2d, near_plane, far_plane,
                             radius_clip, antialiased};
}

void check_project_cotangents(const ProjectOptions& o, const at::Tensor& means,
                              const at::Tensor& v_means2d, const at::Tensor& v_conics,
                              const at::Tensor& v_opacities, const at::Tensor& v_depths,
                              const at::Tensor& v_normals) {
  const std::pair<const at::Tensor*, int64_t> cotangents[] = {
      {&v_means2d, 2}, {&v_conics, 3}, {&v_opacities, 0}, {&v_depths, 0}, {&v_normals, 3}};
  for (const auto& [t, last] : cotangents) {
    const std::vector<int64_t> shape =
        last ? std::vector<int64_t>{o.B, o.N, last} : std::vector<int64_t>{o.B, o.N};
    TORCH_CHECK(t->sizes() == at::IntArrayRef(shape) && t->is_contiguous() &&
                    t->scalar_type() == means.scalar_type() && t->device() == means.device(),
                "recon projection backward: cotangents must be contiguous tensors shaped like "
                "the forward outputs, got ", t->sizes());
  }
}

ConvexProjectOptions check_convex_project_inputs(
    const at::Tensor& points, const at::Tensor& log_delta, const at::Tensor& log_sigma,
    const at::Tensor& opacity_logit, const at::Tensor& viewmats, const at::Tensor& Ks,
    int64_t width, int64_t height, double near_plane) {
  TORCH_CHECK(points.dim() == 3 && points.size(2) == 3 && points.size(1) >= 3 &&
                  points.size(1) <= CONVEX_MAX_POINTS,
              "recon convex projection: points must be [N, K, 3] with 3 <= K <= ",
              CONVEX_MAX_POINTS, ", got ", points.sizes());
  TORCH_CHECK(points.scalar_type() == at::kFloat || points.scalar_type() == at::kDouble,
              "recon convex projection: float32 or float64 tensors expected, got ",
              points.scalar_type());
  const int64_t N = points.size(0), K = points.size(1);
  const int64_t B = viewmats.dim() == 3 ? viewmats.size(0) : -1;
  auto expect = [&](const at::Tensor& t, std::vector<int64_t> shape, const char* name) {
    TORCH_CHECK(t.sizes() == at::IntArrayRef(shape) && t.scalar_type() == points.scalar_type() &&
                    t.device() == points.device() && t.is_contiguous(),
                "recon convex projection: ", name, " must be a contiguous ", points.scalar_type(),
                " tensor of shape ", at::IntArrayRef(shape), " on ", points.device(), ", got ",
                t.scalar_type(), " ", t.sizes(), " on ", t.device());
  };
  expect(points, {N, K, 3}, "points");
  expect(log_delta, {N}, "log_delta");
  expect(log_sigma, {N}, "log_sigma");
  expect(opacity_logit, {N}, "opacity_logit");
  expect(viewmats, {B, 4, 4}, "viewmats");
  expect(Ks, {B, 3, 3}, "Ks");
  TORCH_CHECK(width > 0 && height > 0, "recon convex projection: image size must be positive");
  TORCH_CHECK(B * N < (int64_t(1) << 31), "recon convex projection: too many convexes x cameras");
  return ConvexProjectOptions{static_cast<int>(B), static_cast<int>(N), static_cast<int>(K),
                              static_cast<int>(width), static_cast<int>(height), near_plane};
}

void check_convex_project_backward(const ConvexProjectOptions& o, const at::Tensor& points,
                                   const at::Tensor& edges, const at::Tensor& v_params,
                                   const at::Tensor& v_opacities, const at::Tensor& v_depths,
                                   const at::Tensor& v_means2d) {
  TORCH_CHECK(edges.sizes() == at::IntArrayRef({o.B, o.N, CONVEX_MAX_LINES}) &&
                  edges.scalar_type() == at::kByte && edges.is_contiguous() &&
                  edges.device() == points.device(),
              "recon convex projection backward: edges must be the uint8 [B, N, ",
              CONVEX_MAX_LINES, "] tensor forward returned, got ", edges.scalar_type(), " ",
              edges.sizes());
  const std::pair<const at::Tensor*, int64_t> cotangents[] = {
      {&v_params, ConvexKernel::P}, {&v_opacities, 0}, {&v_depths, 0}, {&v_means2d, 2}};
  for (const auto& [t, last] : cotangents) {
    const std::vector<int64_t> shape =
        last ? std::vector<int64_t>{o.B, o.N, last} : std::vector<int64_t>{o.B, o.N};
    TORCH_CHECK(t->sizes() == at::IntArrayRef(shape) && t->is_contiguous() &&
                    t->scalar_type() == points.scalar_type() && t->device() == points.device(),
                "recon convex projection backward: cotangents must be contiguous tensors shaped "
                "like the forward outputs, got ", t->sizes());
  }
}

namespace {

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor> rasterize_fwd_cpu(
    const at::Tensor& params, const at::Tensor& opacities, const at::Tensor& features,
    const at::Tensor& bounds, const at::Tensor& isect_prims, const at::Tensor& tile_ranges,
    int64_t kind, int64_t width, int64_t height, int64_t tile_size) {
  const RasterParams p = check_raster_inputs(params, opacities, features, isect_prims, tile_ranges,
                                             kind, width, height, tile_size);
  check_bounds(p, params, bounds);
  const auto opts = params.options();
  const auto iopts = opts.dtype(at::kInt);
  at::Tensor out = at::empty({p.B, p.height, p.width, p.C}, opts);
  at::Tensor final_T = at::empty({p.B, p.height, p.width}, opts);
  at::Tensor last_idx = at::empty({p.B, p.height, p.width}, iopts);
  at::Tensor median_idx = at::empty({p.B, p.height, p.width}, iopts);
  at::Tensor max_weight = at::zeros({p.B, p.N}, opts);
  at::Tensor isect_weight = at::zeros({p.num_isects}, opts);
  AT_DISPATCH_FLOATING_TYPES(params.scalar_type(), "recon::rasterize_fwd", [&] {
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
                            isect_weight.data_ptr<scalar_t>()};
    cpu::rasterize_forward<scalar_t>(static_cast<int>(kind), a);
  });
  return {out, final_T, last_idx, median_idx, max_weight};
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> rasterize_bwd_cpu(
    const at::Tensor& params, const at::Tensor& opacities, const at::Tensor& features,
    const at::Tensor& bounds, const at::Tensor& isect_prims, const at::Tensor& tile_ranges,
    int64_t kind, int64_t width, int64_t height, int64_t tile_size, const at::Tensor& final_T, const at::Tensor& last_idx,
    const at::Tensor& v_out, const at::Tensor& v_alpha, bool absgrad) {
  const RasterParams p = check_raster_inputs(params, opacities, features, isect_prims, tile_ranges,
                                             kind, width, height, tile_size);
  check_bounds(p, params, bounds);
  check_backward_inputs(p, params, final_T, last_idx, v_out, v_alpha);
  const auto opts = params.options();
  at::Tensor v_params = at::zeros_like(params);
  at::Tensor v_opacities = at::zeros_like(opacities);
  at::Tensor v_features = at::zeros_like(features);
  at::Tensor abs_params = absgrad ? at::zeros_like(params) : at::empty({0}, opts);
  const int stride = cpu::backward_scratch_stride(static_cast<int>(kind), p.C, absgrad);
  at::Tensor scratch = at::zeros({static_cast<int64_t>(p.num_isects) * stride}, opts);
  AT_DISPATCH_FLOATING_TYPES(params.scalar_type(), "recon::rasterize_bwd", [&] {
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
    cpu::rasterize_backward<scalar_t>(static_cast<int>(kind), a);
  });
  return {v_params, v_opacities, v_features, abs_params};
}

// image, target: [P, H, W] planes of one dtype, H and W at least one SSIM window.
void check_loss_inputs(const at::Tensor& image, const at::Tensor& target) {
  TORCH_CHECK(image.dim() == 3 && image.sizes() == target.sizes(),
              "recon photometric loss: image and target must be [P, H, W] of one shape, got ",
              image.sizes(), " and ", target.sizes());
  TORCH_CHECK(image.size(1) >= SSIM_TAPS && image.size(2) >= SSIM_TAPS,
              "recon photometric loss: images must be at least ", SSIM_TAPS, "x", SSIM_TAPS,
              " pixels (one SSIM window), got ", image.size(2), "x", image.size(1));
  TORCH_CHECK((image.scalar_type() == at::kFloat || image.scalar_type() == at::kDouble) &&
                  target.scalar_type() == image.scalar_type(),
              "recon photometric loss: image and target must be float32 or float64 of one dtype");
  TORCH_CHECK(image.is_contiguous() && target.is_contiguous(),
              "recon photometric loss: image and target must be contiguous");
}

// (1 - λ)·mean|x - y| + λ·(1 - mean SSIM), and the SSIM partials backward needs.
std::tuple<at::Tensor, at::Tensor> photometric_loss_fwd_cpu(const at::Tensor& image,
                                                            const at::Tensor& target,
                                                            double ssim_lambda) {
  check_loss_inputs(image, target);
  const int64_t P = image.size(0), H = image.size(1), W = image.size(2);
  const int64_t Ho = H - 2 * SSIM_RADIUS, Wo = W - 2 * SSIM_RADIUS;
  at::Tensor partials = at::empty({3, P, Ho, Wo}, image.options());
  double sums[2];
  AT_DISPATCH_FLOATING_TYPES(image.scalar_type(), "recon::photometric_loss_fwd", [&] {
    cpu::photometric_loss_forward<scalar_t>(static_cast<int>(P), static_cast<int>(H),
                                            static_cast<int>(W), image.data_ptr<scalar_t>(),
                                            target.data_ptr<scalar_t>(),
                                            partials.data_ptr<scalar_t>(), sums);
  });
  const double l1 = sums[0] / static_cast<double>(P * H * W);
  const double d_ssim = 1.0 - sums[1] / static_cast<double>(P * Ho * Wo);
  return {at::scalar_tensor(l1 + ssim_lambda * (d_ssim - l1), image.options()), partials};
}

at::Tensor photometric_loss_bwd_cpu(const at::Tensor& image, const at::Tensor& target,
                                    const at::Tensor& partials, double ssim_lambda,
                                    const at::Tensor& v_loss) {
  check_loss_inputs(image, target);
  const int64_t P = image.size(0), H = image.size(1), W = image.size(2);
  const int64_t Ho = H - 2 * SSIM_RADIUS, Wo = W - 2 * SSIM_RADIUS;
  TORCH_CHECK(partials.sizes() == at::IntArrayRef({3, P, Ho, Wo}) && partials.is_contiguous() &&
                  partials.scalar_type() == image.scalar_type(),
              "recon photometric loss: partials must be the forward's [3, P, H-10, W-10]");
  TORCH_CHECK(v_loss.numel() == 1, "recon photometric loss: v_loss must be a scalar");
  const double g = v_loss.item<double>();
  at::Tensor v_image = at::empty_like(image);
  AT_DISPATCH_FLOATING_TYPES(image.scalar_type(), "recon::photometric_loss_bwd", [&] {
    cpu::photometric_loss_backward<scalar_t>(
        static_cast<int>(P), static_cast<int>(H), static_cast<int>(W),
        image.data_ptr<scalar_t>(), target.data_ptr<scalar_t>(), partials.data_ptr<scalar_t>(),
        static_cast<scalar_t>(-ssim_lambda * g / static_cast<double>(P * Ho * Wo)),
        static_cast<scalar_t>((1.0 - ssim_lambda) * g / static_cast<double>(P * H * W)),
        v_image.data_ptr<scalar_t>());
  });
  return v_image;
}

at::Tensor gaussian_noise_cpu(const at::Tensor& quats, const at::Tensor& log_scales,
                              const at::Tensor& opacity_logits, const at::Tensor& eta,
                              double scale) {
  const int64_t N = quats.size(0);
  TORCH_CHECK(quats.dim() == 2 && quats.size(1) == 4 && log_scales.sizes() == eta.sizes() &&
                  eta.dim() == 2 && eta.size(0) == N && eta.size(1) == 3 &&
                  opacity_logits.numel() == N,
              "recon gaussian noise: quats [N, 4], log_scales [N, 3], opacity_logits [N] and "
              "eta [N, 3] expected, got ", quats.sizes(), ", ", log_scales.sizes(), ", ",
              opacity_logits.sizes(), ", ", eta.sizes());
  for (const at::Tensor* t : {&log_scales, &opacity_logits, &eta})
    TORCH_CHECK(t->scalar_type() == quats.scalar_type() && t->is_contiguous(),
                "recon gaussian noise: every input must be contiguous, of the quats' dtype");
  TORCH_CHECK(quats.is_contiguous(), "recon gaussian noise: quats must be contiguous");
  at::Tensor noise = at::empty_like(eta);
  AT_DISPATCH_FLOATING_TYPES(quats.scalar_type(), "recon::gaussian_noise", [&] {
    cpu::gaussian_noise<scalar_t>(static_cast<int>(N), quats.data_ptr<scalar_t>(),
                                  log_scales.data_ptr<scalar_t>(),
                                  opacity_logits.data_ptr<scalar_t>(), eta.data_ptr<scalar_t>(),
                                  static_cast<scalar_t>(scale), noise.data_ptr<scalar_t>());
  });
  return noise;
}

at::Tensor sh_fwd_cpu(int64_t degree, const at::Tensor& dirs, const at::Tensor& coeffs) {
  const ShSizes s = check_sh_inputs(degree, dirs, coeffs);
  at::Tensor colors = at::empty({s.B, s.N, s.C}, dirs.options());
  AT_DISPATCH_FLOATING_TYPES(dirs.scalar_type(), "recon::sh_fwd", [&] {
    cpu::sh_forward<scalar_t>(static_cast<int>(degree), s.B, s.N, s.K, s.C, s.shared,
                              dirs.data_ptr<scalar_t>(), coeffs.data_ptr<scalar_t>(),
                              colors.data_ptr<scalar_t>());
  });
  return colors;
}

std::tuple<at::Tensor, at::Tensor> sh_bwd_cpu(int64_t degree, const at::Tensor& dirs,
                                              const at::Tensor& coeffs,
                                              const at::Tensor& v_colors) {
  const ShSizes s = check_sh_inputs(degree, dirs, coeffs);
  TORCH_CHECK(v_colors.sizes() == at::IntArrayRef({s.B, s.N, s.C}) && v_colors.is_contiguous() &&
                  v_colors.scalar_type() == dirs.scalar_type(),
              "recon sh backward: v_colors must be a contiguous [B, N, C] tensor of the dtype "
              "of dirs, got ", v_colors.sizes());
  at::Tensor v_dirs = at::empty_like(dirs);
  at::Tensor v_coeffs = at::zeros_like(coeffs);
  AT_DISPATCH_FLOATING_TYPES(dirs.scalar_type(), "recon::sh_bwd", [&] {
    cpu::sh_backward<scalar_t>(static_cast<int>(degree), s.B, s.N, s.K, s.C, s.shared,
                               dirs.data_ptr<scalar_t>(), coeffs.data_ptr<scalar_t>(),
                               v_colors.data_ptr<scalar_t>(), v_dirs.data_ptr<scalar_t>(),
                               v_coeffs.data_ptr<scalar_t>());
  });
  return {v_dirs, v_coeffs};
}

std::tuple<at::Tensor, at::Tensor> bin_tiles_cpu(const at::Tensor& bounds, const at::Tensor& depths,
                                                 int64_t width, int64_t height,
                                                 int64_t tile_size) {
  const BinGrid g = check_bin_inputs(bounds, depths, width, height, tile_size);
  const at::Tensor b = bounds.to(at::kInt).contiguous();
  const at::Tensor d = depths.to(at::kFloat).contiguous();
  const int64_t num_tiles = static_cast<int64_t>(g.B) * g.tiles_x * g.tiles_y;
  at::Tensor counts = at::empty({num_tiles}, depths.options().dtype(at::kLong));
  const int64_t M = cpu::count_tile_intersections(g, b.data_ptr<int32_t>(),
                                                  counts.data_ptr<int64_t>());
  TORCH_CHECK(M < (int64_t{1} << 31), "recon binning: ", M,
              " tile intersections overflow int32; use fewer primitives or a smaller image");
  const auto iopts = depths.options().dtype(at::kInt);
  at::Tensor prims = at::empty({M}, iopts), ranges = at::empty({num_tiles, 2}, iopts);
  cpu::fill_tile_bins(g, b.data_ptr<int32_t>(), d.data_ptr<float>(), counts.data_ptr<int64_t>(),
                      prims.data_ptr<int32_t>(), ranges.data_ptr<int32_t>());
  return {prims, ranges};
}

ProjectOutputs project_gaussians_fwd_cpu(
    const at::Tensor& means, const at::Tensor& quats, const at::Tensor& log_scales,
    const at::Tensor& opacity_logits, const at::Tensor& viewmats, const at::Tensor& Ks,
    int64_t width, int64_t height, double eps2d, double near_plane, double far_plane,
    double radius_clip, bool antialiased) {
  return project_forward(means, quats, log_scales, opacity_logits, viewmats, Ks, width, height,
                         eps2d, near_plane, far_plane, radius_clip, antialiased,
                         [](const auto& a) { cpu::project_gaussians_forward(a); });
}

ProjectGradients project_gaussians_bwd_cpu(
    const at::Tensor& means, const at::Tensor& quats, const at::Tensor& log_scales,
    const at::Tensor& opacity_logits, const at::Tensor& viewmats, const at::Tensor& Ks,
    int64_t width, int64_t height, double eps2d, double near_plane, double far_plane,
    double radius_clip, bool antialiased, const at::Tensor& v_means2d, const at::Tensor& v_conics,
    const at::Tensor& v_opacities, const at::Tensor& v_depths, const at::Tensor& v_normals) {
  return project_backward(means, quats, log_scales, opacity_logits, viewmats, Ks, width, height,
                          eps2d, near_plane, far_plane, radius_clip, antialiased, v_means2d,
                          v_conics, v_opacities, v_depths, v_normals,
                          [](const auto& a) { cpu::project_gaussians_backward(a); });
}

ConvexProjectOutputs project_convexes_fwd_cpu(
    const at::Tensor& points, const at::Tensor& log_delta, const at::Tensor& log_sigma,
    const at::Tensor& opacity_logit, const at::Tensor& viewmats, const at::Tensor& Ks,
    int64_t width, int64_t height, double near_plane) {
  return convex_project_forward(points, log_delta, log_sigma, opacity_logit, viewmats, Ks, width,
                                height, near_plane,
                                [](const auto& a) { cpu::project_convexes_forward(a); });
}

ConvexProjectGradients project_convexes_bwd_cpu(
    const at::Tensor& points, const at::Tensor& log_delta, const at::Tensor& log_sigma,
    const at::Tensor& opacity_logit, const at::Tensor& viewmats, const at::Tensor& Ks,
    const at::Tensor& edges, int64_t width, int64_t height, double near_plane,
    const at::Tensor& v_params, const at::Tensor& v_opacities, const at::Tensor& v_depths,
    const at::Tensor& v_means2d) {
  return convex_project_backward(points, log_delta, log_sigma, opacity_logit, viewmats, Ks, edges,
                                 width, height, near_plane, v_params, v_opacities, v_depths,
                                 v_means2d,
                                 [](const auto& a) { cpu::project_convexes_backward(a); });
}

}  // namespace
}  // namespace recon

TORCH_LIBRARY(recon, m) {
  m.def(
      "rasterize_fwd(Tensor params, Tensor opacities, Tensor features, Tensor bounds, "
      "Tensor isect_prims, "
      "Tensor tile_ranges, int kind, int width, int height, int tile_size) "
      "-> (Tensor out, Tensor final_T, Tensor last_idx, Tensor median_idx, Tensor max_weight)");
  m.def(
      "rasterize_bwd(Tensor params, Tensor opacities, Tensor features, Tensor bounds, "
      "Tensor isect_prims, "
      "Tensor tile_ranges, int kind, int width, int height, int tile_size, Tensor final_T, "
      "Tensor last_idx, Tensor v_out, Tensor v_alpha, bool absgrad) "
      "-> (Tensor v_params, Tensor v_opacities, Tensor v_features, Tensor absgrad_params)");
  // The trainer's (1 - λ)·L1 + λ·(1 - SSIM) on [P, H, W] planes (recon.train.losses is the
  // reference); partials [3, P, H-10, W-10] are the SSIM window derivatives backward reuses.
  m.def("photometric_loss_fwd(Tensor image, Tensor target, float ssim_lambda) "
        "-> (Tensor loss, Tensor partials)");
  m.def("photometric_loss_bwd(Tensor image, Tensor target, Tensor partials, float ssim_lambda, "
        "Tensor v_loss) -> Tensor v_image");
  // 3DGS-MCMC's covariance-shaped, opacity-gated position noise of Gaussians (the torch
  // reference: recon.models.gaussians.GaussianModel.position_noise); eta [N, 3] ~ N(0, I).
  m.def("gaussian_noise(Tensor quats, Tensor log_scales, Tensor opacity_logits, Tensor eta, "
        "float scale) -> Tensor noise");
  m.def("sh_fwd(int degree, Tensor dirs, Tensor coeffs) -> Tensor colors");
  m.def("sh_bwd(int degree, Tensor dirs, Tensor coeffs, Tensor v_colors) "
        "-> (Tensor v_dirs, Tensor v_coeffs)");
  // Tile binning of pixel boxes [B,N,4] by depth (recon.render.binning.bin_footprints_torch is
  // the reference). isect_prims [M] int32, tile_ranges [B*tiles,2] int32.
  m.def("bin_tiles(Tensor bounds, Tensor depths, int width, int height, int tile_size) "
        "-> (Tensor isect_prims, Tensor tile_ranges)");
  // Fused Gaussian projection (recon.primitives.gaussians.project_torch is the reference).
  m.def(
      "project_gaussians_fwd(Tensor means, Tensor quats, Tensor log_scales, "
      "Tensor opacity_logits, Tensor viewmats, Tensor Ks, int width, int height, float eps2d, "
      "float near_plane, float far_plane, float radius_clip, bool antialiased) "
      "-> (Tensor means2d, Tensor conics, Tensor opacities, Tensor depths, Tensor bounds, "
      "Tensor radii, Tensor normals)");
  m.def(
      "project_gaussians_bwd(Tensor means, Tensor quats, Tensor log_scales, "
      "Tensor opacity_logits, Tensor viewmats, Tensor Ks, int width, int height, float eps2d, "
      "float near_plane, float far_plane, float radius_clip, bool antialiased, "
      "Tensor v_means2d, Tensor v_conics, Tensor v_opacities, Tensor v_depths, Tensor v_normals) "
      "-> (Tensor v_means, Tensor v_quats, Tensor v_log_scales, Tensor v_opacity_logits)");
  // Fused convex projection (recon.primitives.convexes.project is the reference). edges [B,N,8]
  // uint8: the hull edge i*K+j behind each line slot (255: none), which backward replays.
  m.def(
      "project_convexes_fwd(Tensor points, Tensor log_delta, Tensor log_sigma, "
      "Tensor opacity_logit, Tensor viewmats, Tensor Ks, int width, int height, float near_plane) "
      "-> (Tensor params, Tensor opacities, Tensor depths, Tensor means2d, Tensor bounds, "
      "Tensor radii, Tensor edges)");
  m.def(
      "project_convexes_bwd(Tensor points, Tensor log_delta, Tensor log_sigma, "
      "Tensor opacity_logit, Tensor viewmats, Tensor Ks, Tensor edges, int width, int height, "
      "float near_plane, Tensor v_params, Tensor v_opacities, Tensor v_depths, Tensor v_means2d) "
      "-> (Tensor v_points, Tensor v_log_delta, Tensor v_log_sigma, Tensor v_opacity_logit)");
}

TORCH_LIBRARY_IMPL(recon, CPU, m) {
  m.impl("rasterize_fwd", &recon::rasterize_fwd_cpu);
  m.impl("rasterize_bwd", &recon::rasterize_bwd_cpu);
  m.impl("photometric_loss_fwd", &recon::photometric_loss_fwd_cpu);
  m.impl("photometric_loss_bwd", &recon::photometric_loss_bwd_cpu);
  m.impl("gaussian_noise", &recon::gaussian_noise_cpu);
  m.impl("sh_fwd", &recon::sh_fwd_cpu);
  m.impl("sh_bwd", &recon::sh_bwd_cpu);
  m.impl("bin_tiles", &recon::bin_tiles_cpu);
  m.impl("project_gaussians_fwd", &recon::project_gaussians_fwd_cpu);
  m.impl("project_gaussians_bwd", &recon::project_gaussians_bwd_cpu);
  m.impl("project_convexes_fwd", &recon::project_convexes_fwd_cpu);
  m.impl("project_convexes_bwd", &recon::project_convexes_bwd_cpu);
}
