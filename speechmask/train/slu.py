"""`speechmask train slu` / `train finetune`: the cloud intent classifier, on clean features or on
features masked by a (frozen) mask generator, as SILENCE fine-tunes its cloud model."""

from __future__ import annotations

import math
from pathlib import Path

import torch
import torch.nn.functional as F

from ..errors import ManifestError
from ..masking import mask_batch
from ..models.gates import floor_value
from ..models.mask import MaskGenerator
from ..models.slu import SLUConfig, SLUModel
from .adversaries import ctc_loss
from .config import FinetuneConfig, SLUTrainConfig, TrainConfig
from .data import FeatureSet, batch_indices, load_features, pad_batch, steps_per_epoch
from .dist import DistContext, init_distributed, pick_device
from .loop import autocast, cosine_lr, run


CTC_WEIGHT = 0.5  # auxiliary character CTC loss (rows with transcripts)


def spec_augment(x: torch.Tensor, lengths: torch.Tensor, fill: float, g: torch.Generator,
                 strength: float = 1.0) -> torch.Tensor:
    """Per utterance: two band masks (<= 5 bands); with probability 0.8, segment masking
    (segments of 40/80/160 ms, each dropped at a rate drawn from U(0, 0.8), the frames set to
    the floor value as a device sends them); with probability 0.3, a random gain per segment
    (what soft hard-concrete samples do in mask training: `ln(u**2)` added, u ~ U(0, 1)).

    The cloud model must tolerate masking for a mask to exist at all: trained without it, a few
    closed segments cost more KL than the mask's budget allows, and the mask generator can close
    nothing (CHANGELOG.md, mask generator). SILENCE's premise is that intent survives heavy short-term masking;
    this teaches the cloud model that, on clean training data. `strength` in [0, 1] scales the
    probabilities of segment masking and gains (a curriculum: see SLUTask.step)."""
    x = x.clone()
    b, t, f = x.shape
    floor = math.exp(fill)
    for i in range(b):
        for _ in range(2):
            w = int(torch.randint(0, 6, (1,), generator=g))
            s = int(torch.randint(0, f - w + 1, (1,), generator=g))
            x[i, :, s:s + w] = fill
        seg = int((4, 8, 16)[int(torch.randint(0, 3, (1,), generator=g))])
        n_seg = (t + seg - 1) // seg
        if float(torch.rand(1, generator=g)) < 0.3 * strength:
            gain = torch.rand(n_seg, generator=g).clamp_min(1e-3).square()
            energy = (x[i].exp() - floor).clamp_min(0) * torch.repeat_interleave(gain, seg)[:t, None]
            x[i] = torch.log(energy + floor)
        if float(torch.rand(1, generator=g)) < 0.8 * strength:
            drop = torch.rand(n_seg, generator=g) < float(torch.rand(1, generator=g)) * 0.8
            x[i, torch.repeat_interleave(drop, seg)[:t]] = fill
    return x


class SLUTask:
    kind = "slu"

    def __init__(self, fs: FeatureSet, cfg: TrainConfig, total: int, ctx: DistContext,
                 device: torch.device, init: dict | None = None, mask: MaskGenerator | None = None,
                 mask_path: str | None = None, level_norm: str = "mean"):
        self.fs, self.cfg, self.total, self.ctx, self.device = fs, cfg, total, ctx, device
        self.train_idx = fs.select(cfg.split_field, "train")
        self.dev_idx = fs.select(cfg.split_field, "dev")
        labelled = [r["intent"] for r in fs.rows if r["intent"] is not None]
        if not labelled:
            raise ManifestError(f"{fs.manifest}: no intents to train on")
        if init is not None:
            self.slu_cfg = SLUConfig.from_dict(init["config"])
            unknown = sorted({fs.rows[i]["intent"] for i in self.train_idx} - set(self.slu_cfg.intents))
            if unknown:
                raise ManifestError(f"{fs.manifest}: intents unknown to the cloud model: {unknown[:5]}")
        else:
            self.slu_cfg = SLUConfig(intents=tuple(sorted(set(labelled))), frontend=fs.frontend,
                                     level_norm=level_norm)
        model = SLUModel(self.slu_cfg)
        if init is not None:
            model.load_state_dict(init["model"])
        self.base = model.to(device)
        self.model = (torch.nn.parallel.DistributedDataParallel(model) if ctx.enabled else model)
        self.optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr,
                                           weight_decay=cfg.weight_decay)
        self.label = {name: i for i, name in enumerate(self.slu_cfg.intents)}
        self.mask = mask.to(device).eval() if mask is not None else None
        self.mask_path = mask_path
        self.floor = floor_value(fs.frontend)

    def batch(self, positions: list[int], idx: list[int], total_len: int | None = None):
        rows = [idx[p] for p in positions]
        x, lengths = pad_batch([self.fs.features[i] for i in rows], self.floor, total_len)
        y = torch.tensor([self.label.get(self.fs.rows[i]["intent"], -100) for i in rows])
        x, lengths, y = x.to(self.device), lengths.to(self.device), y.to(self.device)
        return (mask_batch(self.mask, x, lengths)[0] if self.mask is not None else x), lengths, y

    def step(self, step: int) -> dict[str, float]:
        glob = batch_indices(len(self.train_idx), self.cfg.batch_size, self.cfg.seed, step)
        t_max = max(self.fs.features[self.train_idx[p]].shape[0] for p in glob)
        x, lengths, y = self.batch(self.ctx.shard(glob), self.train_idx, t_max)
        g = torch.Generator().manual_seed(self.cfg.seed * 7919 + step)
        # curriculum: heavy masking from the start left the model at chance for hundreds of steps
        # and its final accuracy at the mercy of floating-point noise. Fine-tuning on masked
        # input adds no random drops or gains on top of the mask's (band masks only): it scored
        # higher without them (both: CHANGELOG.md, mask generator)
        strength = 0.0 if self.mask is not None else min(1.0, step / (0.25 * self.total))
        x = spec_augment(x.cpu(), lengths.cpu(), self.floor, g, strength).to(self.device)
        for group in self.optimizer.param_groups:
            group["lr"] = cosine_lr(step, self.total, self.cfg.lr)
        self.model.train()
        with autocast(self.device, self.cfg.amp):
            logits, ctc_lp, ctc_len = self.model(x, lengths, with_ctc=True)
        texts = [self.fs.rows[self.train_idx[p]]["transcript"] for p in self.ctx.shard(glob)]
        per_utt = F.cross_entropy(logits.float(), y, label_smoothing=0.05, reduction="none",
                                  ignore_index=-100) + CTC_WEIGHT * ctc_loss(ctc_lp, ctc_len, texts)
        # sum over this rank's items / global batch, times world (DDP averages gradients)
        loss = per_utt.sum() * self.ctx.world / len(glob)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), 5.0)
        self.optimizer.step()
        return {"loss": float(loss.detach()) / self.ctx.world}

    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        return {"dev_acc": accuracy(self.base, self, self.dev_idx)}

    def payload(self) -> dict:
        return {"config": self.slu_cfg.to_dict(), "manifest": str(self.fs.manifest),
                "finetuned_on_mask": self.mask_path}

    def state(self) -> dict:
        return {}

    def load_state(self, state: dict) -> None:
        pass


@torch.no_grad()
def accuracy(model: SLUModel, task: SLUTask, idx: list[int], batch: int = 64) -> float:
    model.eval()
    correct = total = 0
    for s in range(0, len(idx), batch):
        x, lengths, y = task.batch(list(range(s, min(s + batch, len(idx)))), idx)
        pred = model(x, lengths).argmax(-1)
        correct += int(((pred == y) & (y >= 0)).sum())
        total += int((y >= 0).sum())
    return correct / max(1, total)


def train_slu(manifest: Path, out: Path, cfg: TrainConfig | None = None, *,
              resume: bool = False, init_slu: Path | None = None, mask_path: Path | None = None,
              stop_after: int | None = None, level_norm: str = "mean") -> dict:
    """Train (or, with `init_slu` and `mask_path`, fine-tune on masked input) the cloud model.
    `cfg`: default `SLUTrainConfig()` (`FinetuneConfig()` when fine-tuning)."""
    trainer = FinetuneConfig if init_slu else SLUTrainConfig
    cfg = trainer() if cfg is None else cfg
    from ..api import load_mask
    from .checkpoint import load_checkpoint

    torch.manual_seed(cfg.seed)
    device = pick_device(cfg.device)
    ctx = init_distributed(device)
    init = load_checkpoint(init_slu, kind="slu") if init_slu else None
    mask = load_mask(mask_path) if mask_path else None
    fe = SLUConfig.from_dict(init["config"]).frontend if init else (mask.cfg.frontend if mask else None)
    fs = load_features(manifest, **({"fe": fe} if fe else {}), progress=cfg.progress and ctx.is_main)
    per_epoch = steps_per_epoch(len(fs.select(cfg.split_field, "train")), cfg.batch_size)
    total = cfg.total_steps(per_epoch, trainer)
    task = SLUTask(fs, cfg, total, ctx, device, init=init, mask=mask,
                   mask_path=str(mask_path) if mask_path else None, level_norm=level_norm)
    return run(task, cfg, out, total, ctx, resume=resume, stop_after=stop_after)
