"""FlexiCubes meshes (Shen et al. 2023) as a model: an SDF grid whose isosurface is the scene.

The row set has one row per grid vertex of a ``(res + 1)^3`` grid over the region the cameras
look at (:func:`recon.models.points.viewed_region` × ``--flexicubes.extent``):

* ``sdf`` [V] signed distance values (negative inside), initialised to a sphere, in units of the
  box's half width: the box is the reference's [-1, 1]^3, so its learning rate and L_sign's
  logits keep their meaning at any scene scale;
* ``deform`` [V, 3] raw vertex deformation (at most half a cell, ``tanh``-bounded);
* ``weights`` [V, 21] raw per-cube α (8), β (12), γ (1), on the row of the cube's lowest corner
  (the last layer of rows has no cube and stays unused);
* ``sh0`` [V, 1, 3], ``shN`` [V, K-1, 3] a colour field: SH coefficients interpolated
  trilinearly at the mesh vertices, then across each face by barycentrics;
* ``rest`` [V, 3] the rest positions, never optimised (no gradient reaches them): they carry the
  grid's box into checkpoints.

Every render extracts the mesh (:class:`recon.mesh.flexicubes.FlexiCubesGrid`, training
triangulation, cached while the parameters are unchanged; the SDF read as positive on the box's
boundary, so the surface is always closed) and draws it with the triangle kernel
in opaque mode, whose edge ramp gives the silhouettes gradients. The loss adds the mask L1
against the images' alpha, 10 × the distance from the depth maps' pixels to the mesh where the
dataset has depth maps, L_sign (0.2 → 0.01 over the first quarter), L_dev (0.5) and the weights'
L1 (0.1), the reference recipe (``examples/optimize.py``), and an empty-space term of recon's
own: the SDF must be positive where the views see through.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor

from recon.mesh.closest import closest_points
from recon.mesh.flexicubes import FlexiCubesGrid
from recon.models.base import Model, Params, as_parameters, sh_rows, write_mesh
from recon.models.points import viewed_region
from recon.primitives.triangles import Triangles
from recon.schedules import exponential_decay

NUM_WEIGHTS = 21  # per cube: α (8 corners), β (12 edges), γ (1)
BOUNDARY_SDF = 1e-3
"""Extraction reads the SDF as at least this (units of the box's half width) on the grid's
boundary, so every surface is closed: capped by the box where it leaves it."""


class FlexiCubesModel(Model):
    """A mesh extracted from an SDF grid by FlexiCubes, rendered as opaque triangles."""

    name = "flexicubes"
    noun = "grid vertices"
    position = "deform"
    strategies = ("default",)
    regularizers = ("none",)
    export_formats = ("ply", "glb", "obj")
    use_depth = True
    needs_masks_or_depth = True
    starts_from_points = False  # a sphere

    def __init__(self, config, scene_scale: float) -> None:
        super().__init__(config, scene_scale)
        self.options = config.flexicubes
        self._cache: tuple | None = None

    # -- parameters ---------------------------------------------------------------------------

    def initialize(self, points, colors, generator, device, cameras=()) -> torch.nn.ParameterDict:
        """A sphere of ``radius`` × the box's half width in the middle of the viewed region,
        grey, undeformed, neutral weights."""
        o = self.options
        center, half = viewed_region(cameras)
        half *= o.extent
        grid = FlexiCubesGrid(o.resolution, (tuple(center - half), tuple(center + half)))
        return self._grid_parameters(grid, grid.sphere_sdf(o.radius * half) / half, device)

    def _grid_parameters(self, grid: FlexiCubesGrid, sdf: Tensor, device,
                         sh: dict[str, Tensor] | None = None) -> torch.nn.ParameterDict:
        n = grid.num_vertices
        sh = sh or sh_rows(torch.full((n, 3), 0.5), self.config.max_sh_degree)
        return as_parameters({
            "sdf": sdf, "deform": torch.zeros(n, 3), "weights": torch.zeros(n, NUM_WEIGHTS),
            **sh, "rest": grid.vertices(),
        }, device)

    def learning_rates(self, step: int) -> dict[str, float]:
        o = self.options

        def decayed(lr: float) -> float:
            return exponential_decay(lr, o.lr_final, step, self.config.steps)

        return {"sdf": decayed(o.sdf_lr), "deform": decayed(o.deform_lr),
                "weights": decayed(o.weights_lr), "sh0": o.sh0_lr, "shN": o.shN_lr, "rest": 0.0}

    @staticmethod
    def count(params: Params) -> int:
        return int(params["sdf"].shape[0])

    # -- the grid and its mesh ----------------------------------------------------------------

    @staticmethod
    def grid(params: Params) -> FlexiCubesGrid:
        """The grid the rows describe (its box is the first and last rest position)."""
        rest = params["rest"].detach()
        res = round(len(rest) ** (1 / 3)) - 1
        return FlexiCubesGrid(res, (tuple(rest[0].tolist()), tuple(rest[-1].tolist())))

    def mesh(self, params: Params, training: bool = True):
        """The extracted mesh (vertices [V, 3], faces [F, 3], l_dev), cached while no parameter
        changes (the render, colours and loss of one step share it). The key holds the tensors'
        version counters, but fused Adam updates in place without bumping them, so
        :meth:`after_step` also drops the cache."""
        # The cache keeps the tensors themselves (compared by identity), so a freed tensor's
        # address can never be mistaken for a live one.
        tensors = tuple(params.values())
        key = (training, torch.is_grad_enabled(), tuple(p._version for p in tensors))
        if (self._cache is not None and self._cache[0] == key
                and all(a is b for a, b in zip(self._cache[1], tensors))):
            return self._cache[2]
        grid = self.grid(params)
        w = params["weights"][_cube_rows(grid, params["sdf"].device)]
        mesh = grid.extract(closed_boundary(params["sdf"], grid.res), params["deform"],
                            w[:, :8], w[:, 8:20], w[:, 20], training=training)
        self._cache = (key, tensors, mesh)
        return mesh

    def upsample(self, params: torch.nn.ParameterDict, optimizers: dict) -> None:
        """Coarse to fine: the same box at twice the resolution. The SDF and the colour field are
        sampled trilinearly at the new vertices (the old deformation is baked into neither, so
        it starts again at zero, as do the weights); every Adam starts afresh."""
        old = self.grid(params)
        grid = FlexiCubesGrid(2 * old.res, (old.lower, old.upper))
        device = params["sdf"].device
        with torch.no_grad():
            at = grid.vertices(device)
            values = self._grid_parameters(grid, trilinear(params["sdf"], old, at), device, {
                name: trilinear(params[name], old, at) for name in ("sh0", "shN")})
        for name, new in values.items():
            optimizer = optimizers[name]
            optimizer.state.pop(params[name], None)
            optimizer.param_groups[0]["params"] = [new]
            params[name] = new
        self._cache = None

    def after_step(self, params: Params, optimizers: dict, step: int) -> None:
        self._cache = None

    # -- rendering ----------------------------------------------------------------------------

    def primitives(self, params: Params, geometry_gradients: bool = False) -> Triangles:
        """The mesh's faces as opaque triangles. The colour render does not move the geometry
        (its vertices are detached) unless ``geometry_gradients``: only the mask and depth terms
        shape the surface (see :meth:`loss`)."""
        vertices, faces, _ = self.mesh(params)
        if not geometry_gradients:
            vertices = vertices.detach()
        zeros = vertices.new_zeros(len(faces))
        return Triangles(vertices=vertices[faces], log_sigma=zeros, opacity_logit=zeros)

    def coverage(self, params: Params, camera) -> Tensor:
        """[H, W] the mesh's rendered coverage in ``camera``, differentiable in the geometry."""
        from recon.render import render

        triangles = self.primitives(params, geometry_gradients=True)
        blank = triangles.vertices.new_zeros(len(triangles.vertices), 1)
        result = render(triangles, camera, blank, depth=False, normals=False,
                        **self.render_options())
        return _single(result.alpha)

    def colors(self, params: Params, sh_degree: int) -> Tensor:
        """Per-corner SH [F, 3, K, 3]: the colour field at the mesh vertices (trilinear)."""
        vertices, faces, _ = self.mesh(params)
        field = Model.colors(params, sh_degree)                                   # [G, K, 3]
        at_vertices = trilinear(field, self.grid(params), vertices.detach())
        return at_vertices[faces]

    def render_options(self) -> dict:
        return {"opaque": True, "band": self.options.band}

    def loss(self, params: Params, step: int = 0, result=None, camera=None,
             alpha: Tensor | None = None, depth: Tensor | None = None) -> Tensor:
        """Mask L1 of the coverage against the image's ``alpha``; where the dataset has a
        ``depth`` map, ``depth_weight`` × the mean distance from its pixels (as points) to the
        mesh (:func:`recon.mesh.closest.closest_points`: gradients on the mesh's vertices, so on
        the SDF, deformation and weights alike); ``empty_weight`` × mean max(0, -SDF) at points
        the view sees as empty (:func:`empty_points`); λ_sign · L_sign with λ_sign falling
        linearly from ``sign_start`` to ``sign_end`` over the first ``sign_fraction`` of the
        steps; ``dev_weight`` · L_dev and ``weights_l1`` · mean |raw weights|.

        Depth is matched in 3D rather than as a rendered depth map (the reference's masked
        depth L2 says the same: the surface passes through each pixel's point): the renderer
        interpolates depth with screen-space barycentrics, which extrapolate wildly in the edge
        ramp of the slivers a surface shows at grazing angles (on spot at 128², an L1 on
        rendered depth took the mask IoU from 0.97 to 0.79), while distances to the points stay
        bounded. On spot (128², 32³ then 64³, 1000 steps) the distance to the mesh took the
        Chamfer of the exported mesh from 0.36 % (a term on the SDF at the points instead,
        where the deformation and weights learnt from the mask alone) to 0.024 %; on the
        ``object`` torus the empty-space term took it from 0.43 % (a membrane over the hole,
        which covers its pixels whole and gets no mask gradient) to 0.066 %. The colour render
        leaves the geometry alone (:meth:`primitives`; spot, 32³, 1000 steps: Chamfer 1.5 % with
        colour gradients on the vertices).
        """
        o = self.options
        mesh, grid = self.mesh(params), self.grid(params)
        t = min(1.0, step / max(1.0, o.sign_fraction * self.config.steps))
        sign = o.sign_start + (o.sign_end - o.sign_start) * t
        loss = (sign * grid.sign_loss(params["sdf"])
                + o.dev_weight * mesh.deviation_loss()
                + o.weights_l1 * params["weights"].abs().mean())
        if result is None:
            return loss
        if alpha is not None and camera is not None and o.mask_weight > 0:
            loss = loss + o.mask_weight * (self.coverage(params, camera) - alpha).abs().mean()
        if depth is not None and camera is not None and o.depth_weight > 0:
            points = depth_points(depth, camera)
            if len(points):
                vertices, faces, _ = mesh
                on = closest_points(points, vertices, faces)
                half = 0.5 * (grid.upper[0] - grid.lower[0])  # the SDF's unit
                distance = ((on - points).square().sum(-1) + 1e-12).sqrt() / half
                loss = loss + o.depth_weight * distance.mean()
        if camera is not None and o.empty_weight > 0 and (alpha is not None or depth is not None):
            generator = torch.Generator().manual_seed(step)
            empty = empty_points(camera, alpha, depth, grid, o.empty_margin * max(grid.cell),
                                 o.empty_samples, generator)
            if len(empty):
                sdf = trilinear(params["sdf"], grid, empty)
                loss = loss + o.empty_weight * (-sdf).clamp_min(0.0).mean()
        return loss

    # -- downstream ---------------------------------------------------------------------------

    def export(self, format, path, params, normalization, sh_degree) -> Path:
        """The final mesh (the better diagonal of each quad) with its DC vertex colours."""
        if format not in self.export_formats:
            return super().export(format, path, params, normalization, sh_degree)
        return write_mesh(self.browser_view(params), path, normalization)

    def browser_view(self, params: Params):
        """A ``trimesh.Trimesh`` of the final mesh with DC vertex colours (model frame), without
        its pieces under ``min_component`` of the faces."""
        import trimesh

        from recon.mesh.io import without_small_pieces
        from recon.render.sh import sh0_to_rgb

        with torch.no_grad():
            vertices, faces, _ = self.mesh(params, training=False)
            dc = trilinear(params["sh0"], self.grid(params), vertices)[:, 0]
        rgb = (sh0_to_rgb(dc).clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy()
        mesh = trimesh.Trimesh(vertices.double().cpu().numpy(), faces.cpu().numpy(),
                               vertex_colors=rgb, process=False)
        return without_small_pieces(mesh, self.options.min_component)


def depth_points(depth: Tensor, camera) -> Tensor:
    """World points [M, 3] of the pixels of a camera-z ``depth`` map [H, W] that know their
    depth (> 0), at the pixel centres."""
    rows, cols = torch.nonzero(depth > 0, as_tuple=True)
    z = depth[rows, cols]
    local = torch.stack([(cols + 0.5 - camera.cx) / camera.fx * z,
                         (rows + 0.5 - camera.cy) / camera.fy * z, z], -1)
    c2w = torch.as_tensor(camera.camera_to_world, dtype=depth.dtype, device=depth.device)
    return local @ c2w[:3, :3].T + c2w[:3, 3]


def empty_points(camera, alpha: Tensor | None, depth: Tensor | None, grid: FlexiCubesGrid,
                 margin: float, count: int, generator: torch.Generator) -> Tensor:
    """[M, 3] world points that one view sees as empty space: ``count`` random pixels, one
    random point each on the pixel's ray inside the grid's box, before the pixel's ``depth``
    less ``margin`` (camera z), anywhere on it for background pixels (``alpha`` below 0.01);
    pixels that know neither are skipped."""
    h, w = camera.height, camera.width
    device = (alpha if alpha is not None else depth).device
    pixel = torch.randint(0, h * w, (count,), generator=generator).to(device)
    rows, cols = pixel // w, pixel % w
    far = torch.full((count,), float("-inf"), device=device)           # no limit known: skip
    if alpha is not None:
        far = torch.where(alpha[rows, cols] < 0.01, float("inf"), far)
    if depth is not None:
        z = depth[rows, cols]
        far = torch.where(z > 0, z - margin, far)
    c2w = torch.as_tensor(camera.camera_to_world, dtype=torch.float32, device=device)
    local = torch.stack([(cols + 0.5 - camera.cx) / camera.fx,
                         (rows + 0.5 - camera.cy) / camera.fy,
                         torch.ones(count, device=device)], -1)
    direction = local @ c2w[:3, :3].T                       # camera z = 1 per unit of direction
    origin = c2w[:3, 3]
    # The ray's span inside the box (slabs), in camera z.
    lower, upper = direction.new_tensor(grid.lower), direction.new_tensor(grid.upper)
    safe = torch.where(direction.abs() < 1e-12, torch.full_like(direction, 1e-12), direction)
    t0, t1 = (lower - origin) / safe, (upper - origin) / safe
    near = torch.minimum(t0, t1).amax(-1).clamp_min(0.0)
    far = torch.minimum(far, torch.maximum(t0, t1).amin(-1))
    keep = far > near
    u = torch.rand(count, generator=generator).to(device)
    t = near + u * (far - near)
    return (origin + t[:, None] * direction)[keep]


def closed_boundary(sdf: Tensor, res: int) -> Tensor:
    """``sdf`` [(res + 1)^3] with its boundary vertices at least :data:`BOUNDARY_SDF`: the
    FlexiCubes surface is then closed (watertight where the extraction is manifold)."""
    side = res + 1
    index = torch.arange(len(sdf), device=sdf.device)
    ijk = torch.stack([index // side**2, index // side % side, index % side], dim=-1)
    boundary = ((ijk == 0) | (ijk == res)).any(dim=-1)
    return torch.where(boundary, sdf.clamp_min(BOUNDARY_SDF), sdf)


def _single(image: Tensor) -> Tensor:
    """[H, W] of a one-camera render's map ([1, H, W] or [H, W])."""
    return image[0] if image.dim() == 3 else image


def _cube_rows(grid: FlexiCubesGrid, device) -> Tensor:
    """[res^3] the row of each cube: its lowest corner's vertex."""
    return grid.cube_corners(device)[:, 0]


def trilinear(field: Tensor, grid: FlexiCubesGrid, points: Tensor) -> Tensor:
    """Values of a per-grid-vertex ``field`` [G, ...] at ``points`` [P, 3] (clamped to the box),
    interpolated trilinearly."""
    side = grid.res + 1
    lower = points.new_tensor(grid.lower)
    cell = points.new_tensor(grid.cell)
    u = ((points - lower) / cell).clamp(0.0, float(grid.res))
    # Clamped as an index too: in float32, res - ε rounds to res from res = 32 on.
    base = u.floor().long().clamp(0, grid.res - 1)
    frac = u - base
    out = 0
    for corner in range(8):
        offset = torch.tensor([(corner >> a) & 1 for a in range(3)], device=points.device)
        index = base + offset
        row = (index[:, 0] * side + index[:, 1]) * side + index[:, 2]
        weight = torch.where(offset.bool(), frac, 1.0 - frac).prod(-1)
        out = out + field[row] * weight.reshape(-1, *([1] * (field.dim() - 1)))
    return out


__all__ = ["BOUNDARY_SDF", "FlexiCubesModel", "closed_boundary", "depth_points", "empty_points",
           "trilinear"]
