"""Fit configs: torch-free, presets usable with tyro, plain-data round trip, clear validation."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest
import tyro

from recon.errors import ReconError
from recon.strategies import DefaultStrategy, MCMCStrategy
from recon.train.config import PRESETS, FitConfig, from_dict, to_dict


def test_importing_the_config_does_not_import_torch():
    code = "import sys, recon.train.config; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_presets_parse_with_tyro_and_validate(name):
    cfg = tyro.cli(FitConfig, default=PRESETS[name], args=["photos", "--seed", "3"])
    assert cfg.data == Path("photos") and cfg.seed == 3
    assert cfg.steps == PRESETS[name].steps
    cfg.validate()


def test_tyro_selects_strategy_and_nested_fields():
    cfg = tyro.cli(FitConfig, default=PRESETS["default"],
                   args=["d", "--strategy", "mcmc", "--mcmc.cap-max", "5000",
                         "--optim.means-lr", "1e-4", "--data.background", "random"])
    strategy = cfg.build_strategy()
    assert isinstance(strategy, MCMCStrategy) and strategy.cap_max == 5000
    assert strategy is not cfg.mcmc  # a fresh object per run
    assert cfg.optim.means_lr == 1e-4 and cfg.data_options.background == "random"
    assert isinstance(dataclasses.replace(cfg, strategy="default").build_strategy(),
                      DefaultStrategy)


def test_strategy_dependent_init_defaults():
    cfg = FitConfig(data=Path("d"))
    assert (cfg.init_opacity(), cfg.init_scale()) == (0.1, 1.0)
    mcmc = dataclasses.replace(cfg, strategy="mcmc")
    assert (mcmc.init_opacity(), mcmc.init_scale()) == (0.5, 0.1)


def test_plain_data_round_trip():
    cfg = dataclasses.replace(PRESETS["fast"], data=Path("/x/y"), out=Path("runs/z"))
    data = to_dict(cfg)
    assert data["data"] == "/x/y" and data["mcmc"]["cap_max"] == cfg.mcmc.cap_max
    assert from_dict(data) == cfg
    data["mcmc"]["no_such_field"] = 1
    with pytest.raises(ReconError, match="no_such_field"):
        from_dict(data)


@pytest.mark.parametrize("change, message", [
    ({"steps": 0}, "--steps"),
    ({"max_sh_degree": 4}, "--max-sh-degree"),
    ({"ssim_lambda": 1.5}, "--ssim-lambda"),
    ({"checkpoint_every": 0}, "--checkpoint-every"),
])
def test_validation_names_the_option(change, message):
    with pytest.raises(ReconError, match=message):
        dataclasses.replace(FitConfig(data=Path("d")), **change).validate()


def test_fit_reads_dataset_options_as_data_like_every_command(monkeypatch):
    """`recon fit` takes --data.* as `recon info` does; the older --data-options.* spelling
    still parses to the same config."""
    import recon.cli as cli
    import recon.train.trainer as trainer

    seen = []
    monkeypatch.setattr(trainer, "fit", lambda config: seen.append(config) or Path("run"))
    cli.main(["fit", "d", "--data.downscale", "2", "--data.max-size", "300"])
    cli.main(["fit", "d", "--data-options.downscale", "2", "--data-options.max-size", "300"])
    assert seen[0].data_options.downscale == 2 and seen[0].data_options.max_size == 300
    assert seen[0] == seen[1]
    info = tyro.cli(cli.Info, args=["d", "--data.downscale", "2", "--data.max-size", "300"])
    assert dataclasses.asdict(info.data) == dataclasses.asdict(seen[0].data_options)


def _bench(name: str):
    import importlib.util

    path = Path(__file__).resolve().parents[2] / "bench" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"bench_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_mesh_preset_is_what_the_mesh_benchmark_fits():
    """`--preset mesh` gives a user the Gaussian runs bench/meshes.py scores: the fast preset,
    --reg surface and the benchmark's FIT_ARGS."""
    benchmark = tyro.cli(FitConfig, default=PRESETS["fast"],
                         args=["d", "--reg", "surface", *_bench("meshes").FIT_ARGS.split()])
    preset = tyro.cli(FitConfig, default=PRESETS["mesh"], args=["d"])
    assert preset == benchmark


def test_the_unbounded_preset_is_what_the_photo_benchmark_fits():
    """`--preset unbounded` is bench/photos.py's variant of that name: the fast preset, a far
    layer and the coverage term."""
    benchmark = tyro.cli(FitConfig, default=PRESETS["fast"],
                         args=["d", *_bench("photos").VARIANTS["unbounded"]])
    preset = tyro.cli(FitConfig, default=PRESETS["unbounded"], args=["d"])
    assert preset == benchmark
    assert preset.coverage_weight > 0 and preset.init.far_points > 0
