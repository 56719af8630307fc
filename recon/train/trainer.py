"""`recon fit`: optimise a scene model against posed images, in a resumable run directory.

The trainer knows the model only through ``recon.models.base.Model``. Per step: --batch-size
training images (epochs in a seeded random order; one by default), render the model's primitives
into their cameras with the active SH degree, loss (1 - λ)·L1 + λ·(1 - SSIM) averaged over them
(+ the model's own term and the ``--reg`` regularizer's, per image, + the MCMC opacity/scale
terms), the strategy's hooks around backward (while the regularizer lets it run), one Adam step
per parameter at the model's learning rates, then the regularizer's edits
(``recon.regularizers.base``). Under torchrun each rank takes its share of the batch
(``recon.train.distributed``).
Everything random comes from seeded generators whose states go into every checkpoint, and every
schedule is a function of the step, so a resumed run repeats an uninterrupted one bit for bit on
the CPU.

The run directory's layout is described in ``recon.run``, which also reopens it (``--resume``).
"""

from __future__ import annotations

import dataclasses
import json
import math
import random
import signal
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from recon.data import Dataset, detect_format, load_dataset
from recon.data.dataset import list_images
from recon.errors import DatasetError, ReconError, prepare_output_dir
from recon.models import build_model
from recon.models.base import create_optimizers
from recon.models.points import initial_points
from recon.regularizers import build_regularizer
from recon.regularizers.base import RunContext, StepContext
from recon.run import CONFIG_FILE, METRICS_FILE, SFM_DIR, TRIANGULATED_FILE, load_run
from recon.train import checkpoint as ckpt
from recon.train import distributed
from recon.train.appearance import Appearance
from recon.train.backends import finish_backward, renderer, training_device
from recon.train.config import FitConfig, to_dict
from recon.train.losses import photometric_loss
from recon.schedules import active_sh_degree


class NonFiniteError(ReconError):
    """The loss, a gradient or a parameter became NaN or infinite."""


class TrainingInterrupted(ReconError):
    """Ctrl-C or SIGTERM stopped training; a checkpoint was saved first."""


def fit(config: FitConfig) -> Path:
    """Fit (or with ``config.resume`` continue fitting) and return the run directory; under
    torchrun, as one rank of a data-parallel fit (``recon.train.distributed``)."""
    finished = False
    try:
        trainer = Trainer.open(config)
        trainer.train()
        finished = True
        return trainer.run_dir
    finally:
        distributed.leave(finished)


class Trainer:
    """The state of one fitting run and the loop that advances it.

    Use :meth:`open` (new or resumed run), then :meth:`train`. ``train(until=k)`` stops after
    step k, which lets benchmarks evaluate between chunks without touching the training state.
    """

    def __init__(self, config: FitConfig, run_dir: Path, dataset: Dataset, data_path: Path,
                 state: dict | None = None, ranks: distributed.Ranks | None = None):
        self.config = config
        self.ranks = ranks or distributed.Ranks()
        self.run_dir = Path(run_dir)
        self.dataset = dataset
        self.data_path = Path(data_path)
        self.device = training_device(config.backend)
        self.strategy = config.build_strategy()
        self.scene_scale = config.optim.scene_scale_factor * dataset.scene_radius()
        self.model = build_model(config, self.scene_scale)
        self.draw = renderer(config.backend, self.model)
        self.generator = torch.Generator()
        self._load_images()
        self.appearance = (Appearance(len(self.train_indices), config.optim.appearance_lr,
                                      self.device) if config.appearance else None)
        self.regularizer = build_regularizer(config.reg, config.reg_options(), RunContext(
            cameras=self.cameras, images=self.images, dataset=dataset,
            scene_scale=self.scene_scale, total_steps=config.steps,
            max_sh_degree=config.max_sh_degree, device=self.device, generator=self.generator))

        if state is None:
            _seed_everything(config.seed)
            self.generator.manual_seed(config.seed)
            self.step = 0
            self.elapsed = 0.0
            params = self.regularizer.initial_splats()
            self.params = params if params is not None else self._initial_params()
            self.optimizers = create_optimizers(self.params, self.model.learning_rates(0),
                                                eps=config.optim.eps,
                                                batch_size=config.batch_size)
            self.strategy_state = self.strategy.initialize_state(scene_scale=self.scene_scale)
        else:
            self._restore(state)
        self.strategy.check_sanity(self.params, self.optimizers)
        # Called after every step as listener(trainer, record), record = the metrics line when
        # one was logged this step, else None. They run in the training thread, so they may
        # read or save state, and a viewer pauses training by blocking in its listener.
        self.listeners: list = []
        self.last_checkpoint: Path | None = None
        found = ckpt.list_checkpoints(self.run_dir)
        if found:
            self.last_checkpoint = found[-1][1]

    # -- opening a run ------------------------------------------------------------------------

    @classmethod
    def open(cls, config: FitConfig) -> Trainer:
        """A new run in ``config.out`` (refusing a non-empty one without ``force``), or with
        ``config.resume`` the run there, restored from its newest checkpoint. Under torchrun
        every rank opens it; rank 0 alone creates the folder and runs SfM."""
        config.validate()
        device = training_device(config.backend)  # a missing GPU fails before anything is written
        ranks = distributed.setup(config.distributed, device.type == "cuda")
        run_dir = Path(config.out)
        if config.resume:
            run = load_run(run_dir)
            config = dataclasses.replace(run.config, resume=True, force=False,
                                         quiet=config.quiet or not ranks.writes)
            _check_shares(config.batch_size, ranks)
            distributed.on_rank_zero(ranks, lambda: _truncate_metrics(run_dir / METRICS_FILE,
                                                                      run.step))
            return cls(config, run_dir, run.dataset, run.data_path, run.checkpoint, ranks)

        _check_shares(config.batch_size, ranks)
        is_photo_folder = _is_photo_folder(Path(config.data))
        data_path = Path(config.data).resolve()
        resolved = _resolved(config)

        def create() -> Path:
            prepare_output_dir(run_dir, config.force)
            path = data_path
            if is_photo_folder:
                from recon.data.sfm import SfMConfig, process_images

                path = process_images(Path(config.data), run_dir / SFM_DIR,
                                      SfMConfig(seed=config.seed), force=True,
                                      quiet=config.quiet).resolve()
            _write_yaml(run_dir / CONFIG_FILE, to_dict(resolved))
            return path

        data_path = distributed.on_rank_zero(ranks, create)
        config = dataclasses.replace(resolved, quiet=config.quiet or not ranks.writes)
        dataset = load_dataset(data_path, config.data_options.to_data_config())
        return cls(config, run_dir, dataset, data_path, ranks=ranks)

    def _initial_params(self) -> torch.nn.ParameterDict:
        points, colors = initial_points(self.dataset, self.cameras, self.config.init,
                                        self.data_path, self.generator,
                                        images=(_MatchImages(self.images)
                                                if self.model.starts_from_points else ()),
                                        cache=(self.run_dir / SFM_DIR / TRIANGULATED_FILE
                                               if self.ranks.writes else None))
        return self.model.initialize(points, colors, self.generator, self.device, self.cameras)

    def _load_images(self) -> None:
        """Training images as one uint8 [N, C, H, W] tensor on the device (C = 3, or 4 with
        alpha); each step converts only its own image to float."""
        self.train_indices = self.dataset.indices("train")
        if not self.train_indices:
            raise DatasetError(f"The dataset at {self.data_path} has no training images (every "
                               "image is in the test split). Raise --data.test-every.")
        images = [self.dataset.image(i) for i in self.train_indices]
        sizes = {im.shape[:2] for im in images}
        if len(sizes) > 1:
            listed = ", ".join(f"{w}x{h}" for h, w in sorted(sizes))
            raise DatasetError(f"The training images of {self.data_path} have different sizes "
                               f"({listed}); fitting needs one size. Resize them, or pose them "
                               "as one camera.")
        if self.config.batch_size > len(images):
            raise DatasetError(f"--batch-size {self.config.batch_size} is more than the "
                               f"{len(images)} training images of {self.data_path}; lower it.")
        channels = 4 if any(im.shape[-1] in (2, 4) for im in images) else 3
        stacked = np.stack([_to_channels(im, channels) for im in images])
        self.images = torch.from_numpy(stacked).permute(0, 3, 1, 2).contiguous().to(self.device)
        self.cameras = [self.dataset.cameras[i] for i in self.train_indices]
        self.depths = None  # [N, H, W] for models that use the dataset's depth maps
        if self.model.use_depth and self.dataset.has_depth:
            depths = np.stack([self.dataset.depth(i) for i in self.train_indices])
            self.depths = torch.from_numpy(depths).to(self.device)
        if self.model.needs_masks_or_depth and channels != 4 and self.depths is None:
            raise DatasetError(
                f"--model {self.model.name} shapes its surface from the images' masks (alpha) "
                f"or depth maps, and the dataset at {self.data_path} has neither. Use images "
                "with alpha (NeRF-synthetic RGBA, DTU or nerfstudio masks) or depth maps "
                "(nerfstudio depth_file_path), or another --model.")
        background = self.config.data_options.background
        self.fixed_background = (None if background == "random" else
                                 torch.full((3,), 1.0 if background == "white" else 0.0,
                                            device=self.device))

    # -- one step -----------------------------------------------------------------------------

    @property
    def sh_degree(self) -> int:
        """The SH degree of the current step."""
        return active_sh_degree(self.step, self.config.sh_degree_interval,
                                self.config.max_sh_degree)

    @property
    def count(self) -> int:
        """The model's number of primitives now."""
        return self.model.count(self.params)

    def _image_index(self, step: int) -> int:
        """Epochs over the training images, each in a random order that is a function of
        (seed, epoch), so resuming needs no extra state."""
        n = len(self.train_indices)
        epoch, position = divmod(step, n)
        order = torch.randperm(n, generator=torch.Generator().manual_seed(
            self.config.seed * 1_000_003 + epoch))
        return int(order[position])

    def _target(self, index: int, background: Tensor) -> Tensor:
        image = self.images[index].to(torch.float32) / 255.0
        if image.shape[0] == 3:
            return image
        alpha = image[3:]
        return image[:3] * alpha + background[:, None, None] * (1.0 - alpha)

    def _alpha(self, index: int) -> Tensor | None:
        """[H, W] the alpha of training image ``index`` (None when the images have none)."""
        image = self.images[index]
        return image[3].to(torch.float32) / 255.0 if image.shape[0] == 4 else None

    def _batch_views(self, step: int) -> list[int]:
        """The training images of ``step``: the next --batch-size positions of the epochs."""
        size = self.config.batch_size
        return [self._image_index(step * size + j) for j in range(size)]

    def train_step(self) -> dict:
        """One optimisation step; returns the step's loss, render and target (detached; with a
        batch, [B, C, H, W] images).

        The stages are labelled for ``torch.profiler`` (``bench/fit.py --profile`` reads them);
        the labels cost about a microsecond each when no profiler runs.
        """
        cfg, step = self.config, self.step
        with _stage("data"):
            views = self._batch_views(step)
            if self.ranks.active:  # this rank's share: consecutive, so ranks gather in order
                share = len(views) // self.ranks.world
                views = views[self.ranks.rank * share:(self.ranks.rank + 1) * share]
            batched = len(views) > 1
            background = (self.fixed_background if self.fixed_background is not None
                          else torch.rand(3, generator=self.generator).to(self.device))
            targets = [self._target(i, background) for i in views]
            target = torch.stack(targets) if batched else targets[0]
            sh_degree = self.sh_degree
            lrs = self.model.learning_rates(step)
            lr_scale = math.sqrt(cfg.batch_size) if cfg.batch_size > 1 else 1.0  # gsplat's rule
            for name, optimizer in self.optimizers.items():
                for group in optimizer.param_groups:
                    group["lr"] = lrs[name] * lr_scale
        reg, strategy_active = self.regularizer, self.regularizer.strategy_active(step)
        model = self.model
        with _stage("render"):
            drawn = reg.renderable(self.params)
            normals = model.needs_normals(step)
            cameras = [self.cameras[i] for i in views] if batched else self.cameras[views[0]]
            result = self.draw(drawn, cameras, model.colors(self.params, sh_degree),
                               sh_degree, background, getattr(self.strategy, "absgrad", False),
                               depth=reg.needs_depth(step) or normals, normals=normals)
        with _stage("loss"):
            image = result.features
            seen = image
            if self.appearance is not None:
                seen = (torch.stack([self.appearance(image[j], i) for j, i in enumerate(views)])
                        if batched else self.appearance(image, views[0]))
            loss = photometric_loss(seen, target, cfg.ssim_lambda)
            own = self._per_view(result, views, lambda one, i, j: model.loss(
                self.params, step, one, self.cameras[i], alpha=self._alpha(i),
                depth=None if self.depths is None else self.depths[i]))
            if own is not None:
                loss = loss + own
            if cfg.coverage_weight > 0 and self.images.shape[1] == 3:  # photos: no alpha
                loss = loss + cfg.coverage_weight * (1.0 - result.alpha).mean()
            shared = None  # a term of the step, not of its views: MCMC's L1s
            if strategy_active and hasattr(self.strategy, "regularization"):
                shared = self.strategy.regularization(self.params, model)
                if not self.ranks.active:
                    loss = loss + shared
            extra = self._per_view(result, views, lambda one, i, j: reg.loss(StepContext(
                step=step, splats=drawn, result=one, camera=self.cameras[i], view=i,
                target=targets[j])))
            if extra is not None:
                loss = loss + extra
            if not torch.isfinite(loss):
                raise self._non_finite(f"the loss is {loss.item()}")
        if strategy_active:
            with _stage("strategy"):
                self.strategy.step_pre_backward(self.params, self.optimizers,
                                                self.strategy_state, step, result)
        with _stage("backward"):
            loss.backward()
            finish_backward(result)
        with _stage("optimizer"):
            if self.ranks.active:
                distributed.average_gradients(self._trained_tensors(), self.ranks.world)
                distributed.average_in_place(model.backward_signals(), self.ranks.world)
                if shared is not None:  # once, after the mean, as one process adds it once
                    shared.backward()
                    loss = loss + shared.detach()
            # NaN and inf survive a sum; one sum per tensor is ~10x cheaper than isfinite().
            grads = [t.grad for t in self._trained_tensors()]
            if not bool(torch.stack([g.sum() for g in grads]).sum().isfinite()):
                bad = ", ".join(k for k, p in self.params.items()
                                if p.grad is not None and not p.grad.isfinite().all())
                raise self._non_finite(f"the gradient of {bad or 'the model (its sum overflows)'} "
                                       "is not finite")
            for optimizer in self.optimizers.values():
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
            reg.optimizer_step()
            if self.appearance is not None:
                self.appearance.step()
        if strategy_active:
            with _stage("strategy"):
                seen_by_all = (distributed.batch_statistics(
                    result, len(views) / cfg.batch_size, self.ranks.world)
                    if self.ranks.active else result)
                self.strategy.step_post_backward(self.params, self.optimizers,
                                                 self.strategy_state, step, seen_by_all, model,
                                                 lr=lrs[model.position] * lr_scale)
        with _stage("regularizer"):
            reg.after_step(self.params, self.optimizers, self.strategy_state, step)
        model.after_step(self.params, self.optimizers, step)
        self.step += 1
        return {"loss": loss.detach(), "image": image.detach(), "target": target}

    def _trained_tensors(self) -> list[Tensor]:
        """Every tensor Adam updates from this step's gradient (model, regularizer, appearance),
        in the same order on every rank; those without a gradient this step are left out."""
        tensors = [*self.params.values(), *self.regularizer.parameters()]
        if self.appearance is not None:
            tensors.append(self.appearance.affine)
        return [t for t in tensors if t.grad is not None]

    @staticmethod
    def _per_view(result, views: list[int], term) -> Tensor | None:
        """``term(result of one view, image index, position in the batch)`` (None: no term),
        averaged over the batch's views, as the photometric loss is."""
        if len(views) == 1:
            return term(result, views[0], 0)
        from recon.render import camera_result

        values = [term(camera_result(result, j), i, j) for j, i in enumerate(views)]
        values = [v for v in values if v is not None]
        return torch.stack(values).mean() if values else None

    def _non_finite(self, what: str) -> NonFiniteError:
        where = (f"The last good checkpoint is {self.last_checkpoint}; continue from it with "
                 "--resume" if self.last_checkpoint is not None else
                 "No checkpoint was saved yet; start again")
        return NonFiniteError(
            f"Step {self.step + 1}: {what}, so training stopped without updating the model. "
            f"{where}, and lower the learning rates (e.g. --optim.means-lr, "
            "--optim.opacities-lr) if it happens again.")

    # -- the loop -----------------------------------------------------------------------------

    def train(self, until: int | None = None) -> None:
        """Run steps up to ``until`` (default: the config's last step), logging, checkpointing
        every ``checkpoint_every`` steps and at the end, and stopping cleanly on Ctrl-C/SIGTERM."""
        cfg = self.config
        last = cfg.steps if until is None else min(until, cfg.steps)
        if self.step >= last:
            return
        window_start, window_steps = self.elapsed, 0
        progress_bar = _Progress(cfg.quiet, self.step, cfg.steps, self.model.noun)
        writes = self.ranks.writes
        with _StopRequest() as stop, progress_bar as progress, \
                (open(self.run_dir / METRICS_FILE, "a") if writes else _NoFile()) as metrics:
            while self.step < last:
                start = time.perf_counter()
                out = self.train_step()
                self.elapsed += time.perf_counter() - start
                window_steps += 1
                progress.advance()
                record = None
                if self.step % cfg.log_every == 0 or self.step == cfg.steps:
                    record = self._metrics(out, (self.elapsed - window_start) / window_steps)
                    metrics.write(json.dumps(record) + "\n")
                    metrics.flush()
                    progress.show(record)
                    window_start, window_steps = self.elapsed, 0
                for listener in self.listeners:
                    listener(self, record)
                stopping = stop.signal_name is not None
                if self.ranks.active:  # a signal to any rank stops them all after this step
                    stopping = distributed.any_rank(stopping, self.device)
                if stopping:
                    path = self.save_checkpoint()
                    by = stop.signal_name or "a signal to another rank"
                    raise TrainingInterrupted(
                        f"Training stopped by {by} after step {self.step} of {cfg.steps}; "
                        f"checkpoint saved to {path or 'the run by rank 0'}. Continue with "
                        f"`recon fit {cfg.data} --out {self.run_dir} --resume`.")
                if self.step % cfg.checkpoint_every == 0 or self.step == cfg.steps:
                    self.save_checkpoint()

    def _metrics(self, out: dict, sec_per_step: float) -> dict:
        loss, mse = out["loss"], (out["image"] - out["target"]).square().mean()
        if self.ranks.active:  # the whole batch's, as one process would log it
            loss = distributed.mean_over_ranks(loss, self.ranks.world)
            mse = distributed.mean_over_ranks(mse, self.ranks.world)
        return {"step": self.step, "loss": float(loss),
                "psnr": float(-10.0 * torch.log10(mse)), "num_primitives": self.count,
                "sec_per_step": sec_per_step, "elapsed": self.elapsed}

    # -- checkpoints --------------------------------------------------------------------------

    def save_checkpoint(self) -> Path | None:
        """Write the full state (refusing non-finite parameters, so a good checkpoint is never
        replaced by a broken one); under torchrun only rank 0 writes (the others return None:
        their state is the same)."""
        bad = [k for k, p in self.params.items() if not p.isfinite().all()]
        if bad:
            raise self._non_finite(f"the parameters {', '.join(bad)} are not finite")
        if not self.ranks.writes:
            return None
        payload = {
            "step": self.step,
            "model": self.model.name,
            "params": {k: p.detach() for k, p in self.params.items()},
            "optimizers": {k: o.state_dict() for k, o in self.optimizers.items()},
            "strategy_state": self.strategy_state,
            "regularizer": self.regularizer.state_dict(),
            "appearance": None if self.appearance is None else self.appearance.state(),
            "sh_degree": active_sh_degree(max(self.step - 1, 0), self.config.sh_degree_interval,
                                          self.config.max_sh_degree),  # of the last step taken
            "max_sh_degree": self.config.max_sh_degree,
            "rng": ckpt.rng_state(self.generator),
            "config": to_dict(self.config),
            "normalization": self.dataset.normalization.to_dict(),
            "data_path": str(self.data_path),
            # The data options as given (the loader may consume a downscale into images_N).
            "data_config": dataclasses.asdict(self.config.data_options.to_data_config()),
            "elapsed": self.elapsed,
        }
        self.last_checkpoint = ckpt.save_checkpoint(self.run_dir, payload,
                                                    keep=self.config.keep_checkpoints)
        return self.last_checkpoint

    def _restore(self, state: dict) -> None:
        self.step = int(state["step"])
        self.elapsed = float(state.get("elapsed", 0.0))
        saved = state["params"] if "params" in state else state["splats"]  # before models
        self.params = torch.nn.ParameterDict(
            {k: torch.nn.Parameter(v.to(self.device)) for k, v in saved.items()})
        self.optimizers = create_optimizers(self.params, self.model.learning_rates(self.step),
                                            eps=self.config.optim.eps,
                                            batch_size=self.config.batch_size)
        for name, optimizer in self.optimizers.items():
            optimizer.load_state_dict(state["optimizers"][name])
        self.strategy_state = _to_device(state["strategy_state"], self.device)
        self.regularizer.load_state_dict(_to_device(state.get("regularizer", {}), self.device))
        if self.appearance is not None and state.get("appearance") is not None:
            self.appearance.load(state["appearance"])
        ckpt.restore_rng_state(state["rng"], self.generator)


# -- helpers ----------------------------------------------------------------------------------


def _check_shares(batch_size: int, ranks: distributed.Ranks) -> None:
    if ranks.active and batch_size % ranks.world:
        raise ReconError(f"--batch-size {batch_size} does not split over {ranks.world} ranks; "
                         f"use a multiple of {ranks.world} (each rank renders B/N images).")


class _NoFile:
    """Stands in for metrics.jsonl on ranks that do not write."""

    def __enter__(self) -> _NoFile:
        return self

    def write(self, text: str) -> None:
        pass

    def flush(self) -> None:
        pass

    def __exit__(self, *exc) -> None:
        pass


def _is_photo_folder(path: Path) -> bool:
    """False for a dataset any loader reads; True for a plain folder of images; else the
    loaders' error (which names the formats and `recon process`)."""
    try:
        detect_format(path)
        return False
    except DatasetError:
        if not path.is_dir():
            raise
        try:
            list_images(path)
        except DatasetError:
            pass
        else:
            return True
        raise


def _resolved(config: FitConfig) -> FitConfig:
    """The config as it will run: absolute data path, strategy-dependent init values filled in."""
    init = dataclasses.replace(config.init, scale=config.init_scale(),
                               opacity=config.init_opacity())
    return dataclasses.replace(config, data=Path(config.data).resolve(), init=init)


def _write_yaml(path: Path, data: dict) -> None:
    import yaml

    path.write_text(yaml.safe_dump(data, sort_keys=False))


def _truncate_metrics(path: Path, step: int) -> None:
    """Drop log lines past the checkpoint being resumed (written before a hard kill), so the
    resumed run's lines continue the file without duplicate steps."""
    if not path.exists():
        return
    lines = [ln for ln in path.read_text().splitlines() if ln.strip()]
    kept = [ln for ln in lines if json.loads(ln).get("step", 0) <= step]
    path.write_text("".join(ln + "\n" for ln in kept))


def _stage(name: str):
    return torch.profiler.record_function(f"train.{name}")


def _seed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    random.seed(seed)


class _MatchImages(Sequence):
    """The training images as uint8 [H, W, 3] for feature matching (alpha over grey, so an
    object's outline shows on either background), converted one at a time when asked for."""

    def __init__(self, images: Tensor) -> None:
        self.images = images

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> np.ndarray:
        image = self.images[i].permute(1, 2, 0).cpu().numpy()
        if image.shape[-1] == 3:
            return image
        alpha = image[..., 3:].astype(np.float32) / 255.0
        return np.round(image[..., :3] * alpha + 128.0 * (1.0 - alpha)).astype(np.uint8)


def _to_channels(image: np.ndarray, channels: int) -> np.ndarray:
    """uint8 [H, W, 1|2|3|4] -> [H, W, channels] (grey to RGB; opaque alpha added if missing)."""
    if image.shape[-1] in (1, 2):
        image = np.concatenate([np.repeat(image[..., :1], 3, -1), image[..., 1:]], -1)
    if channels == 4 and image.shape[-1] == 3:
        image = np.concatenate([image, np.full_like(image[..., :1], 255)], -1)
    return np.ascontiguousarray(image)


def _to_device(value, device: torch.device):
    if isinstance(value, Tensor):
        return value.to(device)
    if isinstance(value, dict):
        return {k: _to_device(v, device) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_to_device(v, device) for v in value)
    return value


class _StopRequest:
    """Turns the first Ctrl-C or SIGTERM into a flag the loop checks after each step (a second
    Ctrl-C stops at once). Signal handlers exist only in the main thread; elsewhere it is inert."""

    def __init__(self) -> None:
        self.signal_name: str | None = None
        self._previous: dict = {}

    def __enter__(self) -> _StopRequest:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame) -> None:
        if self.signal_name is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.signal_name = signal.Signals(signum).name

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


class _Progress:
    """A rich progress bar over the steps (nothing when quiet)."""

    def __init__(self, quiet: bool, done: int, total: int, noun: str) -> None:
        self._bar = None
        self.noun = noun
        if quiet:
            return
        from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                                   TimeElapsedColumn, TimeRemainingColumn)

        self._bar = Progress(TextColumn("fit"), BarColumn(), MofNCompleteColumn(),
                             TimeElapsedColumn(), TimeRemainingColumn(),
                             TextColumn("{task.fields[status]}"))
        self._task = self._bar.add_task("fit", total=total, completed=done, status="")

    def __enter__(self) -> _Progress:
        if self._bar is not None:
            self._bar.start()
        return self

    def advance(self) -> None:
        if self._bar is not None:
            self._bar.advance(self._task)

    def show(self, record: dict) -> None:
        if self._bar is not None:
            status = (f"loss {record['loss']:.4f}  psnr {record['psnr']:.2f}  "
                      f"{record['num_primitives']} {self.noun}  {record['sec_per_step']:.3f} s/step")
            self._bar.update(self._task, status=status)

    def __exit__(self, *exc) -> None:
        if self._bar is not None:
            self._bar.stop()


__all__ = ["NonFiniteError", "Trainer", "TrainingInterrupted", "fit"]
