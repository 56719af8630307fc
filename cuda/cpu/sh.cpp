// OpenMP loops of the spherical-harmonics colour op (math in cuda/include/sh.h).
#include <cstddef>

#include "../include/sh.h"

namespace recon {
namespace cpu {

template <typename T>
void sh_forward(int degree, int B, int N, int K, int C, bool shared_coeffs, const T* dirs,
                const T* coeffs, T* colors) {
  const long total = static_cast<long>(B) * N;
#pragma omp parallel for schedule(static)
  for (long m = 0; m < total; ++m) {
    const long n = shared_coeffs ? m % N : m;
    sh_forward_point(degree, dirs + 3 * m, coeffs + n * K * C, C, colors + m * C);
  }
}

template <typename T>
void sh_backward(int degree, int B, int N, int K, int C, bool shared_coeffs, const T* dirs,
                 const T* coeffs, const T* v_colors, T* v_dirs, T* v_coeffs) {
  // One task per point n, looping over the cameras inside: shared coefficient gradients are
  // summed by one thread in camera order (deterministic, no atomics).
#pragma omp parallel for schedule(static)
  for (long n = 0; n < N; ++n) {
    for (int b = 0; b < B; ++b) {
      const long m = static_cast<long>(b) * N + n;
      const long cn = shared_coeffs ? n : m;
      sh_backward_point(degree, dirs + 3 * m, coeffs + cn * K * C, C, v_colors + m * C,
                        v_dirs + 3 * m, v_coeffs + cn * K * C);
    }
  }
}

template void sh_forward<float>(int, int, int, int, int, bool, const float*, const float*, float*);
template void sh_forward<double>(int, int, int, int, int, bool, const double*, const double*,
                                 double*);
template void sh_backward<float>(int, int, int, int, int, bool, const float*, const float*,
                                 const float*, float*, float*);
template void sh_backward<double>(int, int, int, int, int, bool, const double*, const double*,
                                  const double*, double*, double*);

}  // namespace cpu
}  // namespace recon
