// CUDA launchers of the tile rasterizer (definitions in rasterize_fwd.cu / rasterize_bwd.cu).
// Plain C++ declarations: the torch glue (cuda/bindings_cuda.cpp) includes this without nvcc.
#pragma once

#include "../include/rasterize.h"

namespace recon {
namespace gpu {

// One thread block per (camera, tile), one thread per pixel; `stream` is a cudaStream_t.
// Return false for an unknown kind. Outputs as documented for ForwardArgs / BackwardArgs, except:
// max_weight is reduced with atomics (isect_weight unused), and backward's `scratch` is a zeroed
// [B, H, W, C] buffer of the per-pixel "features behind" sums. Gradients use atomicAdd, so float
// sums may differ from run to run in the last bits (the CPU backend is deterministic).
template <typename T> bool rasterize_forward(int kind, const ForwardArgs<T>& args, void* stream);
template <typename T> bool rasterize_backward(int kind, const BackwardArgs<T>& args, void* stream);

}  // namespace gpu
}  // namespace recon
