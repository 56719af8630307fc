"""COLMAP sparse models: read and write ``cameras``, ``images`` and ``points3D`` in COLMAP's binary
and text forms, and load a COLMAP scene (``images/`` + ``sparse/0``) as a Dataset.

The file layouts follow COLMAP's documentation ("Output format"); the reader and writer are our own
(struct + numpy) so that the round-trip tests exercise this code rather than pycolmap's. COLMAP's
image poses are already OpenCV world->camera transforms (rotation from the unit quaternion
``qvec`` = w, x, y, z, then ``tvec``), and its pixel centres sit at +0.5 like recon's, so no axis or
offset conversion is needed. Files written by COLMAP >= 3.12 next to these three (``rigs``,
``frames``) are not needed: every image's pose is stored in ``images`` as well.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from recon.cameras import DISTORTION_NAMES, Camera
from recon.data.dataset import DataConfig, Dataset, build_dataset, image_size
from recon.errors import DatasetError

# Every model COLMAP defines: name -> (model id in the binary files, number of parameters).
# The reader needs the counts of all of them to parse a file; only _LAYOUTS can become a Camera.
CAMERA_MODELS: dict[str, tuple[int, int]] = {
    "SIMPLE_PINHOLE": (0, 3),
    "PINHOLE": (1, 4),
    "SIMPLE_RADIAL": (2, 4),
    "RADIAL": (3, 5),
    "OPENCV": (4, 8),
    "OPENCV_FISHEYE": (5, 8),
    "FULL_OPENCV": (6, 12),
    "FOV": (7, 5),
    "SIMPLE_RADIAL_FISHEYE": (8, 4),
    "RADIAL_FISHEYE": (9, 5),
    "THIN_PRISM_FISHEYE": (10, 12),
    "RAD_TAN_THIN_PRISM_FISHEYE": (11, 16),
    "SIMPLE_DIVISION": (12, 4),
    "DIVISION": (13, 5),
    "SIMPLE_FISHEYE": (14, 3),
    "FISHEYE": (15, 4),
    "EUCM": (16, 6),
    "EQUIRECTANGULAR": (17, 2),
}
_MODEL_BY_ID = {model_id: name for name, (model_id, _) in CAMERA_MODELS.items()}


@dataclass(frozen=True)
class _Layout:
    """How a COLMAP model's parameters map onto a recon Camera."""

    single_focal: bool
    """Parameters start with f, cx, cy (else fx, fy, cx, cy)."""
    fisheye: bool
    slots: tuple[int, ...]
    """Index in recon's coefficient vector of each distortion parameter, in COLMAP's order."""


# The models recon can represent exactly: each is a prefix of the OpenCV radial-tangential
# (k1 k2 p1 p2 k3 k4) or fisheye (k1 k2 k3 k4 on theta) model that recon.data.undistort implements.
_LAYOUTS: dict[str, _Layout] = {
    "SIMPLE_PINHOLE": _Layout(True, False, ()),
    "PINHOLE": _Layout(False, False, ()),
    "SIMPLE_RADIAL": _Layout(True, False, (0,)),
    "RADIAL": _Layout(True, False, (0, 1)),
    "OPENCV": _Layout(False, False, (0, 1, 2, 3)),
    "SIMPLE_FISHEYE": _Layout(True, True, ()),
    "FISHEYE": _Layout(False, True, ()),
    "SIMPLE_RADIAL_FISHEYE": _Layout(True, True, (0,)),
    "RADIAL_FISHEYE": _Layout(True, True, (0, 1)),
    "OPENCV_FISHEYE": _Layout(False, True, (0, 1, 2, 3)),
}
SUPPORTED_MODELS = tuple(_LAYOUTS)

# Binary records (little endian, as COLMAP writes them).
_POINT2D = np.dtype([("x", "<f8"), ("y", "<f8"), ("point3D_id", "<i8")])  # id -1: no 3D point
_TRACK = np.dtype([("image_id", "<i4"), ("point2D_idx", "<i4")])


@dataclass
class ColmapCamera:
    id: int
    model: str
    width: int
    height: int
    params: np.ndarray
    """float64, in the order COLMAP defines for ``model``."""


@dataclass
class ColmapImage:
    id: int
    qvec: np.ndarray
    """World->camera rotation as a unit quaternion (w, x, y, z)."""
    tvec: np.ndarray
    """World->camera translation."""
    camera_id: int
    name: str
    """Path of the image file relative to the image folder."""
    xys: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)))
    """2D observations [N,2] in pixels."""
    point3D_ids: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    """Id of the 3D point of each observation, -1 where there is none."""


@dataclass
class ColmapPoint3D:
    id: int
    xyz: np.ndarray
    rgb: np.ndarray
    """uint8 [3]."""
    error: float
    """Mean reprojection error in pixels (-1 when unknown)."""
    track: np.ndarray = field(default_factory=lambda: np.zeros((0, 2), np.int64))
    """[L,2] (image id, index into that image's observations)."""


@dataclass
class ColmapModel:
    cameras: dict[int, ColmapCamera] = field(default_factory=dict)
    images: dict[int, ColmapImage] = field(default_factory=dict)
    points: dict[int, ColmapPoint3D] = field(default_factory=dict)


# -- detection and loading ------------------------------------------------------------------------


def find_model_dir(path: Path) -> Path | None:
    """The folder holding the sparse model: ``path/sparse/0``, ``path/sparse`` or ``path`` itself."""
    path = Path(path)
    for folder in (path / "sparse" / "0", path / "sparse", path):
        if (folder / "cameras.bin").is_file() or (folder / "cameras.txt").is_file():
            return folder
    return None


def detect(path: Path) -> bool:
    return Path(path).is_dir() and find_model_dir(path) is not None


def load(path: Path, config: DataConfig) -> Dataset:
    """A COLMAP scene: the model from ``sparse/0`` and the photos from ``images/`` (or ``images_N``).

    Cameras with a lens model keep their distortion; the Dataset undistorts their photos when it
    decodes them. The sparse points and their colours come along to initialise primitives.
    """
    path = Path(path)
    model_dir = find_model_dir(path)
    if model_dir is None:
        raise DatasetError(
            f"No COLMAP model (cameras.bin or cameras.txt) in {path}, {path}/sparse or {path}/sparse/0."
        )
    model = read_model(model_dir)
    if not model.images:
        raise DatasetError(f"The COLMAP model in {model_dir} has no registered images. Re-run SfM.")
    root = _scene_root(path, model_dir)
    folder, config = image_folder(root, config)
    images = sorted(model.images.values(), key=lambda im: im.name)
    paths = [folder / im.name for im in images]
    sizes = _actual_sizes(images, paths)
    cameras = [
        camera_from_colmap(model.cameras[im.camera_id], im, size=sizes.get(im.camera_id), model_dir=model_dir)
        for im in images
    ]
    points = colors = None
    if model.points:
        points = np.stack([p.xyz for p in model.points.values()])
        colors = np.stack([p.rgb for p in model.points.values()])
    return build_dataset(
        cameras, paths, format="colmap", root=root, config=config, points=points, point_colors=colors,
    )


def image_folder(root: Path, config: DataConfig) -> tuple[Path, DataConfig]:
    """The photo folder to read and the config to hand to ``build_dataset``, for a downscale d:
    ``images_d`` when it exists, else ``images`` (shrunk by d when loaded), else the pre-shrunk
    ``images_N`` with the largest N dividing d (shrunk by the rest), else the finest one there
    is, as it is (datasets shipped with ``images_4`` or ``images_8`` only: the cameras follow the
    photos' size). A folder's factor is consumed with it: those photos are already N times
    smaller and must not be shrunk twice.
    """
    folders = photo_folders(root)
    if not folders:
        raise DatasetError(f"No images/ (or images_N/) folder in {root}. Put the dataset's photos "
                           "there.")
    d = config.downscale
    dividing = [n for n in folders if d % n == 0]
    n = max(dividing) if dividing else min(folders)
    return folders[n], replace(config, downscale=d // n if d % n == 0 else 1)


def photo_folders(root: Path) -> dict[int, Path]:
    """{N: folder} of the photo folders in ``root``: ``images`` as 1, ``images_N`` as N."""
    folders = {1: root / "images"} if (root / "images").is_dir() else {}
    for folder in root.glob("images_*"):
        factor = folder.name.removeprefix("images_")
        if folder.is_dir() and factor.isdigit() and int(factor) > 1:
            folders[int(factor)] = folder
    return folders


def _scene_root(path: Path, model_dir: Path) -> Path:
    """The folder holding the photos: ``path``, or for a model folder given directly its scene
    folder."""
    for candidate in (path, *model_dir.parents[:2]):
        if photo_folders(candidate):
            return candidate
    return path


def _actual_sizes(images: list[ColmapImage], paths: list[Path]) -> dict[int, tuple[int, int]]:
    """(width, height) of the photos on disk for each camera id, from the first that exists.

    Photos may be smaller than the model's cameras (``images_N``, or resized by hand); the cameras
    are scaled to what is on disk. Missing photos are left for build_dataset to report.
    """
    sizes: dict[int, tuple[int, int]] = {}
    for im, file in zip(images, paths):
        if im.camera_id not in sizes and file.is_file():
            sizes[im.camera_id] = image_size(file)
    return sizes


# -- conversion to recon cameras ------------------------------------------------------------------


def qvec_to_rotmat(qvec: np.ndarray) -> np.ndarray:
    """3x3 rotation of the quaternion (w, x, y, z), normalised first (NaN if it is zero)."""
    q = np.asarray(qvec, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        w, x, y, z = q / np.linalg.norm(q)
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
        [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
        [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
    ])


def camera_from_colmap(
    camera: ColmapCamera, image: ColmapImage, size: tuple[int, int] | None = None,
    model_dir: Path | None = None,
) -> Camera:
    """The recon Camera of ``image``, with intrinsics scaled to ``size`` = (W, H) when given."""
    layout = _LAYOUTS.get(camera.model)
    if layout is None:
        where = f" of the COLMAP model in {model_dir}" if model_dir else ""
        raise DatasetError(
            f"Camera {camera.id}{where} uses the {camera.model} camera model, which recon cannot "
            f"undistort (supported: {', '.join(SUPPORTED_MODELS)}). Undistort the photos with "
            "`colmap image_undistorter --output_type COLMAP` and load its output folder, or re-run "
            "SfM with a supported model."
        )
    p = camera.params
    if layout.single_focal:
        fx = fy = p[0]
        cx, cy, extra = p[1], p[2], p[3:]
    else:
        fx, fy, cx, cy, extra = p[0], p[1], p[2], p[3], p[4:]
    distortion = None
    if layout.slots or layout.fisheye:
        distortion = np.zeros(4 if layout.fisheye else len(DISTORTION_NAMES))
        distortion[list(layout.slots)] = extra
    width, height = size if size is not None else (camera.width, camera.height)
    sx, sy = width / camera.width, height / camera.height
    w2c = np.eye(4)
    w2c[:3, :3] = qvec_to_rotmat(image.qvec)
    w2c[:3, 3] = image.tvec
    return Camera(
        int(width), int(height), float(fx * sx), float(fy * sy), float(cx * sx), float(cy * sy), w2c,
        distortion=distortion, fisheye=layout.fisheye, name=image.name,
    )


# -- reading --------------------------------------------------------------------------------------


def read_model(folder: Path) -> ColmapModel:
    """Read a sparse model; binary when ``cameras.bin`` exists, else text. ``points3D`` is optional."""
    folder = Path(folder)
    binary = (folder / "cameras.bin").is_file()
    ext = ".bin" if binary else ".txt"
    for name in ("cameras", "images"):
        if not (folder / f"{name}{ext}").is_file():
            raise DatasetError(f"The COLMAP model in {folder} has no {name}{ext}. Re-export the model.")
    readers = (_read_cameras_bin, _read_images_bin, _read_points_bin) if binary else (
        _read_cameras_txt, _read_images_txt, _read_points_txt)
    points_file = folder / f"points3D{ext}"
    model = ColmapModel(
        cameras=readers[0](folder / f"cameras{ext}"),
        images=readers[1](folder / f"images{ext}"),
        points=readers[2](points_file) if points_file.is_file() else {},
    )
    unknown = sorted({im.camera_id for im in model.images.values()} - set(model.cameras))
    if unknown:
        raise DatasetError(
            f"Images in {folder} refer to camera id(s) {unknown} that the model's cameras{ext} does not "
            "define. The model is inconsistent; re-export it from COLMAP."
        )
    return model


def _model_params(model_id_or_name: int | str, where: str) -> tuple[str, int]:
    """(name, parameter count) of a camera model, or a DatasetError for one COLMAP does not define."""
    name = _MODEL_BY_ID.get(model_id_or_name) if isinstance(model_id_or_name, int) else model_id_or_name
    if name not in CAMERA_MODELS:
        raise DatasetError(
            f"{where}: unknown COLMAP camera model {model_id_or_name!r}. The file is corrupt or from a "
            "newer COLMAP; re-export it with `colmap model_converter`."
        )
    return name, CAMERA_MODELS[name][1]


class _BinaryReader:
    """Sequential reads from a COLMAP binary file that turn truncation into a DatasetError."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.data = path.read_bytes()
        self.pos = 0

    def _need(self, size: int) -> None:
        if size < 0 or self.pos + size > len(self.data):
            raise DatasetError(
                f"{self.path} is truncated or corrupt (needed {size} more bytes at offset {self.pos} "
                f"of {len(self.data)}). Re-export the model from COLMAP or re-run `recon process`."
            )

    def unpack(self, fmt: str) -> tuple:
        size = struct.calcsize(fmt)
        self._need(size)
        values = struct.unpack_from(fmt, self.data, self.pos)
        self.pos += size
        return values

    def array(self, dtype: np.dtype, count: int) -> np.ndarray:
        self._need(count * dtype.itemsize)
        arr = np.frombuffer(self.data, dtype=dtype, count=count, offset=self.pos)
        self.pos += count * dtype.itemsize
        return arr

    def cstring(self) -> str:
        end = self.data.find(b"\0", self.pos)
        if end < 0:
            self._need(len(self.data) - self.pos + 1)
        text = self.data[self.pos:end]
        self.pos = end + 1
        try:
            return text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise DatasetError(
                f"{self.path} holds an image name that is not UTF-8 ({exc}); the file is corrupt."
            ) from exc

    def count(self) -> int:
        """A leading record count, checked against the bytes left so garbage cannot allocate GBs."""
        (n,) = self.unpack("<Q")
        self._need(min(n, len(self.data)))  # every record is at least one byte
        return n

    def finish(self) -> None:
        if self.pos != len(self.data):
            raise DatasetError(
                f"{self.path} has {len(self.data) - self.pos} unexpected bytes after its last record; "
                "the file is corrupt. Re-export the model from COLMAP."
            )


def _read_cameras_bin(path: Path) -> dict[int, ColmapCamera]:
    r = _BinaryReader(path)
    cameras = {}
    for _ in range(r.count()):
        camera_id, model_id, width, height = r.unpack("<iiQQ")
        name, n_params = _model_params(model_id, str(path))
        params = r.array(np.dtype("<f8"), n_params).astype(np.float64)
        cameras[camera_id] = ColmapCamera(camera_id, name, int(width), int(height), params)
    r.finish()
    return cameras


def _read_images_bin(path: Path) -> dict[int, ColmapImage]:
    r = _BinaryReader(path)
    images = {}
    for _ in range(r.count()):
        image_id, *pose, camera_id = r.unpack("<I7dI")
        name = r.cstring()
        (n_points,) = r.unpack("<Q")
        obs = r.array(_POINT2D, n_points)
        images[image_id] = ColmapImage(
            image_id, np.array(pose[:4]), np.array(pose[4:]), camera_id, name,
            xys=np.stack([obs["x"], obs["y"]], axis=-1), point3D_ids=obs["point3D_id"].astype(np.int64),
        )
    r.finish()
    return images


def _read_points_bin(path: Path) -> dict[int, ColmapPoint3D]:
    r = _BinaryReader(path)
    points = {}
    for _ in range(r.count()):
        point_id, x, y, z, red, green, blue, error, track_length = r.unpack("<Q3d3BdQ")
        track = r.array(_TRACK, track_length)
        points[point_id] = ColmapPoint3D(
            point_id, np.array([x, y, z]), np.array([red, green, blue], np.uint8), error,
            np.stack([track["image_id"], track["point2D_idx"]], axis=-1).astype(np.int64),
        )
    r.finish()
    return points


def _data_lines(path: Path) -> list[tuple[int, str]]:
    """(line number, text) of each line of a COLMAP text file that is not a comment."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise DatasetError(f"{path} is not a UTF-8 text file ({exc}); the file is corrupt.") from exc
    lines = enumerate(text.splitlines(), start=1)
    return [(number, line.strip()) for number, line in lines if not line.lstrip().startswith("#")]


def _parse_error(path: Path, line_no: int, what: str, exc: Exception | None = None) -> DatasetError:
    detail = f" ({exc})" if exc else ""
    return DatasetError(
        f"{path}, line {line_no}: {what}{detail}. Fix the line or re-export the model from COLMAP."
    )


def _read_cameras_txt(path: Path) -> dict[int, ColmapCamera]:
    cameras = {}
    for line_no, line in _data_lines(path):
        if not line:
            continue
        fields = line.split()
        try:
            camera_id, model, width, height = int(fields[0]), fields[1], int(fields[2]), int(fields[3])
            params = np.array([float(v) for v in fields[4:]])
        except (ValueError, IndexError) as exc:
            raise _parse_error(path, line_no, "expected CAMERA_ID MODEL WIDTH HEIGHT PARAMS...", exc) from exc
        name, n_params = _model_params(model, f"{path}, line {line_no}")
        if len(params) != n_params:
            raise _parse_error(path, line_no, f"{name} takes {n_params} parameters, found {len(params)}")
        cameras[camera_id] = ColmapCamera(camera_id, name, width, height, params)
    return cameras


def _read_images_txt(path: Path) -> dict[int, ColmapImage]:
    """Two lines per image: the pose line, then the observation line (which may be empty)."""
    lines = _data_lines(path)
    images = {}
    i = 0
    while i < len(lines):
        line_no, line = lines[i]
        i += 1
        if not line:
            continue
        # The name is the rest of the line: COLMAP allows spaces in it.
        fields = line.split(maxsplit=9)
        try:
            image_id, camera_id, name = int(fields[0]), int(fields[8]), fields[9]
            pose = [float(v) for v in fields[1:8]]
        except (ValueError, IndexError) as exc:
            expected = "expected IMAGE_ID QW QX QY QZ TX TY TZ CAMERA_ID NAME"
            raise _parse_error(path, line_no, expected, exc) from exc
        obs_line = lines[i][1] if i < len(lines) else ""
        i += 1
        values = obs_line.split()
        if len(values) % 3:
            raise _parse_error(path, line_no + 1, "observations must come as X Y POINT3D_ID triples")
        try:
            xys = np.array([float(v) for k, v in enumerate(values) if k % 3 != 2]).reshape(-1, 2)
            ids = np.array([int(v) for v in values[2::3]], dtype=np.int64)
        except ValueError as exc:
            raise _parse_error(path, line_no + 1, "unreadable observation", exc) from exc
        images[image_id] = ColmapImage(
            image_id, np.array(pose[:4]), np.array(pose[4:]), camera_id, name, xys, ids
        )
    return images


def _read_points_txt(path: Path) -> dict[int, ColmapPoint3D]:
    points = {}
    for line_no, line in _data_lines(path):
        if not line:
            continue
        fields = line.split()
        try:
            point_id = int(fields[0])
            xyz = np.array([float(v) for v in fields[1:4]])
            rgb = np.array([int(v) for v in fields[4:7]], dtype=np.uint8)
            error = float(fields[7])
            track = np.array([int(v) for v in fields[8:]], dtype=np.int64).reshape(-1, 2)
            if len(xyz) != 3 or len(rgb) != 3:
                raise IndexError("too few values")
        except (ValueError, IndexError, OverflowError) as exc:
            raise _parse_error(path, line_no, "expected POINT3D_ID X Y Z R G B ERROR TRACK...", exc) from exc
        points[point_id] = ColmapPoint3D(point_id, xyz, rgb, error, track)
    return points


# -- writing --------------------------------------------------------------------------------------


def write_model(model: ColmapModel, folder: Path, binary: bool = True) -> None:
    """Write ``cameras``, ``images`` and ``points3D`` (``.bin`` or ``.txt``) into ``folder``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if binary:
        _write_cameras_bin(model, folder / "cameras.bin")
        _write_images_bin(model, folder / "images.bin")
        _write_points_bin(model, folder / "points3D.bin")
    else:
        _write_cameras_txt(model, folder / "cameras.txt")
        _write_images_txt(model, folder / "images.txt")
        _write_points_txt(model, folder / "points3D.txt")


def _write_cameras_bin(model: ColmapModel, path: Path) -> None:
    chunks = [struct.pack("<Q", len(model.cameras))]
    for cam in model.cameras.values():
        model_id = CAMERA_MODELS[cam.model][0]
        chunks.append(struct.pack("<iiQQ", cam.id, model_id, cam.width, cam.height))
        chunks.append(np.asarray(cam.params, dtype="<f8").tobytes())
    path.write_bytes(b"".join(chunks))


def _write_images_bin(model: ColmapModel, path: Path) -> None:
    chunks = [struct.pack("<Q", len(model.images))]
    for im in model.images.values():
        chunks.append(struct.pack("<I7dI", im.id, *im.qvec, *im.tvec, im.camera_id))
        chunks.append(im.name.encode("utf-8") + b"\0")
        obs = np.empty(len(im.xys), dtype=_POINT2D)
        obs["x"], obs["y"], obs["point3D_id"] = im.xys[:, 0], im.xys[:, 1], im.point3D_ids
        chunks.append(struct.pack("<Q", len(obs)) + obs.tobytes())
    path.write_bytes(b"".join(chunks))


def _write_points_bin(model: ColmapModel, path: Path) -> None:
    chunks = [struct.pack("<Q", len(model.points))]
    for pt in model.points.values():
        chunks.append(struct.pack("<Q3d3BdQ", pt.id, *pt.xyz, *pt.rgb, pt.error, len(pt.track)))
        track = np.empty(len(pt.track), dtype=_TRACK)
        track["image_id"], track["point2D_idx"] = pt.track[:, 0], pt.track[:, 1]
        chunks.append(track.tobytes())
    path.write_bytes(b"".join(chunks))


def _floats(values) -> str:
    """Shortest text that reads back to the same float64 (repr), so text models round-trip exactly."""
    return " ".join(repr(float(v)) for v in values)


def _write_cameras_txt(model: ColmapModel, path: Path) -> None:
    lines = ["# Camera list with one line of data per camera:",
             "#   CAMERA_ID, MODEL, WIDTH, HEIGHT, PARAMS[]",
             f"# Number of cameras: {len(model.cameras)}"]
    lines += [f"{c.id} {c.model} {c.width} {c.height} {_floats(c.params)}" for c in model.cameras.values()]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def _write_images_txt(model: ColmapModel, path: Path) -> None:
    lines = ["# Image list with two lines of data per image:",
             "#   IMAGE_ID, QW, QX, QY, QZ, TX, TY, TZ, CAMERA_ID, NAME",
             "#   POINTS2D[] as (X, Y, POINT3D_ID)",
             f"# Number of images: {len(model.images)}"]
    for im in model.images.values():
        lines.append(f"{im.id} {_floats(im.qvec)} {_floats(im.tvec)} {im.camera_id} {im.name}")
        lines.append(" ".join(f"{_floats(xy)} {int(pid)}" for xy, pid in zip(im.xys, im.point3D_ids)))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def _write_points_txt(model: ColmapModel, path: Path) -> None:
    lines = ["# 3D point list with one line of data per point:",
             "#   POINT3D_ID, X, Y, Z, R, G, B, ERROR, TRACK[] as (IMAGE_ID, POINT2D_IDX)",
             f"# Number of points: {len(model.points)}"]
    for pt in model.points.values():
        track = " ".join(f"{int(a)} {int(b)}" for a, b in pt.track)
        rgb = " ".join(str(int(c)) for c in pt.rgb)
        lines.append(f"{pt.id} {_floats(pt.xyz)} {rgb} {_floats([pt.error])} {track}".rstrip())
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
