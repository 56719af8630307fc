"""Meshes from fitted scenes: extraction (SuGaR level set + Poisson, TSDF fusion, FlexiCubes fitted
to the rendered views), file IO and geometry metrics.

* ``options``  - torch-free settings of each extraction method (the CLI parses them cheaply);
* ``sugar``    - level-set points along training rays (of a model's density field, e.g.
  ``recon.models.density`` for Gaussians) -> screened Poisson surface;
* ``tsdf``     - TSDF fusion of rendered depth and colour;
* ``flexicubes_extract`` - the rendered views as a dataset, carved, then ``recon fit --model
  flexicubes`` on it (``flexicubes``: the isosurface extraction itself);
* ``extract``  - ``recon extract-mesh``: load a run, render its views, extract, map to the input
  world frame, write;
* ``io``       - trimesh ``.ply`` / ``.obj`` / ``.glb`` with vertex colours;
* ``metrics``  - Chamfer distance, normal consistency, F-score, watertightness.
"""
