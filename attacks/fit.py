"""Training every network of the suite: one seeded loop, and a cache of trained weights keyed by
a hash of the training data and the configuration, so that a rerun reuses what it trained."""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Iterable, TypeVar

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from speechmask.atomic import atomic_output
from speechmask.train.data import batch_indices
from speechmask.train.loop import cosine_lr


@dataclass(frozen=True)
class FitConfig:
    """How one network is trained: AdamW, warm-up then cosine decay, gradient clipping."""

    steps: int
    batch_size: int = 32
    lr: float = 2e-3
    weight_decay: float = 1e-4
    seed: int = 0

    def bounded(self, max_steps: int | None) -> "FitConfig":
        """This config with `steps` capped by the suite's --max-steps."""
        if max_steps is None:
            return self
        return FitConfig(min(self.steps, max_steps), self.batch_size, self.lr, self.weight_decay,
                         self.seed)


@dataclass(frozen=True)
class EarlyStop:
    """Train until the dev loss stops improving: evaluate every `every` steps, stop after
    `patience` evaluations without a loss below the best by more than `min_delta`, and keep the
    best weights. `FitConfig.steps` stays the cap (and the length of the learning-rate
    schedule)."""

    every: int = 100
    patience: int = 5
    min_delta: float = 1e-3


M = TypeVar("M", bound=nn.Module)


def seeded(seed: int, build: Callable[[], M]) -> M:
    """`build()` with torch's global RNG seeded to `seed` for the call and restored afterwards,
    so that a network's initial weights depend on its seed only, not on whatever drew random
    numbers earlier in the process (`fit` seeds only the training that follows)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build()


def fit(model: nn.Module, loss_fn: Callable[[list[int], torch.Generator], torch.Tensor],
        n_items: int, cfg: FitConfig, *, desc: str, progress: bool = True,
        params: Iterable[nn.Parameter] | None = None,
        dev: Callable[[], float] | None = None, stop: EarlyStop | None = None) -> nn.Module:
    """Minimise `loss_fn(batch, generator)` over seeded batches of positions `0..n_items-1`.
    With `dev` (the loss on held-out data, evaluated without gradients) and `stop`, training
    stops once the dev loss no longer improves and the best weights are kept (`model.fit_log`
    records the evaluations). Leaves the model in eval mode."""
    torch.manual_seed(cfg.seed)
    opt = torch.optim.AdamW(list(params) if params is not None else model.parameters(),
                            lr=cfg.lr, weight_decay=cfg.weight_decay)
    g = torch.Generator().manual_seed(cfg.seed + 1)
    model.train()
    best, best_state, bad, log = math.inf, None, 0, []
    bar = tqdm(range(cfg.steps), desc=desc, dynamic_ncols=True, disable=not progress, leave=False)
    for step in bar:
        for group in opt.param_groups:
            group["lr"] = cosine_lr(step, cfg.steps, cfg.lr, warmup=max(1, min(50, cfg.steps // 10)))
        batch = batch_indices(n_items, min(cfg.batch_size, n_items), cfg.seed, step)
        loss = loss_fn(batch, g)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        opt.step()
        if step % 10 == 0:
            bar.set_postfix(loss=f"{float(loss.detach()):.3g}", refresh=False)
        done = step + 1
        if dev is not None and stop is not None and (done % stop.every == 0
                                                     or done == cfg.steps):
            value = _evaluate(model, dev)
            log.append({"step": done, "dev_loss": value})
            if value < best - stop.min_delta:
                best, bad = value, 0
                best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            else:
                bad += 1
            bar.set_postfix(dev=f"{value:.3g}", best=f"{best:.3g}", refresh=False)
            if bad >= stop.patience:
                break
    if best_state is not None:
        model.load_state_dict(best_state)
    model.fit_log = log
    return model.eval()


def _evaluate(model: nn.Module, dev: Callable[[], float]) -> float:
    """`dev()` in eval mode without gradients; the model's mode and torch's RNG are restored, so
    evaluating does not change the training that follows."""
    with torch.random.fork_rng(devices=[]), torch.no_grad():
        model.eval()
        try:
            return float(dev())
        finally:
            model.train()


def warm_start(model: nn.Module, init: nn.Module) -> list[str]:
    """Copy every parameter and buffer of `init` whose name and shape match `model`'s; returns
    the names left as initialised (an input layer of another width, for instance)."""
    own = model.state_dict()
    theirs = init.state_dict()
    fresh = [k for k, v in own.items() if k not in theirs or theirs[k].shape != v.shape]
    model.load_state_dict({**own, **{k: v for k, v in theirs.items()
                                     if k in own and k not in fresh}})
    return fresh


def digest_arrays(arrays: Iterable[np.ndarray]) -> str:
    """A short hash of a sequence of arrays (shapes, dtypes and bytes)."""
    h = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(f"{a.shape}{a.dtype}".encode())
        h.update(a.tobytes())
    return h.hexdigest()[:16]


class Cache:
    """Trained weights under `folder/<name>-<key>.pt` (tensors only; loaded with
    `weights_only=True`). The key hashes everything the training depends on."""

    def __init__(self, folder: Path | None):
        self.folder = folder

    # bumped when what a key stands for changes: 2 = initial weights drawn from the fit seed
    VERSION = 2

    @staticmethod
    def key(*parts) -> str:
        blob = json.dumps([Cache.VERSION] +
                          [asdict(p) if hasattr(p, "__dataclass_fields__") else p for p in parts],
                          sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def path(self, name: str, key: str) -> Path | None:
        return self.folder / f"{name}-{key}.pt" if self.folder else None

    def load(self, model: nn.Module, name: str, key: str) -> bool:
        path = self.path(name, key)
        if path is None or not path.is_file():
            return False
        try:
            model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        except Exception:  # noqa: BLE001 - a stale or damaged cache entry is retrained
            return False
        model.eval()
        return True

    def save(self, model: nn.Module, name: str, key: str) -> None:
        path = self.path(name, key)
        if path is not None:
            with atomic_output(path) as tmp:
                torch.save(model.state_dict(), tmp)

    def get_or_fit(self, model: nn.Module, name: str, key: str, train: Callable[[], None]
                   ) -> nn.Module:
        """The cached weights of `name` under `key`, or `train()` then cache."""
        if not self.load(model, name, key):
            train()
            self.save(model, name, key)
        return model.eval()
