// CUDA launchers of the fused Gaussian projection (recon::project_gaussians_fwd / _bwd), the GPU
// twin of recon.primitives.gaussians.project_torch (the reference the tests compare against).
// Plain C++ declarations for bindings_cuda.cpp; `stream` is a cudaStream_t.
#pragma once

#include <cstdint>

namespace recon {
namespace gpu {

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

template <typename T> void project_gaussians_forward(const ProjectForwardArgs<T>& a, void* stream);
template <typename T> void project_gaussians_backward(const ProjectBackwardArgs<T>& a, void* stream);

}  // namespace gpu
}  // namespace recon
