// CUDA implementations of the recon rasterizer ops (schemas in bindings.cpp). Compiled only in
// the CUDA build (recon/_ops/build.py); checks and allocates, then calls cuda/gpu launchers.
#include <ATen/core/Tensor.h>
#include <ATen/Dispatch.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAStream.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/zeros.h>
#include <ATen/ops/zeros_like.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include "gpu/rasterize.h"

namespace recon {

// Defined in bindings.cpp.
RasterParams check_raster_inputs(const at::Tensor& params, const at::Tensor& opacities,
                                 const at::Tensor& features, const at::Tensor& isect_prims,
                                 const at::Tensor& tile_ranges, int64_t kind, int64_t width,
                                 int64_t height, int64_t tile_size);
void check_bounds(const RasterParams& p, const at::Tensor& params, const at::Tensor& bounds);
void check_backward_inputs(const RasterParams& p, const at::Tensor& params,
                           const at::Tensor& final_T, const at::Tensor& last_idx,
                           const at::Tensor& v_out, const at::Tensor& v_alpha);

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

}  // namespace
}  // namespace recon

TORCH_LIBRARY_IMPL(recon, CUDA, m) {
  m.impl("rasterize_fwd", &recon::rasterize_fwd_cuda);
  m.impl("rasterize_bwd", &recon::rasterize_bwd_cuda);
}
