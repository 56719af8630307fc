// CUDA launchers of the spherical-harmonics colour op (math in cuda/include/sh.h; layouts as the
// CPU declarations there). Plain C++ declarations for bindings_cuda.cpp; `stream` is a cudaStream_t.
#pragma once

namespace recon {
namespace gpu {

template <typename T>
void sh_forward(int degree, int B, int N, int K, int C, bool shared_coeffs, const T* dirs,
                const T* coeffs, T* colors, void* stream);
// v_dirs and v_coeffs are written (no zeroing needed); with shared coefficients one thread sums
// the B cameras of a coefficient (no atomics, deterministic).
template <typename T>
void sh_backward(int degree, int B, int N, int K, int C, bool shared_coeffs, const T* dirs,
                 const T* coeffs, const T* v_colors, T* v_dirs, T* v_coeffs, void* stream);

}  // namespace gpu
}  // namespace recon
