// CUDA launchers of the fused convex projection (recon::project_convexes_fwd / _bwd); the
// argument structs and the math are in cuda/include/convex_project.h. Plain C++ declarations for
// bindings_cuda.cpp; `stream` is a cudaStream_t.
#pragma once

#include "../include/convex_project.h"

namespace recon {
namespace gpu {

template <typename T>
void project_convexes_forward(const ConvexProjectForwardArgs<T>& a, void* stream);
template <typename T>
void project_convexes_backward(const ConvexProjectBackwardArgs<T>& a, void* stream);

}  // namespace gpu
}  // namespace recon
