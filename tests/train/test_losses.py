"""The fused native photometric loss against its torch expression and finite differences."""

from __future__ import annotations

import pytest
import torch

from recon.metrics import ssim
from recon.train.losses import photometric_loss, photometric_loss_torch


def _pair(shape, dtype, seed=0):
    g = torch.Generator().manual_seed(seed)
    image = torch.rand(shape, generator=g, dtype=dtype).requires_grad_()
    # A target near the image, as in training, plus exact ties (the L1 gradient's 0 at 0).
    target = (image.detach() + 0.1 * torch.randn(shape, generator=g, dtype=dtype)).clamp(0, 1)
    target.view(-1)[::7] = image.detach().view(-1)[::7]
    return image, target


def _value_and_grad(loss_fn, image, target, lam=0.2):
    loss = loss_fn(image, target, lam)
    (grad,) = torch.autograd.grad(loss, image)
    return loss.detach(), grad


@pytest.mark.parametrize("shape", [(3, 100, 100), (3, 37, 53), (3, 11, 11)])
@pytest.mark.parametrize("lam", [0.2, 1.0])
def test_fused_loss_matches_torch_in_float64(shape, lam):
    # float64 leaves only summation-order rounding: agreement to 1e-12 shows the same formula
    # and the same gradient (transposed blur of the window partials, L1 sign with 0 at ties).
    image, target = _pair(shape, torch.float64)
    loss, grad = _value_and_grad(photometric_loss, image, target, lam)
    ref_loss, ref_grad = _value_and_grad(photometric_loss_torch, image, target, lam)
    assert photometric_loss(image, target, lam).grad_fn.name().startswith("_PhotometricLoss")
    assert abs(float(loss - ref_loss)) < 1e-12
    assert float((grad - ref_grad).abs().max()) < 1e-12 * float(ref_grad.abs().max()) + 1e-15


def test_fused_loss_matches_torch_in_float32_to_1e6():
    # The training dtype: the loss to 1e-6 absolute, the gradient to 1e-6 of its largest entry
    # (float32 blurs summed in another order differ by a few ulp).
    image, target = _pair((3, 200, 160), torch.float32, seed=1)
    loss, grad = _value_and_grad(photometric_loss, image, target)
    ref_loss, ref_grad = _value_and_grad(photometric_loss_torch, image, target)
    assert abs(float(loss - ref_loss)) < 1e-6
    assert float((grad - ref_grad).abs().max()) < 1e-6 * float(ref_grad.abs().max())


def test_fused_loss_gradient_matches_finite_differences():
    from recon._ops.loss import fused_photometric_loss

    g = torch.Generator().manual_seed(2)
    image = torch.rand(2, 13, 15, generator=g, dtype=torch.float64).requires_grad_()
    target = torch.rand(2, 13, 15, generator=g, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda x: fused_photometric_loss(x, target, 0.3), (image,),
                                    eps=1e-6, atol=1e-8, rtol=1e-5)


def test_fused_loss_of_a_batch_is_the_mean_over_images():
    from recon._ops.loss import fused_photometric_loss

    image, target = _pair((2, 3, 24, 30), torch.float64, seed=3)
    l1 = (image - target).abs().mean()
    expected = torch.lerp(l1, 1.0 - ssim(image, target), 0.2).detach()
    assert abs(float(fused_photometric_loss(image, target, 0.2).detach() - expected)) < 1e-12


def test_fused_loss_is_the_same_bits_for_any_thread_count():
    image, target = _pair((3, 64, 80), torch.float32, seed=4)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = _value_and_grad(photometric_loss, image, target)
        torch.set_num_threads(2)
        two = _value_and_grad(photometric_loss, image, target)
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(one[0], two[0]) and torch.equal(one[1], two[1])


def test_torch_expression_serves_what_the_native_op_does_not():
    # Smaller than one SSIM window (zero-padded SSIM), and a target that needs a gradient.
    small, small_target = _pair((3, 8, 9), torch.float32)
    assert "_PhotometricLoss" not in photometric_loss(small, small_target, 0.2).grad_fn.name()
    image, target = _pair((3, 16, 16), torch.float32)
    target.requires_grad_()
    loss = photometric_loss(image, target, 0.2)
    assert "_PhotometricLoss" not in loss.grad_fn.name()
    assert torch.autograd.grad(loss, target)[0].abs().sum() > 0
