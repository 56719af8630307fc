// CUDA launchers of the fused Gaussian projection (recon::project_gaussians_fwd / _bwd); the
// argument structs and the math are in cuda/include/project.h. Plain C++ declarations for
// bindings_cuda.cpp; `stream` is a cudaStream_t.
#pragma once

#include "../include/project.h"

namespace recon {
namespace gpu {

template <typename T> void project_gaussians_forward(const ProjectForwardArgs<T>& a, void* stream);
template <typename T> void project_gaussians_backward(const ProjectBackwardArgs<T>& a, void* stream);

}  // namespace gpu
}  // namespace recon
