"""recon's web viewer (viser), importable as ``recon.viewer``.

``server`` starts viser (loopback, port fallback, warnings); ``app`` is the viewer and
``recon view``; ``views`` renders splats in a render mode; ``render_loop`` streams those renders
to each browser; ``scene`` puts splats, cameras and meshes into viser; ``training`` is the
``recon fit --viewer`` listener; ``paths`` holds camera paths for ``recon render``.
"""
