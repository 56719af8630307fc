// CUDA kernels of the fused Gaussian projection: one thread per (camera, Gaussian) forward and one
// per Gaussian (looping over the cameras) backward, around the math of cuda/include/project.h.
#include <cuda_runtime.h>

#include "project.h"

namespace recon {
namespace gpu {
namespace {

constexpr int THREADS = 256;

template <typename T>
__global__ void forward_kernel(ProjectForwardArgs<T> a) {
  const long m = static_cast<long>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (m < static_cast<long>(a.o.B) * a.o.N) project_forward_item(a, m);
}

template <typename T>
__global__ void backward_kernel(ProjectBackwardArgs<T> a) {
  const int n = static_cast<int>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (n < a.o.N) project_backward_item(a, n);
}

int blocks_for(long items) { return static_cast<int>((items + THREADS - 1) / THREADS); }

}  // namespace

template <typename T>
void project_gaussians_forward(const ProjectForwardArgs<T>& a, void* stream) {
  const long items = static_cast<long>(a.o.B) * a.o.N;
  if (items == 0) return;
  forward_kernel<T><<<blocks_for(items), THREADS, 0, static_cast<cudaStream_t>(stream)>>>(a);
}

template <typename T>
void project_gaussians_backward(const ProjectBackwardArgs<T>& a, void* stream) {
  if (a.o.N == 0) return;
  backward_kernel<T><<<blocks_for(a.o.N), THREADS, 0, static_cast<cudaStream_t>(stream)>>>(a);
}

template void project_gaussians_forward<float>(const ProjectForwardArgs<float>&, void*);
template void project_gaussians_forward<double>(const ProjectForwardArgs<double>&, void*);
template void project_gaussians_backward<float>(const ProjectBackwardArgs<float>&, void*);
template void project_gaussians_backward<double>(const ProjectBackwardArgs<double>&, void*);

}  // namespace gpu
}  // namespace recon
