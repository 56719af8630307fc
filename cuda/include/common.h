// Shared by every native translation unit of recon's rasterizer (C++/OpenMP and CUDA).
// Framework-free: no torch types, only raw pointers and plain structs, so the same math compiles
// for the host launcher, the CUDA kernels and (templated on the scalar) for float64 gradchecks.
#pragma once

#include <math.h>

#include <cmath>
#include <cstdint>
#include <cstring>

#if defined(__CUDACC__)
#define HOST_DEVICE __host__ __device__ __forceinline__
#else
#define HOST_DEVICE inline
#endif

namespace recon {

// Primitive kinds; the Python side mirrors these numbers in recon/primitives/base.py.
constexpr int KIND_GAUSSIAN = 0;
constexpr int KIND_CONVEX = 1;
constexpr int KIND_TRIANGLE = 2;

// Compositing constants shared with the pure-torch reference (recon/render/reference.py).
constexpr double ALPHA_MAX = 0.99;          // α = min(ALPHA_MAX, o·k): keeps 1-α invertible in backward
constexpr double ALPHA_MIN = 1.0 / 255.0;   // contributions below one 8-bit level are skipped
constexpr double TRANSMITTANCE_MIN = 1e-4;  // a pixel stops once T would drop below this
constexpr double MEDIAN_TRANSMITTANCE = 0.5;

// Sizes of one rasterization call. Primitive arrays are laid out [B, N, ...]; images [B, H, W, ...].
struct RasterParams {
  int B;          // cameras
  int N;          // primitives per camera
  int C;          // feature channels (run time)
  int width;
  int height;
  int tile_size;  // tiles are tile_size x tile_size pixels
  int tiles_x;
  int tiles_y;
  int num_isects; // M: sorted (tile, primitive) intersections
};

template <typename T>
HOST_DEVICE T min_of(T a, T b) { return a < b ? a : b; }
template <typename T>
HOST_DEVICE T max_of(T a, T b) { return a > b ? a : b; }
template <typename T>
HOST_DEVICE T abs_of(T a) { return a < T(0) ? -a : a; }
// Overloads (not templates) so float math stays single precision on both host and device.
HOST_DEVICE float exp_of(float x) { return expf(x); }
HOST_DEVICE double exp_of(double x) { return exp(x); }
// exp for the hot pixel loops. On the host a branch-free Cephes-style expf (range reduction +
// degree-6 polynomial, ~2 ulp) that the compiler can vectorise (a call to expf cannot be);
// libm's exp in double precision (gradchecks) and the CUDA intrinsic-free expf on the device.
HOST_DEVICE float fast_exp(float x) {
#ifdef __CUDA_ARCH__
  return expf(x);
#else
  x = x < -87.0f ? -87.0f : (x > 88.0f ? 88.0f : x);  // keeps 2^n a normal float
  const float t = x * 1.44269504088896341f + 0.5f;
  int n = static_cast<int>(t);
  n -= static_cast<float>(n) > t ? 1 : 0;  // floor
  const float fn = static_cast<float>(n);
  const float r = (x - fn * 0.693359375f) + fn * 2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  const float y = p * r * r + r + 1.0f;
  const int32_t bits = (n + 127) << 23;
  float scale;
  memcpy(&scale, &bits, sizeof scale);
  return y * scale;
#endif
}
HOST_DEVICE double fast_exp(double x) { return exp(x); }
HOST_DEVICE float log_of(float x) { return logf(x); }
HOST_DEVICE double log_of(double x) { return log(x); }
HOST_DEVICE float sqrt_of(float x) { return sqrtf(x); }
HOST_DEVICE double sqrt_of(double x) { return sqrt(x); }

// Row-major rotation matrix of a unit quaternion (w, x, y, z).
template <typename T>
HOST_DEVICE void rotation_of_unit_quat(T w, T x, T y, T z, T* R) {
  R[0] = T(1) - T(2) * (y * y + z * z);
  R[1] = T(2) * (x * y - w * z);
  R[2] = T(2) * (x * z + w * y);
  R[3] = T(2) * (x * y + w * z);
  R[4] = T(1) - T(2) * (x * x + z * z);
  R[5] = T(2) * (y * z - w * x);
  R[6] = T(2) * (x * z - w * y);
  R[7] = T(2) * (y * z + w * x);
  R[8] = T(1) - T(2) * (x * x + y * y);
}

}  // namespace recon
