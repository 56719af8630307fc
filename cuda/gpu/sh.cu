// CUDA kernels of the spherical-harmonics colour op: one thread per point, with the math of
// cuda/include/sh.h (shared with the OpenMP loops of cuda/cpu/sh.cpp).
#include <cuda_runtime.h>

#include <type_traits>

#include "../include/sh.h"
#include "sh.h"

namespace recon {
namespace gpu {
namespace {

constexpr int THREADS = 256;

// DEG is the degree (a compile-time constant keeps the bases in registers).
template <typename T, int DEG>
__global__ void sh_forward_kernel(int B, int N, int K, int C, bool shared, const T* dirs,
                                  const T* coeffs, T* colors) {
  const long m = static_cast<long>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (m >= static_cast<long>(B) * N) return;
  const long n = shared ? m % N : m;
  sh_forward_point(DEG, dirs + 3 * m, coeffs + n * K * C, C, colors + m * C);
}

template <typename T, int DEG>
__global__ void sh_backward_kernel(int B, int N, int K, int C, bool shared,
                                   const T* dirs, const T* coeffs, const T* v_colors, T* v_dirs,
                                   T* v_coeffs) {
  // Thread per (shared) coefficient row: with shared coefficients it loops over the cameras.
  const long r = static_cast<long>(blockIdx.x) * blockDim.x + threadIdx.x;
  const long rows = shared ? N : static_cast<long>(B) * N;
  if (r >= rows) return;
  for (int b = 0; b < (shared ? B : 1); ++b) {
    const long m = shared ? static_cast<long>(b) * N + r : r;
    sh_backward_point(DEG, dirs + 3 * m, coeffs + r * K * C, C, v_colors + m * C,
                      v_dirs + 3 * m, v_coeffs + r * K * C);
  }
}

int blocks_for(long items) { return static_cast<int>((items + THREADS - 1) / THREADS); }

// Calls f(std::integral_constant<int, degree>) for degree in [0, SH_MAX_DEGREE].
template <typename F>
void dispatch_degree(int degree, F&& f) {
  switch (degree) {
    case 0: f(std::integral_constant<int, 0>{}); break;
    case 1: f(std::integral_constant<int, 1>{}); break;
    case 2: f(std::integral_constant<int, 2>{}); break;
    default: f(std::integral_constant<int, 3>{}); break;
  }
}

}  // namespace

template <typename T>
void sh_forward(int degree, int B, int N, int K, int C, bool shared_coeffs, const T* dirs,
                const T* coeffs, T* colors, void* stream) {
  const long items = static_cast<long>(B) * N;
  if (items == 0) return;
  dispatch_degree(degree, [&](auto deg) {
    sh_forward_kernel<T, decltype(deg)::value>
        <<<blocks_for(items), THREADS, 0, static_cast<cudaStream_t>(stream)>>>(
            B, N, K, C, shared_coeffs, dirs, coeffs, colors);
  });
}

template <typename T>
void sh_backward(int degree, int B, int N, int K, int C, bool shared_coeffs, const T* dirs,
                 const T* coeffs, const T* v_colors, T* v_dirs, T* v_coeffs, void* stream) {
  const long rows = shared_coeffs ? N : static_cast<long>(B) * N;
  if (rows == 0) return;
  dispatch_degree(degree, [&](auto deg) {
    sh_backward_kernel<T, decltype(deg)::value>
        <<<blocks_for(rows), THREADS, 0, static_cast<cudaStream_t>(stream)>>>(
            B, N, K, C, shared_coeffs, dirs, coeffs, v_colors, v_dirs, v_coeffs);
  });
}

template void sh_forward<float>(int, int, int, int, int, bool, const float*, const float*, float*,
                                void*);
template void sh_forward<double>(int, int, int, int, int, bool, const double*, const double*,
                                 double*, void*);
template void sh_backward<float>(int, int, int, int, int, bool, const float*, const float*,
                                 const float*, float*, float*, void*);
template void sh_backward<double>(int, int, int, int, int, bool, const double*, const double*,
                                  const double*, double*, double*, void*);

}  // namespace gpu
}  // namespace recon
