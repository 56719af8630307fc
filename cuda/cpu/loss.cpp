// OpenMP loops of the fused photometric loss (math in cuda/include/loss.h).
//
// The 11x11 window is separable, so both passes blur rows first, then columns: forward blurs the
// five statistics along x into a buffer, then along y into the per-window SSIM; backward blurs
// the three partials back along y, then along x, and adds the L1 term. Rows are the parallel
// unit; per-row sums are added in a fixed order afterwards, so results do not depend on the
// thread count's reduction order (bit-reproducible for a given thread count, as the rasterizer).
#include <algorithm>
#include <vector>

#include "../include/loss.h"

namespace recon {
namespace cpu {
namespace {

// Intermediate buffers kept from call to call (per calling thread, grown when needed): a fresh
// multi-megabyte allocation per step costs more in page faults than the blur itself.
template <typename T>
T* scratch(int slot, size_t size) {
  thread_local std::vector<T> buffers[2];
  if (buffers[slot].size() < size) buffers[slot].resize(size);
  return buffers[slot].data();
}

}  // namespace

template <typename T>
void photometric_loss_forward(int P, int H, int W, const T* image, const T* target, T* partials,
                              double sums[2]) {
  T w[SSIM_TAPS];
  ssim_taps(w);
  const int Ho = H - 2 * SSIM_RADIUS, Wo = W - 2 * SSIM_RADIUS;
  const long rows = static_cast<long>(P) * H, out_rows = static_cast<long>(P) * Ho;
  const long plane_out = static_cast<long>(Ho) * Wo, stride_out = P * plane_out;
  // x, y, x², y², xy blurred along x: [5, P·H, Wo].
  T* along_x = scratch<T>(0, 5 * rows * Wo);
  std::vector<double> l1_rows(rows), ssim_rows(out_rows);

#pragma omp parallel
  {
    std::vector<T> products(3 * W);  // x², y², xy of one row
#pragma omp for schedule(static)
    for (long r = 0; r < rows; ++r) {
      const T* x = image + r * W;
      const T* y = target + r * W;
      T* xx = products.data();
      T* yy = xx + W;
      T* xy = yy + W;
      double l1 = 0.0;
#pragma omp simd reduction(+ : l1)
      for (int c = 0; c < W; ++c) {
        l1 += static_cast<double>(abs_of(x[c] - y[c]));
        xx[c] = x[c] * x[c];
        yy[c] = y[c] * y[c];
        xy[c] = x[c] * y[c];
      }
      l1_rows[r] = l1;
      // Taps outside, pixels inside: each statistic's row is a vectorisable sum of shifts.
      const T* sources[5] = {x, y, xx, yy, xy};
      for (int k = 0; k < 5; ++k) {
        T* h = along_x + (k * rows + r) * Wo;
        const T* v = sources[k];
        for (int c = 0; c < Wo; ++c) {
          T sum = T(0);
          for (int i = 0; i < SSIM_TAPS; ++i) sum += w[i] * v[c + i];
          h[c] = sum;
        }
      }
    }
  }

#pragma omp parallel
  {
    std::vector<T> stats(5 * Wo);
#pragma omp for schedule(static)
    for (long r = 0; r < out_rows; ++r) {
      const long p = r / Ho, yo = r % Ho;
      for (int k = 0; k < 5; ++k) {
        const T* h = along_x + (k * rows + p * H + yo) * Wo;  // rows yo .. yo + 10
        T* s = stats.data() + k * Wo;
        for (int c = 0; c < Wo; ++c) {
          T sum = T(0);
          for (int j = 0; j < SSIM_TAPS; ++j) sum += w[j] * h[j * Wo + c];
          s[c] = sum;
        }
      }
      T* d = partials + p * plane_out + yo * Wo;
      T* values = stats.data();  // μx's row is read before its slot is overwritten
      for (int c = 0; c < Wo; ++c) {
        const SsimWindow<T> s = ssim_window(stats[c], stats[Wo + c], stats[2 * Wo + c],
                                            stats[3 * Wo + c], stats[4 * Wo + c]);
        values[c] = s.value;
        d[c] = s.d_mu_x;
        d[stride_out + c] = s.d_xx;
        d[2 * stride_out + c] = s.d_xy;
      }
      double total = 0.0;
#pragma omp simd reduction(+ : total)
      for (int c = 0; c < Wo; ++c) total += static_cast<double>(values[c]);
      ssim_rows[r] = total;
    }
  }
  sums[0] = sums[1] = 0.0;
  for (double v : l1_rows) sums[0] += v;
  for (double v : ssim_rows) sums[1] += v;
}

template <typename T>
void photometric_loss_backward(int P, int H, int W, const T* image, const T* target,
                               const T* partials, T ssim_scale, T l1_scale, T* v_image) {
  T w[SSIM_TAPS];
  ssim_taps(w);
  const int Ho = H - 2 * SSIM_RADIUS, Wo = W - 2 * SSIM_RADIUS;
  const long rows = static_cast<long>(P) * H;
  const long plane_out = static_cast<long>(Ho) * Wo, stride_out = P * plane_out;
  // The partials blurred back along y onto every image row, [3, P·H, Wo + 20]: each row padded
  // with 10 zeros on both sides, so the blur along x is a plain sum of shifts for every pixel.
  const long padded = Wo + 4 * SSIM_RADIUS;
  T* along_y = scratch<T>(1, 3 * rows * padded);

#pragma omp parallel for schedule(static)
  for (long r = 0; r < rows; ++r) {
    const long p = r / H, y = r % H;
    for (int k = 0; k < 3; ++k) {
      T* row = along_y + (k * rows + r) * padded;
      std::fill(row, row + padded, T(0));
      T* out = row + 2 * SSIM_RADIUS;
      for (int j = 0; j < SSIM_TAPS; ++j) {
        const long yo = y - j;  // window row yo reads image row yo + j
        if (yo < 0 || yo >= Ho) continue;
        const T* d = partials + k * stride_out + p * plane_out + yo * Wo;
        for (int c = 0; c < Wo; ++c) out[c] += w[j] * d[c];
      }
    }
  }

#pragma omp parallel
  {
    std::vector<T> back(3 * W);
#pragma omp for schedule(static)
    for (long r = 0; r < rows; ++r) {
      for (int k = 0; k < 3; ++k) {
        // Pixel c gathers window columns c - i, i.e. padded entries c + 10 - i.
        const T* v = along_y + (k * rows + r) * padded + 2 * SSIM_RADIUS;
        T* b = back.data() + k * W;
        for (int c = 0; c < W; ++c) {
          T sum = T(0);
          for (int i = 0; i < SSIM_TAPS; ++i) sum += w[i] * v[c - i];
          b[c] = sum;
        }
      }
      const T* x = image + r * W;
      const T* y = target + r * W;
      T* out = v_image + r * W;
      for (int c = 0; c < W; ++c) {
        const T diff = x[c] - y[c];
        const T sign = diff > T(0) ? T(1) : (diff < T(0) ? T(-1) : T(0));
        out[c] = ssim_scale * (back[c] + T(2) * x[c] * back[W + c] + y[c] * back[2 * W + c]) +
                 l1_scale * sign;
      }
    }
  }
}

template void photometric_loss_forward<float>(int, int, int, const float*, const float*, float*,
                                              double*);
template void photometric_loss_forward<double>(int, int, int, const double*, const double*,
                                               double*, double*);
template void photometric_loss_backward<float>(int, int, int, const float*, const float*,
                                               const float*, float, float, float*);
template void photometric_loss_backward<double>(int, int, int, const double*, const double*,
                                                const double*, double, double, double*);

}  // namespace cpu
}  // namespace recon
