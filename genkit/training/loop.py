"""One training loop for every method: the method gives the loss, the loop owns the rest
(optimizer, EMA of the evaluation weights, checkpoints, metrics, progress, evaluation)."""

from __future__ import annotations

import time
from contextlib import nullcontext
from typing import Callable

import torch
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from genkit.build import build
from genkit.config import Config
from genkit.errors import GenkitError
from genkit.evaluation import draw_samples, score
from genkit.training import checkpoint, rng
from genkit.training.distributed import Distributed
from genkit.training.ema import EMA
from genkit.training.run import RunFolder


class TrainingInterrupted(GenkitError):
    """Raised after a clean stop (Ctrl-C, SIGTERM): the last checkpoint holds everything."""


def make_optimizer(config: Config, parameters) -> torch.optim.Optimizer:
    kinds = {"radam": torch.optim.RAdam, "adam": torch.optim.Adam}
    return kinds[config.train.optimizer](parameters, lr=config.train.lr, betas=tuple(config.train.betas))


def training_progress(console=None, disable: bool = False) -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("loss {task.fields[loss]}"),
        TextColumn("{task.fields[speed]} it/s"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        disable=disable,
    )


class Trainer:
    def __init__(self, config: Config, run: RunFolder, registries, resume: bool = False):
        self.config = config
        self.run = run
        self.registries = registries
        self.dist = Distributed.from_environment()
        self.device = self.dist.device(config.train.device)
        self.batch_size = self.dist.local_batch_size(config.train.batch_size)
        torch.manual_seed(config.seed)  # the initial weights depend on the seed alone
        self.built = build(config, registries, self.device)
        if self.dist.enabled:  # same weights everywhere, then a random stream of each rank's own
            torch.manual_seed(config.seed + 1_000_003 * self.dist.rank)
        self.method = self.built.method
        self.dataset = self.built.dataset
        self.optimizer = make_optimizer(config, self.method.model.parameters())
        self.ema = EMA(self.method.model, config.train.ema_rate)
        self.step = 0
        self.elapsed = 0.0
        if resume:
            self.restore()
        elif self.dist.is_main:
            run.write_config(config)

    # ------------------------------------------------------------------ checkpoints

    def state(self) -> dict:
        return {
            "step": self.step,
            "elapsed_s": self.elapsed,
            "method": self.method.state_dict(),
            "ema": self.ema.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "rng": self.dist.gather(rng.get_all()),  # one entry per rank
            "config": self.config.to_dict(),
        }

    def save(self) -> None:
        state = self.state()  # collective: every rank takes part
        if self.dist.is_main:
            checkpoint.save_atomic(state, self.run.checkpoint_path)
        self.dist.barrier()

    def restore(self) -> None:
        state = checkpoint.load(self.run.checkpoint_path, map_location=self.device)
        try:
            self.method.load_state_dict(state["method"])
            self.ema.load_state_dict(state["ema"])
            self.optimizer.load_state_dict(state["optimizer"])
            self.step, self.elapsed = int(state["step"]), float(state["elapsed_s"])
            streams = state["rng"]
        except (KeyError, RuntimeError, ValueError) as error:
            raise GenkitError(f"checkpoint {self.run.checkpoint_path} does not match this run's config: {str(error).splitlines()[0]}") from None
        if len(streams) != self.dist.world_size:
            raise GenkitError(f"the checkpoint was written by {len(streams)} process(es); resume it with as many, not {self.dist.world_size}")
        own = streams[self.dist.rank]
        rng.set_all({"cpu": own["cpu"].cpu(), "cuda": [s.cpu() for s in own["cuda"]]})
        if self.dist.is_main:
            self.run.truncate_metrics(self.step)

    # ------------------------------------------------------------------ the loop

    def train_step(self) -> tuple[torch.Tensor, dict]:
        self.step += 1
        batch = self.dataset.sample(self.batch_size).to(self.device)
        self.method.model.train()
        loss, logs = self.method.loss(batch, self.step)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.dist.average_gradients(self.method.model.parameters())
        if self.config.train.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(self.method.model.parameters(), self.config.train.grad_clip)
        self.optimizer.step()
        self.method.after_step(self.step)
        self.ema.update(self.method.model)
        return loss.detach(), logs

    def train(self, until: int | None = None, progress: Progress | None = None, on_log: Callable | None = None) -> None:
        """Train to ``train.steps`` (or stop early at ``until``), checkpointing on the way.

        Pass a ``progress`` to draw this run's bar inside a caller's display (the bench does).
        """
        total = self.config.train.steps
        until = min(until or total, total)
        own_progress = progress is None
        progress = progress or training_progress(disable=not self.dist.is_main)
        with progress if own_progress else nullcontext():
            task = progress.add_task(self.config.method, total=total, completed=self.step, loss="-", speed="-")
            try:
                self._loop(until, progress, task, on_log)
            except KeyboardInterrupt:
                self.save()
                raise TrainingInterrupted(
                    f"interrupted at step {self.step}; continue with: genkit train --resume --out {self.run.path}"
                ) from None
            finally:
                if not own_progress:
                    progress.remove_task(task)
        self.save()

    def _loop(self, until: int, progress: Progress, task, on_log) -> None:
        cfg = self.config.train
        loss_sum, window_steps, window_start = torch.zeros((), device=self.device), 0, time.perf_counter()
        self._clock = time.perf_counter()
        while self.step < until:
            loss, logs = self.train_step()
            loss_sum, window_steps = loss_sum + loss, window_steps + 1
            if self.step % cfg.log_every == 0 or self.step == cfg.steps:
                mean_loss = self.dist.mean(loss_sum / window_steps).item()  # the only device sync of a window
                self._charge_training_time()
                speed = window_steps / max(time.perf_counter() - window_start, 1e-9)
                record = {**_plain(logs), "step": self.step, "loss": mean_loss, "elapsed_s": round(self.elapsed, 3)}
                progress.update(task, loss=f"{mean_loss:.4g}", speed=f"{speed:.0f}")
                if self.dist.is_main:
                    self.run.append_metrics(record)
                    if on_log:
                        on_log(record)
                loss_sum, window_steps, window_start = torch.zeros_like(loss_sum), 0, time.perf_counter()
            if cfg.eval_every and (self.step % cfg.eval_every == 0 or self.step == cfg.steps):
                self._charge_training_time()
                if self.dist.is_main:
                    self.run.append_metrics({"step": self.step, "eval": self.evaluate(cfg.eval_samples)})
                self.dist.barrier()
                self._clock = time.perf_counter()
            if self.step % cfg.checkpoint_every == 0:
                self._charge_training_time()
                self.save()
                self._clock = time.perf_counter()
            progress.update(task, completed=self.step)
        self._charge_training_time()

    def _charge_training_time(self) -> None:
        """Add the wall time since the last charge to ``elapsed`` (evaluation and saving excluded)."""
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        now = time.perf_counter()
        self.elapsed += now - self._clock
        self._clock = now

    # ------------------------------------------------------------------ evaluation

    def evaluate(self, num: int, steps: int | None = None) -> dict[str, float]:
        """Score the EMA model's samples against held-out data with the dataset's evaluators."""
        evaluators = {name: self.registries.evaluators.get(name)(None, self.built.ctx) for name in self.dataset.evaluators}
        samples = draw_samples(self.method, self.ema.model, num, steps, seed=0)
        return score(samples, self.dataset.reference(num, seed=1), evaluators)


def _plain(logs: dict) -> dict:
    return {key: value.item() if isinstance(value, torch.Tensor) else value for key, value in logs.items()}

