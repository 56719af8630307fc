// OpenMP loops of the fused convex projection (math in cuda/include/convex_project.h).
#include "../include/convex_project.h"

namespace recon {
namespace cpu {

template <typename T>
void project_convexes_forward(const ConvexProjectForwardArgs<T>& a) {
  const long items = static_cast<long>(a.o.B) * a.o.N;
#pragma omp parallel for schedule(static)
  for (long m = 0; m < items; ++m) convex_project_forward_item(a, m);
}

template <typename T>
void project_convexes_backward(const ConvexProjectBackwardArgs<T>& a) {
#pragma omp parallel for schedule(static)
  for (int n = 0; n < a.o.N; ++n) convex_project_backward_item(a, n);
}

template void project_convexes_forward<float>(const ConvexProjectForwardArgs<float>&);
template void project_convexes_forward<double>(const ConvexProjectForwardArgs<double>&);
template void project_convexes_backward<float>(const ConvexProjectBackwardArgs<float>&);
template void project_convexes_backward<double>(const ConvexProjectBackwardArgs<double>&);

}  // namespace cpu
}  // namespace recon
