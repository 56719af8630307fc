// 3DGS-MCMC's exploration noise for Gaussians (recon.models.gaussians.GaussianModel.position_noise
// is the torch reference): Σ η · scale · σ(-k (σ(o) - t)) per Gaussian, with its covariance
// Σ = R S² Rᵀ applied as R (s² ⊙ (Rᵀ η)), so no 3x3 matrix is formed.
#pragma once

#include "common.h"

namespace recon {

// The gate's k and t (recon/models/gaussians.py mirrors them).
constexpr double NOISE_GATE_SHARPNESS = 100.0;
constexpr double NOISE_GATE_OPACITY = 0.005;

template <typename T>
HOST_DEVICE void gaussian_noise_one(const T* quat, const T* log_scale, T opacity_logit,
                                    const T* eta, T scale, T* noise) {
  const T norm = sqrt_of(quat[0] * quat[0] + quat[1] * quat[1] + quat[2] * quat[2] +
                         quat[3] * quat[3]);
  const T inv = T(1) / max_of(norm, T(1e-12));  // torch.nn.functional.normalize's eps
  T R[9];
  rotation_of_unit_quat(quat[0] * inv, quat[1] * inv, quat[2] * inv, quat[3] * inv, R);
  T v[3];
  for (int j = 0; j < 3; ++j) {
    const T s = exp_of(log_scale[j]);
    v[j] = (R[j] * eta[0] + R[3 + j] * eta[1] + R[6 + j] * eta[2]) * s * s;
  }
  const T opacity = T(1) / (T(1) + exp_of(-opacity_logit));
  const T excess = opacity - T(NOISE_GATE_OPACITY);
  const T gate = T(1) / (T(1) + exp_of(T(NOISE_GATE_SHARPNESS) * excess));
  for (int i = 0; i < 3; ++i)
    noise[i] = (R[3 * i] * v[0] + R[3 * i + 1] * v[1] + R[3 * i + 2] * v[2]) * gate * scale;
}

namespace cpu {
// quats [N, 4], log_scales [N, 3], opacity_logits [N], eta [N, 3] -> noise [N, 3].
// Defined in cuda/cpu/noise.cpp for float and double.
template <typename T>
void gaussian_noise(int N, const T* quats, const T* log_scales, const T* opacity_logits,
                    const T* eta, T scale, T* noise);
}  // namespace cpu

}  // namespace recon
