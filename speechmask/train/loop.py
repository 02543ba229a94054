"""The training loop both trainers share: resume, periodic evaluation and checkpoints, progress
bar, DDP, mixed precision on CUDA. A task supplies the model, one step, and evaluation."""

from __future__ import annotations

import contextlib
import json
import math
from pathlib import Path
from typing import Protocol

import torch
from tqdm.auto import tqdm

from .checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from .config import TrainConfig
from .dist import DistContext

# fields that may differ between an interrupted run and its resumption
RESUMABLE_CHANGES = ("device", "amp", "eval_every", "progress")


class Task(Protocol):
    kind: str
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer

    def step(self, step: int) -> dict[str, float]: ...
    def evaluate(self) -> dict[str, float]: ...
    def payload(self) -> dict: ...
    def state(self) -> dict: ...
    def load_state(self, state: dict) -> None: ...


def autocast(device: torch.device, enabled: bool):
    """bf16 autocast on CUDA when enabled; nothing on CPU (keeps CPU runs exact)."""
    if enabled and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def run(task: Task, cfg: TrainConfig, out: Path, total_steps: int, ctx: DistContext, *,
        resume: bool, stop_after: int | None = None) -> dict:
    """Train `task` for `total_steps`, checkpointing to `out` every `eval_every` steps and at the
    end. With `resume`, continue from `out` (same settings required). `stop_after` (tests)
    behaves like a crash right after the checkpoint of that step. Returns the final metrics."""
    start = 0
    if resume and out.exists():
        start = _restore(task, cfg, out)
    metrics: dict[str, float] = {}
    bar = tqdm(total=total_steps, initial=start, desc=f"train {task.kind}", dynamic_ncols=True,
               disable=not (cfg.progress and ctx.is_main))
    try:
        for step in range(start, total_steps):
            logs = task.step(step)
            bar.update(1)
            bar.set_postfix({k: f"{v:.3g}" for k, v in logs.items()}, refresh=False)
            done = step + 1
            if done % cfg.eval_every == 0 or done == total_steps:
                metrics = {**logs, **task.evaluate(), "step": done}
                if ctx.is_main:
                    bar.write(f"step {done}: " + json.dumps({k: round(v, 4) for k, v in
                                                             metrics.items()}))
                    _save(task, cfg, out, done, metrics)
                ctx.barrier()
                if stop_after is not None and done >= stop_after:
                    raise KeyboardInterrupt
    finally:
        bar.close()
    return metrics


def _save(task: Task, cfg: TrainConfig, out: Path, step: int, metrics: dict) -> None:
    model = task.model.module if hasattr(task.model, "module") else task.model
    save_checkpoint(out, {**task.payload(), "model": model.state_dict(),
                          "optimizer": task.optimizer.state_dict(), "step": step,
                          "train_config": cfg.to_dict(), "metrics": metrics,
                          "rng": torch.get_rng_state(), "state": task.state()}, kind=task.kind)


def _restore(task: Task, cfg: TrainConfig, out: Path) -> int:
    blob = load_checkpoint(out, kind=task.kind)
    old = {k: v for k, v in blob.get("train_config", {}).items() if k not in RESUMABLE_CHANGES}
    new = {k: v for k, v in cfg.to_dict().items() if k not in RESUMABLE_CHANGES}
    if old != new:
        diff = {k: (old.get(k), new.get(k)) for k in set(old) | set(new) if old.get(k) != new.get(k)}
        raise CheckpointError(f"{out}: cannot resume with other settings {diff}; use --force to "
                              "start over")
    if blob["config"] != task.payload()["config"]:
        raise CheckpointError(f"{out}: cannot resume, the model configuration differs")
    model = task.model.module if hasattr(task.model, "module") else task.model
    model.load_state_dict(blob["model"])
    task.optimizer.load_state_dict(blob["optimizer"])
    torch.set_rng_state(blob["rng"])
    task.load_state(blob.get("state", {}))
    return int(blob["step"])


def cosine_lr(step: int, total: int, base: float, warmup: int = 20) -> float:
    """Linear warm-up then cosine decay to 5 % of `base`."""
    if step < warmup:
        return base * (step + 1) / warmup
    t = (step - warmup) / max(1, total - warmup)
    return base * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(1.0, t))))
