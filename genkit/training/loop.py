"""One training loop for every method: the method gives the loss, the loop owns the rest
(optimizer, EMA of the evaluation weights, checkpoints, metrics, progress, evaluation)."""

from __future__ import annotations

import contextlib
import dataclasses
import math
import signal
import threading
import time
import warnings
from contextlib import nullcontext
from pathlib import Path
from typing import Callable

import torch
from rich.progress import Progress

from genkit.build import DataFacts, build
from genkit.config import Config, check_same_function
from genkit.errors import GenkitError, LoggerWarning, TrainingDiverged, TrainingInterrupted  # noqa: F401  (re-exported)
from genkit.evaluation import build_evaluators, draw_samples, reference_data, score
from genkit.pictures import save_samples_picture
from genkit.nn import rng
from genkit.training import checkpoint, lock
from genkit.training.distributed import Distributed
from genkit.nn.ema import EMA
from genkit.training.progress import speed_text, training_progress
from genkit.training.speed import TrainingSpeed
from genkit.training.run import RunFolder


def make_optimizer(config: Config, registries, parameters, ctx=None) -> torch.optim.Optimizer:
    """The optimizer ``train.optimizer`` chooses, at the peak rate ``train.lr``."""
    return registries.optimizers.build(config.train.optimizer, ctx)(parameters, config.train.lr)


class Trainer:
    """Trains one run in its folder, which it holds locked (rank 0) until ``train`` returns or
    ``close`` is called, so no second process can write into it meanwhile."""

    def __init__(self, config: Config, run: RunFolder, registries, resume: bool = False):
        self.config = config
        self.run = run
        self.registries = registries
        self.dist = Distributed.from_environment()
        self._locked = self.dist.is_main
        if self.dist.is_main:
            lock.acquire(run.path)
        try:
            self._start(resume)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        """Give up the run folder's lock (train() does this when it returns) and stop data workers."""
        if hasattr(getattr(self, "batches", None), "close"):
            self.batches.close()
        if self._locked:
            lock.release(self.run.path)
            self._locked = False
        loggers, self.loggers = getattr(self, "loggers", []), []
        for logger in loggers:
            logger.close()
        if getattr(getattr(self, "speed", None), "ddp", None) is not None:
            # no DistributedDataParallel may outlive training: one still alive when the process
            # group is destroyed can abort the process as it exits
            self.method.use_student(None)
            self.student, self.speed.ddp = self.method.model, None

    def _start(self, resume: bool) -> None:
        config, run, registries = self.config, self.run, self.registries
        if self.dist.is_main:
            if not resume:  # checked again under the lock: another process may have just finished
                run.check_new()
            run.check_writable(snapshots=bool(config.train.keep_snapshots))  # not at the first save, after hours
            if not resume:
                run.mark()
            run.remove_partial_checkpoints()
        self.device = self.dist.device(config.train.device)
        self.batch_size = self.dist.local_batch_size(config.train.batch_size)
        torch.manual_seed(config.seed)  # the initial weights depend on the seed alone
        self.built = build(config, registries, self.device)
        self.built.method.prepare_training()  # loss, teacher...: before any other random draw
        if self.dist.enabled:  # same weights everywhere, then a random stream of each rank's own
            torch.manual_seed(config.seed + 1_000_003 * self.dist.rank)
        self.method = self.built.method
        self.dataset = self.built.dataset
        self.speed = TrainingSpeed(config.train, self.device)
        self.student = self.speed.prepare(self.method.model, self.dist)
        self.method.use_student(self.student)
        # the per-sample draws of the global batch: one stream every rank shares (see Method.draw)
        self.draw_generator = torch.Generator(self.device).manual_seed(config.seed + DRAW_STREAM)
        self.batches = self.dataset.stream(self.batch_size, config.seed, self.dist.rank, self.dist.world_size)
        # evaluators that cannot score this data fail here, before training; statistics are cached
        self.evaluators = build_evaluators(self.built) if config.train.eval_every and self.dist.is_main else {}
        self.loggers = self._build_loggers() if self.dist.is_main else []  # a missing package fails here
        self.optimizer = make_optimizer(config, registries, self.method.model.parameters(), self.built.ctx)
        self.lr_schedule = registries.lr_schedules.build(config.train.lr_schedule, self.built.ctx)
        rates = config.train.evaluation_ema_rates
        self.ema = EMA(self.method.model, rates[0])  # the default evaluation EMA: grids, evaluation, sampling
        self.other_emas = {checkpoint.ema_key(rate): EMA(self.method.model, rate) for rate in rates[1:]}  # train.ema_rates
        self.step = 0  # iterations done; the next one is k = step
        self.elapsed = 0.0
        self.window = LogWindow(self.device)
        self.saved_step = 0  # the step of the checkpoint on disk (0: none yet)
        if resume:
            self.restore()
            if self.dist.is_main:  # --resume --steps N extends the run: its config says so
                run.write_config(config)
        elif self.dist.is_main:
            run.write_config(config)
            run.metrics_path.unlink(missing_ok=True)  # a log left by a run that never checkpointed

    def _build_loggers(self) -> list:
        """The loggers of ``train.loggers``, each told the run folder it logs for."""
        ctx = dataclasses.replace(self.built.ctx, run_path=self.run.path)
        return [self.registries.loggers.build(component, ctx) for component in self.config.train.loggers]

    def _write_record(self, record: dict) -> None:
        """A line of metrics.jsonl, and the same record to every logger (rank 0 only)."""
        self.run.append_metrics(record)
        for logger in list(self.loggers):
            try:
                logger.log(record)
            except Exception as error:  # a logger's fault must not cost the run: metrics.jsonl has it all
                self.loggers.remove(logger)
                with contextlib.suppress(Exception):
                    logger.close()
                warnings.warn(f"logger {type(logger).__name__} disabled: its log() failed ({type(error).__name__}: {error}); metrics.jsonl keeps every record", LoggerWarning, stacklevel=2)

    # ------------------------------------------------------------------ checkpoints

    def state(self) -> dict:
        return {
            "step": self.step,
            "elapsed_s": self.elapsed,
            "method": self.method.state_dict(),
            "ema": self.ema.state_dict(),
            **({"emas": {key: ema.state_dict() for key, ema in self.other_emas.items()}} if self.other_emas else {}),
            "optimizer": self.optimizer.state_dict(),
            "grad_scaler": self.speed.scaler_state(),
            "draws": self.draw_generator.get_state(),  # the same on every rank
            "rng": self.dist.gather(rng.get_all(self.device)),  # one entry per rank
            "data": self.dist.gather(self.batches.state_dict()),  # where each rank's batches stand
            "log_window": self.window.state_dict(),
            "config": self.config.to_dict(),
            # the data's shape, range and classes: an export stores them, to sample without the data
            "data_facts": DataFacts(self.built.ctx.data_shape, self.built.ctx.clamp, self.built.ctx.label_dim).to_dict(),
        }

    def save(self) -> None:
        self.check_finite()  # never overwrite a good checkpoint with diverged weights
        self.check_finite_weights()  # a finite loss can still be followed by a step to inf
        state = self.state()  # collective: every rank takes part
        if self.dist.is_main:
            checkpoint.save_atomic(state, self.run.checkpoint_path)
            if self.config.train.keep_snapshots:
                self.run.snapshot(self.step, self.config.train.keep_snapshots)
        self.dist.barrier()
        self.saved_step = self.step

    def check_finite(self, window_loss: float | None = None) -> None:
        """Stop with the last good checkpoint kept once any loss since the last check was NaN or
        infinite. The log window's sum holds every loss since the last log line, where the
        previous check ran, so one non-finite loss makes it non-finite (``window_loss``: its
        mean, when the caller has it already); steps need no device sync."""
        if window_loss is None:
            window_loss = self.dist.mean(self.window.loss_sum).item()
        if math.isfinite(window_loss):
            return
        raise TrainingDiverged(f"training diverged: a loss was NaN or infinite by step {self.step}; {self._kept()}")

    def check_finite_weights(self) -> None:
        """Stop, as for a non-finite loss, when the weights or their EMA about to be saved are
        NaN or infinite: such a checkpoint would be reported as good and sample nothing."""
        averages = [self.ema, *self.other_emas.values()]
        if checkpoint.all_finite([*self.method.model.state_dict().values(), *(t for e in averages for t in e.model.state_dict().values())]):
            return
        raise TrainingDiverged(f"training diverged: the weights became NaN or infinite by step {self.step}; {self._kept()}")

    def _kept(self) -> str:
        kept = f"the last good checkpoint (step {self.saved_step}) is kept" if self.saved_step else "no checkpoint was written"
        return f"{kept} in {self.run.path}. Lower train.lr or set train.grad_clip"

    def restore(self) -> None:
        state = checkpoint.load(self.run.checkpoint_path, map_location=self.device)
        check_same_function(state.get("config"), self.config, f"checkpoint {self.run.checkpoint_path}", resuming=True)
        context = f"checkpoint {self.run.checkpoint_path} does not match this run's config"
        parts = {"method": self.method, "ema": self.ema, "optimizer": self.optimizer, "log_window": self.window}
        checkpoint.restore(state, parts, context)
        if self.other_emas:
            checkpoint.restore(state.get("emas", {}), self.other_emas, context)
        try:
            self.speed.load_scaler_state(state.get("grad_scaler"))
            self.draw_generator.set_state(state["draws"].cpu())
            self.step, self.elapsed = int(state["step"]), float(state["elapsed_s"])
            streams = state["rng"]
        except (KeyError, RuntimeError, ValueError) as error:
            raise GenkitError(f"{context}: {checkpoint.first_line(error)}") from None
        if len(streams) != self.dist.world_size:
            raise GenkitError(f"the checkpoint was written by {len(streams)} process(es); resume it with as many, not {self.dist.world_size}")
        if self.step > self.config.train.steps:
            raise GenkitError(f"{self.run.path} has done {self.step} steps, more than train.steps = {self.config.train.steps}")
        rng.set_all(streams[self.dist.rank], self.device)
        self.batches.load_state_dict(state.get("data", [{}] * self.dist.world_size)[self.dist.rank])
        self.saved_step = self.step
        if self.dist.is_main:
            self.run.truncate_metrics(self.step)

    # ------------------------------------------------------------------ the loop

    def train_step(self) -> dict:
        """One iteration k = self.step (0-based, as in the papers' algorithms); step counts it after."""
        batch, labels = self.batches.next()
        batch = self.speed.batch_to_device(batch)
        labels = labels.to(self.device, non_blocking=True) if labels is not None else None
        if not self.method.model.training:  # sampling for a grid or evaluation may have switched it
            self.method.model.train()
        self.optimizer.zero_grad(set_to_none=True)
        loss, logs = self._accumulate_gradients(batch, labels, self._draws(len(batch)))
        self._set_learning_rate()
        self.speed.unscale(self.optimizer)
        if self.config.train.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(self.method.model.parameters(), self.config.train.grad_clip)
        self.speed.step(self.optimizer)
        self.method.after_step(self.step)
        self.ema.update(self.method.model)
        for ema in self.other_emas.values():
            ema.update(self.method.model)
        self.step += 1
        self.window.add(loss)
        return logs

    def _draws(self, local_size: int) -> dict[str, torch.Tensor]:
        """This rank's rows of the method's draws for the global batch."""
        draws = self.method.draw(local_size * self.dist.world_size, self.step, self.draw_generator, self.device)
        rows = slice(self.dist.rank * local_size, (self.dist.rank + 1) * local_size)
        return {key: value[rows] for key, value in draws.items()}

    def _accumulate_gradients(self, batch, labels, draws) -> tuple[torch.Tensor, dict]:
        """Backward through the batch in chunks of train.microbatch, each loss weighted by its
        share of the batch, so the gradient is the whole batch's mean; DDP averages across
        ranks on the last chunk only."""
        size = len(batch)
        chunk = self.config.train.microbatch or size
        if chunk >= size:  # the usual case: the batch in one pass, nothing to weigh
            with self.speed.autocast():
                loss, logs = self.method.loss(batch, self.step, labels, draws or None)
            self.speed.backward(loss)
            return loss.detach(), logs
        starts = range(0, size, chunk)
        total, logs = torch.zeros((), device=self.device), {}
        for start in starts:
            rows = slice(start, start + chunk)
            last = start == starts[-1]
            share = len(batch[rows]) / size
            with self.speed.accumulating(last):  # DDP decides at the forward pass whether to reduce
                with self.speed.autocast():
                    loss, chunk_logs = self.method.loss(
                        batch[rows], self.step, None if labels is None else labels[rows],
                        {key: value[rows] for key, value in draws.items()} or None,
                    )
                self.speed.backward(loss.float() * share)
            total += loss.detach().float() * share
            _accumulate_logs(logs, chunk_logs, share)
        return total, logs

    def _set_learning_rate(self) -> None:
        """train.lr times the schedule's factor at iteration k: a function of k alone, so resume is exact."""
        lr = self.config.train.lr * self.lr_schedule.factor(self.step)
        for group in self.optimizer.param_groups:
            group["lr"] = lr

    def train(self, until: int | None = None, progress: Progress | None = None, on_log: Callable | None = None) -> None:
        """Train to ``train.steps`` (or stop early at ``until``), checkpointing on the way.

        Ctrl-C or SIGTERM stop the run after the step in progress and save it, so the checkpoint
        is always a state between two steps and resuming continues exactly. A second Ctrl-C
        stops at once, leaving the previous checkpoint as it was. Pass a ``progress`` to draw
        this run's bar inside a caller's display (the bench does). When stdout is not a
        terminal, a plain line per log interval replaces the bar (genkit.training.progress).
        """
        if self.dist.is_main and not self._locked:
            lock.acquire(self.run.path)
            self._locked = True
        try:
            self._train(until, progress, on_log)
        except KeyboardInterrupt:
            raise TrainingInterrupted(
                f"stopped at once; the last checkpoint (step {self.saved_step}) is intact", self.run.path
            ) from None
        finally:
            self.close()

    def _train(self, until: int | None, progress: Progress | None, on_log: Callable | None) -> None:
        total = self.config.train.steps
        until = min(until or total, total)
        own_progress = progress is None
        progress = progress or training_progress(disable=not self.dist.is_main)
        with progress if own_progress else nullcontext(), StopRequest() as stop:
            task = progress.add_task(self.config.method, total=total, completed=self.step, loss="-", speed="-", rate=None)
            try:
                self._loop(until, progress, task, on_log, stop)
            finally:
                if not own_progress:
                    progress.remove_task(task)
            self.save()  # inside StopRequest: a Ctrl-C now waits for the save to finish
        if stop.requested:
            raise TrainingInterrupted(f"interrupted at step {self.step}; the checkpoint holds everything", self.run.path)

    def _loop(self, until: int, progress: Progress, task, on_log, stop: "StopRequest") -> None:
        cfg = self.config.train
        self._clock = time.perf_counter()
        while self.step < until and not stop.requested:
            logs = self.train_step()
            if self.step % cfg.log_every == 0 or self.step == cfg.steps:
                mean_loss = self.dist.mean(self.window.mean()).item()  # the only device sync of a window
                self.check_finite(mean_loss)
                self._charge_training_time()
                speed = self.window.speed()
                record = {**_plain(logs), "step": self.step, "loss": mean_loss, "elapsed_s": round(self.elapsed, 3)}
                # on a terminal the bar shows these; elsewhere (Slurm, a log file) they are one line
                progress.update(task, completed=self.step, loss=f"{mean_loss:.4g}", speed=speed_text(speed), rate=speed, elapsed_s=self.elapsed)
                if self.dist.is_main:
                    self._write_record(record)
                    if on_log:
                        on_log(record)
                self.window.reset()
            if cfg.eval_every and (self.step % cfg.eval_every == 0 or self.step == cfg.steps):
                self._charge_training_time()
                scores = self.evaluate(cfg.eval_samples)  # every rank samples its share
                if self.dist.is_main:
                    self._write_record({"step": self.step, "eval": scores})
                self.dist.barrier()
                self._clock = time.perf_counter()
            if cfg.grid_every and (self.step % cfg.grid_every == 0 or self.step == cfg.steps):
                self._charge_training_time()
                if self.dist.is_main:
                    self.save_grid()
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

    def save_grid(self) -> Path:
        """A picture of the EMA model's samples from fixed seeds, so runs show their progress."""
        sample = self.config.sample
        samples = draw_samples(self.method, self.ema.model, sample.grid_size, None, seed=0, batch_size=sample.batch_size)
        path = self.run.path / "grids" / f"step-{self.step:07d}.png"
        return save_samples_picture(samples, path, f"{self.config.method}, step {self.step}")

    def evaluate(self, num: int, steps: int | None = None) -> dict[str, float]:
        """Score the EMA model's samples against held-out data with the run's evaluators. Under
        torchrun every rank must call it: each draws a share of the samples and rank 0 scores
        them all (the other ranks get {})."""
        samples = draw_samples(
            self.method, self.ema.model, num, steps, seed=0, batch_size=self.config.sample.batch_size, dist=self.dist
        )
        if not self.dist.is_main:
            return {}
        evaluators = self.evaluators or build_evaluators(self.built)
        return score(samples, reference_data(self.dataset, num), evaluators)


DRAW_STREAM = 2**32  # offsets the draw generator's seed from every weight seed (seeds < 2**32)


def _accumulate_logs(logs: dict, chunk_logs: dict, share: float) -> None:
    """Tensor logs become the batch's weighted mean over chunks; other values the last chunk's."""
    for key, value in chunk_logs.items():
        if isinstance(value, torch.Tensor):
            logs[key] = logs.get(key, 0) + value.detach().float() * share
        else:
            logs[key] = value


class LogWindow:
    """Losses since the last log line; checkpointed, so a resumed run logs the same averages."""

    def __init__(self, device: torch.device):
        self.loss_sum = torch.zeros((), device=device)
        self.steps = 0
        self.started = time.perf_counter()

    def add(self, loss: torch.Tensor) -> None:
        self.loss_sum += loss
        self.steps += 1

    def mean(self) -> torch.Tensor:
        return self.loss_sum / max(self.steps, 1)

    def speed(self) -> float:
        return self.steps / max(time.perf_counter() - self.started, 1e-9)

    def reset(self) -> None:
        self.loss_sum.zero_()
        self.steps, self.started = 0, time.perf_counter()

    def state_dict(self) -> dict:
        return {"loss_sum": self.loss_sum.item(), "steps": self.steps}

    def load_state_dict(self, state: dict) -> None:
        self.loss_sum.fill_(state["loss_sum"])
        self.steps, self.started = int(state["steps"]), time.perf_counter()


class StopRequest:
    """Turns Ctrl-C and SIGTERM into a request honoured between steps; a second Ctrl-C is immediate."""

    def __init__(self):
        self.requested = False
        self._previous: dict = {}

    def _handle(self, signum, frame):
        if self.requested and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.requested = True

    def __enter__(self) -> "StopRequest":
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGINT, signal.SIGTERM):
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)


def _plain(logs: dict) -> dict:
    return {key: value.item() if isinstance(value, torch.Tensor) else value for key, value in logs.items()}

