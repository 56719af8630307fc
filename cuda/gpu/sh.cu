// CUDA kernels of the spherical-harmonics colour op, with the math of cuda/include/sh.h (shared
// with the OpenMP loops of cuda/cpu/sh.cpp): one thread per (camera, point), coefficient rows
// staged through shared memory when each point has its own row.
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

// Staged kernels for the common case where point m reads coefficient row m (one camera, or one
// row per camera): a block copies its points' rows (contiguous in memory) into shared memory with
// coalesced loads, each thread works on its own row there, and the backward writes its v_coeffs
// row back into the same shared slot for one coalesced store. Rows are padded to an odd stride so
// that threads reading "their" rows hit distinct banks.
__host__ __device__ inline int staged_stride(int K, int C) { return (K * C) | 1; }

template <typename T>
__device__ __forceinline__ void copy_rows(const T* src, T* tile, int count, int row, int stride) {
  for (int j = static_cast<int>(threadIdx.x); j < count * row; j += static_cast<int>(blockDim.x))
    tile[(j / row) * stride + j % row] = src[j];
}

template <typename T>
__device__ __forceinline__ void store_rows(const T* tile, T* dst, int count, int row, int stride) {
  for (int j = static_cast<int>(threadIdx.x); j < count * row; j += static_cast<int>(blockDim.x))
    dst[j] = tile[(j / row) * stride + j % row];
}

template <typename T, int DEG>
__global__ void sh_forward_staged_kernel(long M, int K, int C, const T* dirs, const T* coeffs,
                                         T* colors) {
  extern __shared__ unsigned char smem[];
  T* tile = reinterpret_cast<T*>(smem);
  const int row = K * C, stride = staged_stride(K, C);
  const long first = static_cast<long>(blockIdx.x) * blockDim.x;
  const int count = static_cast<int>(M - first < blockDim.x ? M - first : blockDim.x);
  copy_rows(coeffs + first * row, tile, count, row, stride);
  __syncthreads();
  const int t = static_cast<int>(threadIdx.x);
  if (t >= count) return;
  const long m = first + t;
  sh_forward_point(DEG, dirs + 3 * m, tile + t * stride, C, colors + m * C);
}

// v_dirs and v_coeffs of point m in one pass (the row-wise twin of the two kernels below).
template <typename T, int DEG>
__global__ void sh_backward_staged_kernel(long M, int K, int C, const T* dirs, const T* coeffs,
                                          const T* v_colors, T* v_dirs, T* v_coeffs) {
  extern __shared__ unsigned char smem[];
  T* tile = reinterpret_cast<T*>(smem);
  const int row = K * C, stride = staged_stride(K, C);
  const long first = static_cast<long>(blockIdx.x) * blockDim.x;
  const int count = static_cast<int>(M - first < blockDim.x ? M - first : blockDim.x);
  copy_rows(coeffs + first * row, tile, count, row, stride);
  __syncthreads();
  const int t = static_cast<int>(threadIdx.x);
  if (t < count) {
    const long m = first + t;
    const T* d = dirs + 3 * m;
    const T len = sqrt_of(d[0] * d[0] + d[1] * d[1] + d[2] * d[2]);
    const T inv = len > T(0) ? T(1) / len : T(0);
    const T x = d[0] * inv, y = d[1] * inv, z = d[2] * inv;
    constexpr int NB = (DEG + 1) * (DEG + 1);
    T basis[SH_MAX_BASES], v_b[SH_MAX_BASES];
    sh_bases(DEG, x, y, z, basis);
    T* c_row = tile + t * stride;
    const T* v_color = v_colors + m * C;
#pragma unroll
    for (int k = 0; k < NB; ++k) {
      T acc = T(0);
      for (int c = 0; c < C; ++c) acc += c_row[k * C + c] * v_color[c];
      v_b[k] = acc;
    }
    T v_n[3];
    sh_bases_vjp(DEG, x, y, z, v_b, v_n);
    const T dot = v_n[0] * x + v_n[1] * y + v_n[2] * z;
    v_dirs[3 * m] = (v_n[0] - dot * x) * inv;
    v_dirs[3 * m + 1] = (v_n[1] - dot * y) * inv;
    v_dirs[3 * m + 2] = (v_n[2] - dot * z) * inv;
    // This thread alone reads and writes its row: overwrite it with the coefficient gradients.
#pragma unroll
    for (int k = 0; k < NB; ++k) {
      for (int c = 0; c < C; ++c) c_row[k * C + c] = basis[k] * v_color[c];
    }
    for (int j = NB * C; j < row; ++j) c_row[j] = T(0);  // bands above the degree
  }
  __syncthreads();
  store_rows(tile, v_coeffs + first * row, count, row, stride);
}

// Threads per block of the staged kernels: the most (<= 128) whose rows fit in 48 KB of shared
// memory; 0 when even a warp's rows do not fit (then the per-thread kernels run).
template <typename T>
int staged_threads(int K, int C) {
  const long bytes = static_cast<long>(staged_stride(K, C)) * sizeof(T);
  for (int threads = 128; threads >= 32; threads /= 2)
    if (threads * bytes <= 48 * 1024) return threads;
  return 0;
}

int blocks_for(long items) { return static_cast<int>((items + THREADS - 1) / THREADS); }
int blocks_for(long items, int threads) { return static_cast<int>((items + threads - 1) / threads); }

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
  const int staged = (B == 1 || !shared_coeffs) ? staged_threads<T>(K, C) : 0;
  dispatch_degree(degree, [&](auto deg) {
    if (staged) {
      const size_t smem = static_cast<size_t>(staged) * staged_stride(K, C) * sizeof(T);
      sh_forward_staged_kernel<T, decltype(deg)::value>
          <<<blocks_for(items, staged), staged, smem, static_cast<cudaStream_t>(stream)>>>(
              items, K, C, dirs, coeffs, colors);
      return;
    }
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
  const int staged = (B == 1 || !shared_coeffs) ? staged_threads<T>(K, C) : 0;
  dispatch_degree(degree, [&](auto deg) {
    constexpr int DEG = decltype(deg)::value;
    if (staged) {  // point m owns coefficient row m: one pass, coalesced through shared memory
      const size_t smem = static_cast<size_t>(staged) * staged_stride(K, C) * sizeof(T);
      sh_backward_staged_kernel<T, DEG><<<blocks_for(rows, staged), staged, smem, cuda_stream>>>(
          rows, K, C, dirs, coeffs, v_colors, v_dirs, v_coeffs);
      return;
    }
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
