// OpenMP loops of the fused Gaussian projection (math in cuda/include/project.h).
#include "../include/project.h"

namespace recon {
namespace cpu {

template <typename T>
void project_gaussians_forward(const ProjectForwardArgs<T>& a) {
  const long items = static_cast<long>(a.o.B) * a.o.N;
#pragma omp parallel for schedule(static)
  for (long m = 0; m < items; ++m) project_forward_item(a, m);
}

template <typename T>
void project_gaussians_backward(const ProjectBackwardArgs<T>& a) {
#pragma omp parallel for schedule(static)
  for (int n = 0; n < a.o.N; ++n) project_backward_item(a, n);
}

template void project_gaussians_forward<float>(const ProjectForwardArgs<float>&);
template void project_gaussians_forward<double>(const ProjectForwardArgs<double>&);
template void project_gaussians_backward<float>(const ProjectBackwardArgs<float>&);
template void project_gaussians_backward<double>(const ProjectBackwardArgs<double>&);

}  // namespace cpu
}  // namespace recon
