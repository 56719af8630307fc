"""Exports of fitted scenes: Gaussian splat files (``splats``: 3DGS ``.ply`` and ``.splat``)."""
