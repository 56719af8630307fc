"""Gaussian splat files (the Gaussian model's exports): the standard 3DGS ``.ply`` and
antimatter15's ``.splat``.

Both are written in the input's world frame: recon fits in a normalised frame, and the dataset's
``normalization`` (input -> normalised) is undone with its inverse, a similarity
x' = s R x + t. Under it a Gaussian keeps its opacity and its colour seen from the same
(rotated) direction, and

* means map as points, x' = s R x + t;
* log-scales shift by log s (every axis scales by s);
* rotations compose, q' = q_R ⊗ q (the covariance becomes s² R Σ Rᵀ);
* SH bands of degree l >= 1 rotate by the band's Wigner matrix, so that the colour seen along
  R d equals the old colour along d. The DC band is rotation invariant.

The ``.ply`` is what 3DGS's ``save_ply`` writes and every splat viewer reads: float32, binary
little-endian, one ``vertex`` element with x y z, nx ny nz (zeros), f_dc_0..2, f_rest_* ordered
[channel][coefficient] (all red coefficients, then green, then blue), opacity (logit),
scale_0..2 (log), rot_0..3 (w x y z, not normalised).

The ``.splat`` is 32 bytes per Gaussian, little-endian: position 3 x float32, scale 3 x float32
(linear standard deviations), colour RGBA 4 x uint8 (RGB = 0.5 + C0·dc, A = sigmoid(opacity)),
rotation 4 x uint8 (normalised w x y z mapped by q·128 + 128). It has no view-dependent colour.
Rows are sorted by descending volume × opacity, the order its web viewers expect (they stream
the file and draw the largest, most opaque splats first).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from recon.cameras import Similarity, rotation_is_valid
from recon.errors import ReconError
from recon.models.gaussians import PARAMETER_NAMES
from recon.render.sh import MAX_DEGREE, num_bases, sh0_to_rgb, sh_bases

SPLAT_ROW = np.dtype([("position", "<f4", 3), ("scale", "<f4", 3), ("rgba", "u1", 4),
                      ("rot", "u1", 4)])


def ply_property_names(num_rest: int) -> list[str]:
    """The 3DGS vertex properties in file order, for ``num_rest`` f_rest values (3·(K-1))."""
    return (["x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2"]
            + [f"f_rest_{i}" for i in range(num_rest)]
            + ["opacity", "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"])


def write_ply(path: Path, splats: Mapping[str, Tensor],
              normalization: Similarity | None = None) -> Path:
    """Write ``splats`` (gsplat layout, recon's normalised frame) as a standard 3DGS ``.ply``
    in the input's world frame (``normalization`` is the dataset's input -> normalised map)."""
    s = _to_numpy(transform_splats(splats, _to_input_frame(normalization)))
    n, rest = len(s["means"]), s["shN"].transpose(0, 2, 1).reshape(len(s["means"]), -1)
    columns = [s["means"], np.zeros((n, 3), np.float32), s["sh0"][:, 0, :], rest,
               s["opacities"][:, None], s["scales"], s["quats"]]
    table = np.concatenate(columns, axis=1)
    return write_float_table(path, "vertex", ply_property_names(rest.shape[1]), table)


def read_element(path: Path, element: str, what: str, expected: str):
    """The rows (a numpy structured array) of one ``.ply`` element; a clear error when the file
    cannot be read or lacks it (``what`` and ``expected`` name the content for the message)."""
    from plyfile import PlyData, PlyParseError

    try:
        return PlyData.read(str(path))[element].data
    except (OSError, KeyError, ValueError, PlyParseError) as exc:
        raise ReconError(f"Cannot read {what} from {path}: {exc}. Expected {expected} with a "
                         f"'{element}' element.") from exc


def write_float_table(path: Path, element: str, names: list[str], table: np.ndarray) -> Path:
    """Write ``table`` [N, len(names)] as one binary little-endian float32 ``.ply`` element."""
    from plyfile import PlyData, PlyElement

    rows = np.empty(len(table), dtype=[(name, "<f4") for name in names])
    for i, name in enumerate(names):
        rows[name] = table[:, i]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    PlyData([PlyElement.describe(rows, element)], text=False, byte_order="<").write(str(path))
    return path


def read_ply(path: Path, normalization: Similarity | None = None) -> dict[str, Tensor]:
    """Read a 3DGS ``.ply`` into the gsplat layout (float32 tensors).

    With ``normalization`` (input -> normalised, as given to :func:`write_ply`) the splats are
    mapped into recon's normalised frame; without it they stay in the file's frame.
    """
    vertex = read_element(path, "vertex", "Gaussian splats", "a 3DGS .ply")
    names = vertex.dtype.names
    num_rest = sum(1 for name in names if name.startswith("f_rest_"))
    expected = ply_property_names(num_rest)
    missing = [name for name in expected if name not in names]
    k = num_rest // 3 + 1
    if missing or num_rest % 3 or k not in [num_bases(d) for d in range(MAX_DEGREE + 1)]:
        raise ReconError(f"{path} is not a standard 3DGS .ply: missing properties "
                         f"{missing[:6]} or an f_rest count ({num_rest}) that is not 3·((d+1)²-1) "
                         f"for an SH degree d <= {MAX_DEGREE}.")

    def cols(*keys: str) -> Tensor:
        return torch.from_numpy(np.stack([np.asarray(vertex[key], np.float32) for key in keys], 1))

    n = len(vertex)
    rest = cols(*expected[9:9 + num_rest]).reshape(n, 3, k - 1).transpose(1, 2)
    splats = {
        "means": cols("x", "y", "z"),
        "quats": cols("rot_0", "rot_1", "rot_2", "rot_3"),
        "scales": cols("scale_0", "scale_1", "scale_2"),
        "opacities": cols("opacity")[:, 0],
        "sh0": cols("f_dc_0", "f_dc_1", "f_dc_2")[:, None, :],
        "shN": rest.contiguous(),
    }
    return splats if normalization is None else transform_splats(splats, normalization)


def write_splat(path: Path, splats: Mapping[str, Tensor],
                normalization: Similarity | None = None) -> Path:
    """Write ``splats`` as an antimatter15 ``.splat`` (32 bytes per Gaussian, input world frame)."""
    s = _to_numpy(transform_splats(splats, _to_input_frame(normalization)))
    scales = np.exp(s["scales"].astype(np.float64))
    alpha = 1.0 / (1.0 + np.exp(-s["opacities"].astype(np.float64)))
    order = np.argsort(-(scales.prod(1) * alpha), kind="stable")
    rgb = sh0_to_rgb(torch.from_numpy(s["sh0"][:, 0, :])).numpy()
    quats = s["quats"] / np.linalg.norm(s["quats"], axis=1, keepdims=True).clip(1e-12)
    rows = np.empty(len(order), dtype=SPLAT_ROW)
    rows["position"] = s["means"][order]
    rows["scale"] = scales[order]
    rows["rgba"] = _to_bytes(np.concatenate([rgb, alpha[:, None]], 1)[order] * 255.0)
    rows["rot"] = _to_bytes(quats[order] * 128.0 + 128.0)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rows.tofile(path)
    return path


def read_splat(path: Path) -> dict[str, np.ndarray]:
    """Decode a ``.splat``: means [N,3], scales [N,3] (linear), rgba [N,4] in [0,1] and
    normalised quats [N,4] (w x y z), in file order."""
    if not Path(path).is_file():
        raise ReconError(f"Splat file {path} does not exist. Check the path.")
    size = Path(path).stat().st_size
    if size % SPLAT_ROW.itemsize:
        raise ReconError(f"{path} is not a .splat file: its size ({size} bytes) is not a multiple "
                         f"of {SPLAT_ROW.itemsize} bytes per Gaussian.")
    rows = np.fromfile(path, dtype=SPLAT_ROW)
    quats = (rows["rot"].astype(np.float32) - 128.0) / 128.0
    quats /= np.linalg.norm(quats, axis=1, keepdims=True).clip(1e-12)
    return {"means": rows["position"].copy(), "scales": rows["scale"].copy(),
            "rgba": rows["rgba"].astype(np.float32) / 255.0, "quats": quats}


def transform_splats(splats: Mapping[str, Tensor], sim: Similarity) -> dict[str, Tensor]:
    """The same radiance field after the world is mapped by ``sim`` (x' = s R x + t)."""
    missing = [k for k in PARAMETER_NAMES if k not in splats]
    if missing:
        raise ReconError(f"Splats are missing parameters {missing}; expected {list(PARAMETER_NAMES)}.")
    if not rotation_is_valid(sim.rotation) or not sim.scale > 0:
        raise ReconError("The scene normalisation is not a proper similarity (rotation with "
                         "determinant +1 and a positive scale); the dataset's normalisation is corrupt.")
    out = {k: splats[k].detach() for k in PARAMETER_NAMES}
    dtype, device = out["means"].dtype, out["means"].device
    rot = torch.as_tensor(sim.rotation, dtype=torch.float64, device=device)
    shift = torch.as_tensor(sim.translation, dtype=torch.float64, device=device)
    means = out["means"].double() @ rot.T * sim.scale + shift
    out["means"] = means.to(dtype)
    out["scales"] = out["scales"] + float(np.log(sim.scale))
    q_rot = torch.as_tensor(rotation_to_quat(sim.rotation), dtype=dtype, device=device)
    out["quats"] = quat_multiply(q_rot.expand_as(out["quats"]), out["quats"])
    out["shN"] = rotate_sh(out["shN"], sim.rotation)
    return out


def rotate_sh(sh_rest: Tensor, rotation: np.ndarray) -> Tensor:
    """Rotate SH bands 1.. (``sh_rest`` [N, K-1, C]) so that f'(R d) = f(d) for every direction.

    Each band l transforms by a (2l+1)² matrix M_l with Y_l(Rᵀ d) = M_l Y_l(d); the new
    coefficients are M_lᵀ c_l. M_l is solved exactly (least squares on an over-determined,
    well-conditioned system) from the basis evaluated at fixed sample directions, which keeps the
    result tied to recon's own basis and sign conventions in recon.render.sh.
    """
    k = sh_rest.shape[1] + 1
    degree = next((d for d in range(MAX_DEGREE + 1) if num_bases(d) == k), None)
    if degree is None:
        raise ReconError(f"SH with {k} coefficients per channel is not a full set of bands.")
    if degree == 0 or np.array_equal(rotation, np.eye(3)):
        return sh_rest.clone()
    dirs = torch.randn(64, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    rot = torch.as_tensor(rotation, dtype=torch.float64)
    y = sh_bases(degree, dirs)                       # [S, K]
    y_rot = sh_bases(degree, dirs @ rot)             # Y(Rᵀ d): rows are (Rᵀ d)ᵀ = dᵀ R
    out = sh_rest.clone()
    for band in range(1, degree + 1):
        lo, hi = band * band, (band + 1) * (band + 1)
        # y_rot[:, band] = y[:, band] @ M_lᵀ  ->  M_lᵀ = lstsq(y_band, y_rot_band)
        m_t = torch.linalg.lstsq(y[:, lo:hi], y_rot[:, lo:hi]).solution      # [2l+1, 2l+1]
        coeffs = sh_rest[:, lo - 1:hi - 1].double()
        out[:, lo - 1:hi - 1] = torch.einsum("ij,njc->nic", m_t.to(coeffs.device), coeffs).to(out.dtype)
    return out


def rotation_to_quat(rotation: np.ndarray) -> np.ndarray:
    """Unit quaternion (w, x, y, z) of a 3x3 rotation matrix, with w >= 0."""
    from scipy.spatial.transform import Rotation

    x, y, z, w = Rotation.from_matrix(np.asarray(rotation, dtype=np.float64)).as_quat()
    q = np.array([w, x, y, z])
    return q if w >= 0 else -q


def quat_multiply(a: Tensor, b: Tensor) -> Tensor:
    """Hamilton product a ⊗ b of [..., 4] (w, x, y, z) quaternions: the rotation b, then a."""
    aw, ax, ay, az = a.unbind(-1)
    bw, bx, by, bz = b.unbind(-1)
    return torch.stack([aw * bw - ax * bx - ay * by - az * bz,
                        aw * bx + ax * bw + ay * bz - az * by,
                        aw * by - ax * bz + ay * bw + az * bx,
                        aw * bz + ax * by - ay * bx + az * bw], -1)


def _to_input_frame(normalization: Similarity | None) -> Similarity:
    return Similarity() if normalization is None else normalization.inverse()


def _to_numpy(splats: Mapping[str, Tensor]) -> dict[str, np.ndarray]:
    return {k: v.detach().cpu().numpy().astype(np.float32) for k, v in splats.items()}


def _to_bytes(values: np.ndarray) -> np.ndarray:
    """Round to the nearest byte value, saturating at 0 and 255."""
    return np.clip(np.rint(values), 0, 255).astype(np.uint8)


__all__ = ["SPLAT_ROW", "ply_property_names", "quat_multiply",
           "read_ply", "read_splat", "rotate_sh", "rotation_to_quat", "transform_splats",
           "read_element", "write_float_table", "write_ply", "write_splat"]
