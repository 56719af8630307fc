"""Surface colours for the procedural scenes: solid noise textures, image textures, vertex colours.

Every material answers one question, ``albedo(points, faces, bary) -> [N,3]`` in [0,1], for the
hit points of the rays that struck the part of the scene it covers. Procedural materials are *solid* textures
(functions of the 3D hit point), so any mesh gets detail without UVs and the colour of a surface
point is the same from every view, which is what multi-view reconstruction assumes.

The noise holds detail from about a tenth of the scene down to a few pixels at 256², so SIFT finds
many distinctive features (the SfM tests must register every view of the default scene).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol

import numpy as np

from recon.errors import DatasetError

# Side of the periodic lattice of random values behind the value noise. Large enough that the
# period (LATTICE / frequency scene units) exceeds the scenes' extent at every octave used.
LATTICE = 64
PATTERN_SHIFT = np.array([0.31, 0.17, 0.43], dtype=np.float32)


class Material(Protocol):
    def albedo(self, points: np.ndarray, faces: np.ndarray, bary: np.ndarray) -> np.ndarray:
        """Colours [N,3] in [0,1] at hit ``points`` [N,3] on ``faces`` [N] (triangle ids within the
        part the material covers) with barycentric weights ``bary`` [N,3] of the three corners."""
        ...


def random_lattice(rng: np.random.Generator) -> np.ndarray:
    """The seed of one value-noise field: LATTICE³ uniform random values, padded by one wrapped
    layer on each axis (so a cell's far corners need no modulo) and flattened."""
    values = rng.random((LATTICE,) * 3, dtype=np.float32)
    return np.pad(values, (0, 1), mode="wrap").ravel()


def value_noise(points: np.ndarray, lattice: np.ndarray) -> np.ndarray:
    """Smooth 3D value noise in [0,1]: random values at integer lattice points, blended with a
    smoothstep-weighted trilinear interpolation (continuous, so neighbouring samples agree)."""
    side = LATTICE + 1
    cell = np.floor(points)
    f = (points - cell).astype(np.float32)
    w = f * f * (3.0 - 2.0 * f)
    i = cell.astype(np.int64) % LATTICE
    base = (i[:, 0] * side + i[:, 1]) * side + i[:, 2]

    def corner(dx: int, dy: int, dz: int) -> np.ndarray:
        return lattice[base + ((dx * side + dy) * side + dz)]

    def lerp(a: np.ndarray, b: np.ndarray, t: np.ndarray) -> np.ndarray:
        return a + (b - a) * t

    wx, wy, wz = w[:, 0], w[:, 1], w[:, 2]
    near = lerp(lerp(corner(0, 0, 0), corner(0, 0, 1), wz), lerp(corner(0, 1, 0), corner(0, 1, 1), wz), wy)
    far = lerp(lerp(corner(1, 0, 0), corner(1, 0, 1), wz), lerp(corner(1, 1, 0), corner(1, 1, 1), wz), wy)
    return lerp(near, far, wx)


def cell_values(points: np.ndarray, lattice: np.ndarray) -> np.ndarray:
    """The lattice value of the unit cell holding each point: piecewise constant random tiles."""
    side = LATTICE + 1
    i = np.floor(points).astype(np.int64) % LATTICE
    return lattice[(i[:, 0] * side + i[:, 1]) * side + i[:, 2]]


def fractal_noise(points: np.ndarray, lattice: np.ndarray, octaves: int) -> np.ndarray:
    """Sum of value-noise octaves (each twice the frequency, half the amplitude), in [0,1].

    Octaves are decorrelated by a fixed offset so the same lattice serves them all."""
    total = np.zeros(len(points), dtype=np.float32)
    amplitude, norm = 1.0, 0.0
    for octave in range(octaves):
        total += amplitude * value_noise(points * (2.0**octave) + 17.31 * octave, lattice)
        norm += amplitude
        amplitude *= 0.5
    return total / norm


Pattern = Literal["checker", "tiles", "stripes", "spots"]


@dataclass(frozen=True)
class NoiseMaterial:
    """A solid texture: three colours blended by fractal noise, overlaid with a sharp pattern.

    The noise gives large-scale variation, the pattern gives crisp edges and corners at
    ``pattern_frequency`` cells per scene unit: a checker, cubic tiles of random strength (a
    checker whose corners all differ, for unambiguous feature matches), wavy stripes or blobs.
    """

    colors: np.ndarray
    """[3,3] base colour, noise colour and pattern colour, RGB in [0,1]."""
    lattice: np.ndarray = field(repr=False)
    pattern: Pattern = "spots"
    noise_frequency: float = 3.0
    pattern_frequency: float = 6.0

    def albedo(self, points: np.ndarray, faces: np.ndarray, bary: np.ndarray) -> np.ndarray:
        p = points.astype(np.float32)
        n = fractal_noise(p * self.noise_frequency, self.lattice, octaves=4)
        # Stretch the noise's contrast: sums of octaves cluster around 0.5.
        n = np.clip((n - 0.5) * 2.5 + 0.5, 0.0, 1.0)[:, None]
        rgb = (1.0 - n) * self.colors[0] + n * self.colors[1]
        mask = self._pattern(p * self.pattern_frequency)[:, None]
        return (1.0 - 0.75 * mask) * rgb + 0.75 * mask * self.colors[2]

    def _pattern(self, q: np.ndarray) -> np.ndarray:
        # Shift off the lattice: flat faces often lie on integer planes (the ground at z = 0),
        # where floor() would flicker between cells with rounding noise.
        q = q + PATTERN_SHIFT
        if self.pattern == "checker":
            return (np.floor(q).astype(np.int64).sum(1) % 2).astype(np.float32)
        if self.pattern == "tiles":
            return cell_values(q, self.lattice)
        if self.pattern == "stripes":
            # Wavy stripes: straight ones would look alike along their length (no corners).
            phase = q[:, 0] + q[:, 1] * 0.7 + q[:, 2] * 0.4 + 2.0 * value_noise(q * 0.5, self.lattice)
            return (np.sin(np.pi * phase) > 0.2).astype(np.float32)
        blobs = value_noise(q + 101.7, self.lattice)
        return (blobs > 0.62).astype(np.float32)


@dataclass(frozen=True)
class VertexColorMaterial:
    """Colours stored per vertex, interpolated with the barycentric weights."""

    faces: np.ndarray
    """[F,3] the mesh's triangles (vertex indices)."""
    colors: np.ndarray
    """[V,3] RGB in [0,1]."""

    def albedo(self, points: np.ndarray, faces: np.ndarray, bary: np.ndarray) -> np.ndarray:
        return np.einsum("nk,nkc->nc", bary, self.colors[self.faces[faces]])


@dataclass(frozen=True)
class ImageTextureMaterial:
    """An image sampled through per-vertex UVs (OpenGL convention: v = 0 is the image's bottom row),
    bilinearly filtered, repeating outside [0,1]."""

    faces: np.ndarray
    """[F,3] the mesh's triangles (vertex indices)."""
    uv: np.ndarray
    """[V,2] texture coordinates."""
    image: np.ndarray = field(repr=False)
    """[H,W,3] float32 RGB in [0,1]."""

    def albedo(self, points: np.ndarray, faces: np.ndarray, bary: np.ndarray) -> np.ndarray:
        uv = np.einsum("nk,nkc->nc", bary, self.uv[self.faces[faces]])
        h, w = self.image.shape[:2]
        x = (uv[:, 0] % 1.0) * w - 0.5
        y = (1.0 - uv[:, 1] % 1.0) * h - 0.5
        x0, y0 = np.floor(x), np.floor(y)
        fx, fy = (x - x0)[:, None], (y - y0)[:, None]
        x0, y0 = x0.astype(np.int64) % w, y0.astype(np.int64) % h
        x1, y1 = (x0 + 1) % w, (y0 + 1) % h
        img = self.image
        top = (1 - fx) * img[y0, x0] + fx * img[y0, x1]
        bottom = (1 - fx) * img[y1, x0] + fx * img[y1, x1]
        return (1 - fy) * top + fy * bottom


def load_texture_image(path: Path) -> np.ndarray:
    """An image file as float32 RGB [H,W,3] in [0,1] (alpha dropped: surfaces are opaque)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("RGB"), dtype=np.float32) / 255.0
    except (UnidentifiedImageError, OSError) as exc:
        raise DatasetError(f"Cannot read the texture image {path}: {exc}. Replace or remove it.") from exc
