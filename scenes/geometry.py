"""The ground-truth geometry of the built-in scenes, and any mesh file made ready to render.

A scene is a list of parts (a triangle mesh and the material that colours it), concatenated into one
``SceneMesh`` whose triangles are what the renderer intersects and what ``mesh.ply`` stores. World z
is up; every scene fits in a sphere of radius about 1 to 2.5 around the origin.
"""

from __future__ import annotations

import colorsys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from recon.cameras import Similarity
from recon.errors import DatasetError
from recon.scenes.textures import (
    ImageTextureMaterial,
    Material,
    NoiseMaterial,
    VertexColorMaterial,
    load_texture_image,
    random_lattice,
)

GROUND_RADIUS = 2.0
"""Radius of the default scene's ground disc (scene units)."""
PLACEMENT_RADIUS = 1.25
"""Objects of the default scene stand with their centres inside this radius."""


@dataclass(frozen=True)
class ScenePart:
    vertices: np.ndarray
    """[V,3] float64."""
    faces: np.ndarray
    """[F,3] int64 vertex indices."""
    material: Material


@dataclass(frozen=True)
class SceneMesh:
    """All parts in one triangle list; triangles [starts[k], starts[k+1]) belong to part k."""

    vertices: np.ndarray
    faces: np.ndarray
    starts: np.ndarray
    materials: tuple[Material, ...]

    @staticmethod
    def from_parts(parts: list[ScenePart]) -> SceneMesh:
        vertex_offsets = np.cumsum([0] + [len(p.vertices) for p in parts])
        face_counts = [len(p.faces) for p in parts]
        faces = np.concatenate([p.faces + off for p, off in zip(parts, vertex_offsets)])
        return SceneMesh(
            vertices=np.concatenate([p.vertices for p in parts]).astype(np.float64),
            faces=faces.astype(np.int64),
            starts=np.cumsum([0] + face_counts),
            materials=tuple(p.material for p in parts),
        )

    def part_of(self, face_ids: np.ndarray) -> np.ndarray:
        """Index of the part that owns each triangle id."""
        return np.searchsorted(self.starts, face_ids, side="right") - 1

    def save_ply(self, path: Path) -> None:
        import trimesh

        trimesh.Trimesh(self.vertices, self.faces, process=False).export(path)


# -- colours ----------------------------------------------------------------------------------

def random_palette(rng: np.random.Generator) -> np.ndarray:
    """Three colours that contrast in brightness and hue: a dark base, a light noise colour and a
    pattern colour on the far side of the colour wheel (contrast is what feature detectors see)."""
    hue = rng.random()
    base = colorsys.hsv_to_rgb(hue, rng.uniform(0.5, 0.9), rng.uniform(0.2, 0.4))
    light = colorsys.hsv_to_rgb((hue + rng.uniform(0.05, 0.2)) % 1.0, rng.uniform(0.3, 0.7),
                                rng.uniform(0.8, 1.0))
    accent = colorsys.hsv_to_rgb((hue + 0.5) % 1.0, rng.uniform(0.6, 1.0), rng.choice([0.1, 0.95]))
    return np.array([base, light, accent], dtype=np.float32)


def random_noise_material(rng: np.random.Generator, pattern: str | None = None) -> NoiseMaterial:
    return NoiseMaterial(
        colors=random_palette(rng),
        lattice=random_lattice(rng),
        pattern=pattern or str(rng.choice(["checker", "stripes", "spots"])),
        noise_frequency=float(rng.uniform(2.5, 4.0)),
        pattern_frequency=float(rng.uniform(5.0, 8.0)),
    )


# -- the default scene --------------------------------------------------------------------------

def ground_disc(radius: float, segments: int = 128) -> tuple[np.ndarray, np.ndarray]:
    """A flat disc at z = 0 facing +z: a triangle fan around the centre."""
    angles = np.linspace(0.0, 2.0 * np.pi, segments, endpoint=False)
    ring = np.stack([radius * np.cos(angles), radius * np.sin(angles), np.zeros(segments)], -1)
    vertices = np.vstack([[0.0, 0.0, 0.0], ring])
    k = np.arange(segments)
    faces = np.stack([np.zeros(segments, int), 1 + k, 1 + (k + 1) % segments], -1)
    return vertices, faces


def _primitives(rng: np.random.Generator) -> list:
    """The default scene's objects (trimesh meshes centred near the origin), sizes jittered."""
    import trimesh

    def s() -> float:
        """A size jitter, drawn once per dimension."""
        return float(rng.uniform(0.85, 1.15))

    standing_torus = trimesh.creation.torus(0.3 * s(), 0.1, major_sections=64, minor_sections=24)
    standing_torus.apply_transform(trimesh.transformations.rotation_matrix(np.pi / 2, [1, 0, 0]))
    return [
        trimesh.creation.box(extents=[0.5 * s(), 0.5 * s(), 0.5 * s()]),
        trimesh.creation.icosphere(subdivisions=4, radius=0.3 * s()),
        standing_torus,
        trimesh.creation.cylinder(radius=0.2 * s(), height=0.6 * s(), sections=48),
        trimesh.creation.cone(radius=0.28 * s(), height=0.6 * s(), sections=48),
    ]


def default_scene(rng: np.random.Generator) -> SceneMesh:
    """Five textured primitives (box, sphere, torus, cylinder, cone) standing on a textured ground
    disc, at seeded non-overlapping positions with seeded headings, sizes and textures."""
    import trimesh

    ground_vertices, ground_faces = ground_disc(GROUND_RADIUS)
    ground = NoiseMaterial(
        colors=np.array([[0.35, 0.27, 0.18], [0.85, 0.8, 0.62], [0.1, 0.28, 0.14]], np.float32),
        lattice=random_lattice(rng), pattern="tiles",
        noise_frequency=2.5, pattern_frequency=5.0,
    )
    parts = [ScenePart(ground_vertices, ground_faces, ground)]
    placed: list[tuple[np.ndarray, float]] = []
    for mesh in _primitives(rng):
        mesh.apply_transform(trimesh.transformations.rotation_matrix(rng.uniform(0, 2 * np.pi), [0, 0, 1]))
        footprint = float(np.linalg.norm(mesh.vertices[:, :2], axis=1).max())
        centre = _free_spot(rng, footprint, placed)
        placed.append((centre, footprint))
        mesh.apply_translation([centre[0], centre[1], -mesh.bounds[0, 2]])  # stand on z = 0
        parts.append(ScenePart(np.asarray(mesh.vertices), np.asarray(mesh.faces),
                               random_noise_material(rng)))
    return SceneMesh.from_parts(parts)


def _free_spot(rng: np.random.Generator, radius: float,
               placed: list[tuple[np.ndarray, float]]) -> np.ndarray:
    """A seeded position in the placement disc that keeps a gap to the objects already placed."""
    gap = 0.12
    for _ in range(10_000):
        r, angle = PLACEMENT_RADIUS * np.sqrt(rng.random()), rng.uniform(0, 2 * np.pi)
        spot = np.array([r * np.cos(angle), r * np.sin(angle)])
        if all(np.linalg.norm(spot - c) >= radius + other + gap for c, other in placed):
            return spot
    raise RuntimeError("could not place the default scene's objects without overlap")


# -- the object scene ---------------------------------------------------------------------------

def bumpy_torus(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A torus whose tube radius swells and narrows in a seeded wave, tilted by a seeded angle:
    genus 1, curved everywhere, with concave and convex regions (a fair mesh-accuracy target)."""
    import trimesh

    major, minor = 0.6, 0.25
    torus = trimesh.creation.torus(major, minor, major_sections=128, minor_sections=48)
    v = np.asarray(torus.vertices, dtype=np.float64)
    around = np.arctan2(v[:, 1], v[:, 0])
    centre = np.stack([major * np.cos(around), major * np.sin(around), np.zeros(len(v))], -1)
    offset = v - centre
    radial = np.einsum("ij,ij->i", offset, centre / major)
    across = np.arctan2(offset[:, 2], radial)
    phase_a, phase_b = rng.uniform(0, 2 * np.pi, 2)
    swell = 1.0 + 0.3 * np.sin(5 * around + phase_a) * np.cos(2 * across + phase_b)
    v = centre + offset * swell[:, None]
    axis = [np.cos(phase_a), np.sin(phase_a), 0.0]
    tilt = trimesh.transformations.rotation_matrix(rng.uniform(0.3, 0.7), axis)
    v = v @ tilt[:3, :3].T
    return v, np.asarray(torus.faces)


def object_scene(rng: np.random.Generator) -> SceneMesh:
    """One textured bumpy torus, normalised into the unit sphere."""
    vertices, faces = bumpy_torus(rng)
    vertices = unit_sphere_similarity(vertices).apply(vertices)
    return SceneMesh.from_parts([ScenePart(vertices, faces, random_noise_material(rng, "spots"))])


# -- any mesh file ------------------------------------------------------------------------------

def unit_sphere_similarity(vertices: np.ndarray) -> Similarity:
    """Scale and shift that put the bounding box centre at the origin and every vertex within
    distance 1 of it (rotation untouched: the file's own axes are kept)."""
    lo, hi = vertices.min(0), vertices.max(0)
    centre = (lo + hi) / 2.0
    scale = 1.0 / float(np.linalg.norm(vertices - centre, axis=1).max())
    return Similarity(scale, np.eye(3), -scale * centre)


def mesh_file_scene(path: Path, rng: np.random.Generator) -> tuple[SceneMesh, Similarity]:
    """The mesh in ``path``, coloured by its texture or vertex colours (else a seeded procedural
    texture) and normalised into the unit sphere. Returns the scene and the similarity that maps
    the file's coordinates into the scene's."""
    import trimesh

    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"Mesh file {path} does not exist. Check the path given to --mesh.")
    try:
        mesh = trimesh.load(path, force="mesh")
    except Exception as exc:  # trimesh raises many types for unreadable files
        raise DatasetError(
            f"Cannot read mesh file {path}: {exc}. Use a mesh format trimesh reads "
            "(.obj, .ply, .glb, .gltf, .off, .stl)."
        ) from exc
    if not isinstance(mesh, trimesh.Trimesh) or len(mesh.faces) == 0:
        raise DatasetError(f"Mesh file {path} holds no triangles (a point cloud or empty scene?). "
                           "Give a file with a surface mesh.")
    vertices = np.asarray(mesh.vertices, dtype=np.float64)
    faces = np.asarray(mesh.faces, dtype=np.int64)
    if not np.isfinite(vertices).all() or np.ptp(vertices, axis=0).max() <= 0:
        raise DatasetError(f"Mesh file {path} has non-finite or coincident vertices. Repair the mesh.")
    similarity = unit_sphere_similarity(vertices)
    material = _file_material(mesh, path, faces) or random_noise_material(rng, "spots")
    return SceneMesh.from_parts([ScenePart(similarity.apply(vertices), faces, material)]), similarity


def _file_material(mesh, path: Path, faces: np.ndarray) -> Material | None:
    """The mesh's own colours: an image through its UVs, or vertex/face colours; None if it has none."""
    visual = mesh.visual
    if visual.kind == "texture" and getattr(visual, "uv", None) is not None:
        image = _texture_image(visual.material, path)
        if image is not None:
            return ImageTextureMaterial(faces, np.asarray(visual.uv, dtype=np.float64), image)
    if visual.kind in ("vertex", "face"):
        colors = np.asarray(visual.vertex_colors, dtype=np.float32)[:, :3] / 255.0
        return VertexColorMaterial(faces, colors)
    return None


def _texture_image(material, path: Path) -> np.ndarray | None:
    """The material's colour image; when the file named none (trimesh then invents a 2x2
    placeholder), a sibling image ``<stem>.png|jpg`` or ``<prefix>_texture.png|jpg``, where prefix
    is the file name up to its first underscore (spot_triangulated.obj -> spot_texture.png)."""
    image = getattr(material, "image", None) or getattr(material, "baseColorTexture", None)
    if image is not None and min(image.size) > 2:
        return np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0
    prefix = path.stem.split("_")[0]
    for name in (path.stem, f"{prefix}_texture"):
        for suffix in (".png", ".jpg", ".jpeg"):
            candidate = path.with_name(name + suffix)
            if candidate.is_file():
                return load_texture_image(candidate)
    return None
