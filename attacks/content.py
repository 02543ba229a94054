"""Content attackers: trained CTC ASR (passive: clean-trained; informed: fine-tuned on what the
protection sends), inpainting followed by ASR, and their scores (WER, EntER)."""

from __future__ import annotations

import numpy as np
import torch

from speechmask.train.adversaries import ctc_loss
from speechmask.train.data import array_stats, feature_stats, pad_batch

from .config import ContentConfig  # noqa: F401 (its old import path)
from .data import Sent, SuiteData
from .decoding import CTCDecoder
from .fit import Cache, EarlyStop, FitConfig, digest_arrays, fit, seeded, warm_start
from .metrics import entity_error_rate, word_error_rate
from .nets import CTCASR, Inpainter


def train_asr(data: SuiteData, feats: list[np.ndarray], *, stride: int, steps: int, lr: float,
              cache: Cache, name: str, init: CTCASR | None = None, seed: int = 0,
              width: tuple[int, int], progress: bool = True,
              stop: EarlyStop | None = None) -> CTCASR:
    """A CTC ASR of `width` (channels, hidden units; from `ContentConfig`) trained on `feats` of
    the content training rows, starting from `init` when given (every layer whose shape
    matches: all of them for log-mel input; all but the input layer and its standardisation for
    another representation). With `stop`, until its CTC loss on the content dev rows stops
    improving."""
    idx = data.content_train
    model = seeded(seed, lambda: CTCASR(feats[idx[0]].shape[1], stride, *width))
    if init is None or "norm.mean" in warm_start(model, init):
        model.norm.fit(*array_stats(feats, idx))
    pad = data.floor if stride == 1 else 0.0
    texts = [data.rows[i]["transcript"] for i in idx]
    if not any(texts):
        from .data import AttackError
        raise AttackError(f"{data.fs.manifest}: no transcripts in the training part; the content "
                          "attackers need them")
    cfg = FitConfig(steps, lr=lr, seed=seed)

    def ctc(rows: list[int]) -> torch.Tensor:
        x, lengths = pad_batch([feats[i] for i in rows], pad)
        lp, n = model(x, lengths)
        return ctc_loss(lp, n, [data.rows[i]["transcript"] for i in rows])

    def loss(batch: list[int], g: torch.Generator) -> torch.Tensor:
        return ctc([idx[p] for p in batch]).mean()

    dev = _dev_mean(ctc, data.content_dev) if stop else None
    init_key = digest_arrays(p.detach().numpy() for p in init.parameters()) if init else None
    key = Cache.key(name, cfg, stride, width, init_key, digest_arrays(feats[i] for i in idx),
                    texts, *_stop_key(stop, data.content_dev))
    return cache.get_or_fit(model, name, key, lambda: fit(
        model, loss, len(idx), cfg, desc=f"train {name}", progress=progress, dev=dev,
        stop=stop))


def _dev_mean(per_row, dev: list[int], batch: int = 64):
    """The mean of `per_row(rows)` (a per-row loss) over the dev rows, for early stopping."""
    if not dev:
        from .data import AttackError
        raise AttackError("full strength needs utterances in the 'dev' part of the split field "
                          "(the attackers stop on their dev loss)")

    def mean() -> float:
        total = sum(float(per_row(dev[s:s + batch]).sum()) for s in range(0, len(dev), batch))
        return total / len(dev)
    return mean


def _stop_key(stop: EarlyStop | None, dev: list[int]) -> tuple:
    """What early stopping adds to a cache key (nothing without it: quick keys are unchanged)."""
    return () if stop is None else (stop, dev)


@torch.no_grad()
def transcribe(asr: CTCASR, feats: list[np.ndarray], idx: list[int], pad: float,
               decoder: CTCDecoder) -> list[str]:
    """What `asr` hears in the rows `idx`, decoded by `decoder`."""
    hyps: list[str] = []
    for s in range(0, len(idx), 64):
        x, lengths = pad_batch([feats[i] for i in idx[s:s + 64]], pad)
        log_probs, n = asr.eval()(x, lengths)
        hyps += [decoder.decode(lp[: int(k)].numpy()) for lp, k in zip(log_probs, n)]
    return hyps


def train_inpainter(data: SuiteData, sent: Sent, *, steps: int, cache: Cache, seed: int = 0,
                    progress: bool = True, stop: EarlyStop | None = None) -> Inpainter:
    """Learns clean log-mel from what was sent and where it was withheld (L1 on withheld); with
    `stop`, until that loss on the content dev rows stops improving."""
    idx = data.content_train
    model = seeded(seed, lambda: Inpainter(data.frontend.n_mels))
    model.norm.fit(*feature_stats(data.fs, idx))
    cfg = FitConfig(steps, lr=2e-3, seed=seed)

    def l1(rows: list[int]) -> torch.Tensor:
        x, lengths = pad_batch([sent.features[i] for i in rows], data.floor)
        clean, _ = pad_batch([data.fs.features[i] for i in rows], data.floor)
        w, _ = pad_batch([sent.withheld[i].astype(np.float32) for i in rows], 0.0)
        guess = model(x, w > 0.5)
        valid = (torch.arange(x.shape[1])[None] < lengths[:, None]).float()[..., None] * w
        return (((guess - clean) / model.norm.std).abs() * valid).sum() / valid.sum().clamp_min(1)

    def loss(batch: list[int], g: torch.Generator) -> torch.Tensor:
        return l1([idx[p] for p in batch])

    dev = _dev_mean(lambda rows: l1(rows) * len(rows), data.content_dev) if stop else None
    key = Cache.key("inpainter", cfg, digest_arrays(sent.features[i] for i in idx),
                    digest_arrays(sent.withheld[i] for i in idx),
                    *_stop_key(stop, data.content_dev))
    return cache.get_or_fit(model, "inpainter", key, lambda: fit(
        model, loss, len(idx), cfg, desc="train inpainter", progress=progress, dev=dev,
        stop=stop))


@torch.no_grad()
def inpaint(model: Inpainter, data: SuiteData, sent: Sent, idx: list[int]) -> dict[int, np.ndarray]:
    """Reconstructions of the rows `idx`, keyed by row."""
    out: dict[int, np.ndarray] = {}
    for s in range(0, len(idx), 64):
        rows = idx[s:s + 64]
        x, lengths = pad_batch([sent.features[i] for i in rows], data.floor)
        w, _ = pad_batch([sent.withheld[i].astype(np.float32) for i in rows], 0.0)
        y = model(x, w > 0.5).numpy()
        out.update({i: y[k, : int(n)] for k, (i, n) in enumerate(zip(rows, lengths))})
    return out


def scores(data: SuiteData, hyps: list[str], idx: list[int]) -> dict:
    rows = [data.rows[i] for i in idx]
    return {"wer": word_error_rate([r["transcript"] or "" for r in rows], hyps),
            "entity_error_rate": entity_error_rate(rows, hyps)}
