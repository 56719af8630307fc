// CUDA kernels of the spherical-harmonics colour op, with the math of cuda/include/sh.h (shared
// with the OpenMP loops of cuda/cpu/sh.cpp): forward one thread per (camera, point).
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

// Backward in two kernels so that every write is coalesced (one thread writing a point's K x C
// coefficient gradients leaves a warp's stores 4·K·C bytes apart, which made this 15x slower than
// the forward): v_dirs with one thread per (camera, point), v_coeffs with one thread per
// (coefficient row, basis k) writing its C channels, summing the cameras that share the row.
template <typename T, int DEG>
__global__ void sh_backward_dirs_kernel(int B, int N, int K, int C, bool shared, const T* dirs,
                                        const T* coeffs, const T* v_colors, T* v_dirs) {
  const long m = static_cast<long>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (m >= static_cast<long>(B) * N) return;
  const long n = shared ? m % N : m;
  const T* d = dirs + 3 * m;
  const T len = sqrt_of(d[0] * d[0] + d[1] * d[1] + d[2] * d[2]);
  const T inv = len > T(0) ? T(1) / len : T(0);
  const T x = d[0] * inv, y = d[1] * inv, z = d[2] * inv;
  constexpr int NB = (DEG + 1) * (DEG + 1);
  T v_b[SH_MAX_BASES];
  const T* c_row = coeffs + n * K * C;
  const T* v_color = v_colors + m * C;
#pragma unroll
  for (int k = 0; k < NB; ++k) {
    T acc = T(0);
    for (int c = 0; c < C; ++c) acc += c_row[k * C + c] * v_color[c];
    v_b[k] = acc;
  }
  T v_n[3];
  sh_bases_vjp(DEG, x, y, z, v_b, v_n);
  // Through the normalisation n = d / |d| (as sh_backward_point).
  const T dot = v_n[0] * x + v_n[1] * y + v_n[2] * z;
  v_dirs[3 * m] = (v_n[0] - dot * x) * inv;
  v_dirs[3 * m + 1] = (v_n[1] - dot * y) * inv;
  v_dirs[3 * m + 2] = (v_n[2] - dot * z) * inv;
}

template <typename T, int DEG>
__global__ void sh_backward_coeffs_kernel(int B, int N, int K, int C, bool shared, const T* dirs,
                                          const T* v_colors, T* v_coeffs) {
  const long rows = shared ? N : static_cast<long>(B) * N;
  const long e = static_cast<long>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (e >= rows * K) return;
  const long r = e / K;
  const int k = static_cast<int>(e % K);
  T* out = v_coeffs + e * C;
  for (int c = 0; c < C; ++c) out[c] = T(0);
  constexpr int NB = (DEG + 1) * (DEG + 1);
  if (k >= NB) return;  // bands above the degree get no gradient
  for (int b = 0; b < (shared ? B : 1); ++b) {
    const long m = shared ? static_cast<long>(b) * N + r : r;
    const T* d = dirs + 3 * m;
    const T len = sqrt_of(d[0] * d[0] + d[1] * d[1] + d[2] * d[2]);
    const T inv = len > T(0) ? T(1) / len : T(0);
    T basis[SH_MAX_BASES];
    sh_bases(DEG, d[0] * inv, d[1] * inv, d[2] * inv, basis);
    T bk = T(0);
#pragma unroll
    for (int q = 0; q < NB; ++q) bk = q == k ? basis[q] : bk;  // select: no local memory
    for (int c = 0; c < C; ++c) out[c] += bk * v_colors[m * C + c];
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
  const auto cuda_stream = static_cast<cudaStream_t>(stream);
  dispatch_degree(degree, [&](auto deg) {
    constexpr int DEG = decltype(deg)::value;
    sh_backward_dirs_kernel<T, DEG><<<blocks_for(static_cast<long>(B) * N), THREADS, 0,
                                      cuda_stream>>>(B, N, K, C, shared_coeffs, dirs, coeffs,
                                                     v_colors, v_dirs);
    sh_backward_coeffs_kernel<T, DEG><<<blocks_for(rows * K), THREADS, 0, cuda_stream>>>(
        B, N, K, C, shared_coeffs, dirs, v_colors, v_coeffs);
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
