"""--reg and its option groups: parsed by tyro, validated, and round-tripped through the saved
config."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import tyro

from recon.errors import ReconError
from recon.regularizers import CoherenceOptions, SurfaceOptions
from recon.train.config import PRESETS, FitConfig, from_dict, to_dict


def test_cli_selects_a_regularizer_and_its_options():
    cfg = tyro.cli(FitConfig, default=PRESETS["fast"],
                   args=["d", "--reg", "surface", "--surface.num-samples", "123",
                         "--surface.prune-at", "0.7", "--coherence.stride", "2"])
    assert cfg.reg == "surface" and cfg.reg_options() == cfg.surface
    assert cfg.surface.num_samples == 123 and cfg.surface.prune_at == 0.7
    assert cfg.coherence.stride == 2  # kept, though unused by --reg surface
    assert FitConfig(data=Path("d")).reg_options() is None  # --reg none


def test_regularizer_options_round_trip_through_the_saved_config():
    cfg = dataclasses.replace(PRESETS["default"], data=Path("/x"), reg="coherence",
                              coherence=CoherenceOptions(stride=3, tv_weight=1.5),
                              surface=SurfaceOptions(sdf_weight=0.5))
    data = to_dict(cfg)
    assert data["coherence"]["stride"] == 3 and data["surface"]["sdf_weight"] == 0.5
    assert from_dict(data) == cfg


@pytest.mark.parametrize("reg, options, message", [
    ("surface", {"surface": SurfaceOptions(entropy_start=0.8, prune_at=0.5)}, "prune-at"),
    ("surface", {"surface": SurfaceOptions(prune_opacity=1.0)}, "prune-opacity"),
    ("coherence", {"coherence": CoherenceOptions(stride=0)}, "stride"),
    ("coherence", {"coherence": CoherenceOptions(init_opacity=0.0)}, "init-opacity"),
])
def test_invalid_options_of_the_selected_regularizer_are_rejected(reg, options, message):
    cfg = dataclasses.replace(FitConfig(data=Path("d")), reg=reg, **options)
    with pytest.raises(ReconError, match=message):
        cfg.validate()
    dataclasses.replace(cfg, reg="none").validate()  # only the selected one is checked
