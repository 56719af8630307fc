// CUDA kernels of the fused convex projection: one thread per (camera, convex) forward and one per
// convex (looping over the cameras) backward, around the math of cuda/include/convex_project.h.
#include <cuda_runtime.h>

#include "convex_project.h"

namespace recon {
namespace gpu {
namespace {

constexpr int THREADS = 256;

template <typename T>
__global__ void forward_kernel(ConvexProjectForwardArgs<T> a) {
  const long m = static_cast<long>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (m < static_cast<long>(a.o.B) * a.o.N) convex_project_forward_item(a, m);
}

template <typename T>
__global__ void backward_kernel(ConvexProjectBackwardArgs<T> a) {
  const int n = static_cast<int>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (n < a.o.N) convex_project_backward_item(a, n);
}

int blocks_for(long items) { return static_cast<int>((items + THREADS - 1) / THREADS); }

}  // namespace

template <typename T>
void project_convexes_forward(const ConvexProjectForwardArgs<T>& a, void* stream) {
  const long items = static_cast<long>(a.o.B) * a.o.N;
  if (items == 0) return;
  forward_kernel<T><<<blocks_for(items), THREADS, 0, static_cast<cudaStream_t>(stream)>>>(a);
}

template <typename T>
void project_convexes_backward(const ConvexProjectBackwardArgs<T>& a, void* stream) {
  if (a.o.N == 0) return;
  backward_kernel<T><<<blocks_for(a.o.N), THREADS, 0, static_cast<cudaStream_t>(stream)>>>(a);
}

template void project_convexes_forward<float>(const ConvexProjectForwardArgs<float>&, void*);
template void project_convexes_forward<double>(const ConvexProjectForwardArgs<double>&, void*);
template void project_convexes_backward<float>(const ConvexProjectBackwardArgs<float>&, void*);
template void project_convexes_backward<double>(const ConvexProjectBackwardArgs<double>&, void*);

}  // namespace gpu
}  // namespace recon
