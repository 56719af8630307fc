// OpenMP loop of the Gaussians' MCMC position noise (math in cuda/include/noise.h).
#include "../include/noise.h"

namespace recon {
namespace cpu {

template <typename T>
void gaussian_noise(int N, const T* quats, const T* log_scales, const T* opacity_logits,
                    const T* eta, T scale, T* noise) {
#pragma omp parallel for schedule(static)
  for (int n = 0; n < N; ++n)
    gaussian_noise_one(quats + 4 * static_cast<long>(n), log_scales + 3 * static_cast<long>(n),
                       opacity_logits[n], eta + 3 * static_cast<long>(n), scale,
                       noise + 3 * static_cast<long>(n));
}

template void gaussian_noise<float>(int, const float*, const float*, const float*, const float*,
                                    float, float*);
template void gaussian_noise<double>(int, const double*, const double*, const double*,
                                     const double*, double, double*);

}  // namespace cpu
}  // namespace recon
