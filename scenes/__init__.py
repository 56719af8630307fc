"""Built-in procedural scenes, rendered by an independent ray caster to posed RGBA datasets."""

from recon.scenes.build import SCENES, SceneSummary, render_scene

__all__ = ["SCENES", "SceneSummary", "render_scene"]
