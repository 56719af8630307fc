"""Per-image appearance correction: an affine colour transform per training image.

Real captures change exposure and white balance from photo to photo (auto exposure, flash,
clouds). Without a correction the model bakes those changes into view-dependent colour or
floaters. With ``--appearance`` each training image i gets a 3x4 matrix [A_i | b_i], starting at
the identity, and the loss compares A_i c + b_i with the photo, where c is the rendered colour at
a pixel, so the model learns one consistent appearance: the average of the photos' (the
transforms are kept averaging to the identity). Test images have no transform of their own:
evaluation renders the model as it is (the identity), which scores the model's one appearance against each test photo's own; and,
for runs fitted with the correction, also after the affine colour transform that best maps the
render onto the test photo (least squares over its pixels, 12 numbers per image:
:func:`colour_matched`), which scores the geometry and texture whatever the test photo's
exposure.
"""

from __future__ import annotations

import torch
from torch import Tensor


class Appearance(torch.nn.Module):
    """``count`` affine colour transforms, one per training image, with their own Adam."""

    def __init__(self, count: int, lr: float, device) -> None:
        super().__init__()
        identity = torch.eye(3, 4, device=device).expand(count, 3, 4).clone()
        self.affine = torch.nn.Parameter(identity)
        self.optimizer = torch.optim.Adam([self.affine], lr=lr, eps=1e-15)

    def forward(self, image: Tensor, index: int) -> Tensor:
        """``image`` [3, H, W] as training image ``index``'s camera saw it."""
        affine = self.affine[index]
        return torch.einsum("ij,jhw->ihw", affine[:, :3], image) + affine[:, 3, None, None]

    def step(self) -> None:
        """One Adam step, then the transforms shifted so their mean is the identity: a common
        gain or offset of every photo is the model's to learn (else the two drift against each
        other and the model, as the test images see it, drifts off)."""
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        with torch.no_grad():
            identity = torch.eye(3, 4, device=self.affine.device)
            self.affine.sub_(self.affine.mean(0, keepdim=True) - identity)

    def state(self) -> dict:
        return {"affine": self.affine.detach().cpu(), "optimizer": self.optimizer.state_dict()}

    def load(self, state: dict) -> None:
        with torch.no_grad():
            self.affine.copy_(state["affine"])
        self.optimizer.load_state_dict(state["optimizer"])


def colour_matched(render: Tensor, photo: Tensor) -> Tensor:
    """``render`` [3, H, W] through the affine colour transform that brings it closest to
    ``photo`` in the least-squares sense (solved in float64)."""
    x = render.reshape(3, -1).T.double()
    x = torch.cat([x, torch.ones_like(x[:, :1])], 1)                     # [P, 4]
    y = photo.reshape(3, -1).T.double()
    solution = torch.linalg.lstsq(x, y).solution                           # [4, 3]
    return (x @ solution).T.reshape(render.shape).to(render.dtype)


__all__ = ["Appearance", "colour_matched"]
