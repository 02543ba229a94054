"""Content attackers: trained CTC ASR (passive: clean-trained; informed: fine-tuned on what the
protection sends), inpainting followed by ASR, and their scores (WER, EntER)."""

from __future__ import annotations

import difflib

import numpy as np
import torch

from speechmask.train.adversaries import ctc_loss
from speechmask.train.data import array_stats, feature_stats, pad_batch

from .config import ContentConfig  # noqa: F401 (its old import path)
from .data import Sent, SuiteData
from .fit import Cache, FitConfig, digest_arrays, fit, seeded, warm_start
from .metrics import entity_error_rate, normalize_words, word_error_rate
from .nets import CTCASR, Inpainter, greedy_decode


def train_asr(data: SuiteData, feats: list[np.ndarray], *, stride: int, steps: int, lr: float,
              cache: Cache, name: str, init: CTCASR | None = None, seed: int = 0,
              width: tuple[int, int], progress: bool = True) -> CTCASR:
    """A CTC ASR of `width` (channels, hidden units; from `ContentConfig`) trained on `feats` of
    the content training rows, starting from `init` when given (every layer whose shape
    matches: all of them for log-mel input; all but the input layer and its standardisation for
    another representation)."""
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

    def loss(batch: list[int], g: torch.Generator) -> torch.Tensor:
        x, lengths = pad_batch([feats[idx[p]] for p in batch], pad)
        lp, n = model(x, lengths)
        return ctc_loss(lp, n, [texts[p] for p in batch]).mean()

    init_key = digest_arrays(p.detach().numpy() for p in init.parameters()) if init else None
    key = Cache.key(name, cfg, stride, width, init_key, digest_arrays(feats[i] for i in idx),
                    texts)
    return cache.get_or_fit(model, name, key, lambda: fit(
        model, loss, len(idx), cfg, desc=f"train {name}", progress=progress))


class Lexicon:
    """The attacker's vocabulary: every word of the training transcripts. Greedy CTC output is
    spelled by ear ("swich the litenrm"); snapping each word to the closest vocabulary word
    (difflib's ratio >= `cutoff`, else kept as heard) is what a word-level decoder with this
    lexicon would do, at a fraction of the code. It lowers the same network's WER
    (CHANGELOG.md records by how much; benchmarks/bench_attack.py reports the WER it reaches)."""

    def __init__(self, transcripts: list[str | None], cutoff: float = 0.5):
        self.words = sorted({w for t in transcripts for w in normalize_words(t)})
        self.cutoff = cutoff
        self._memo: dict[str, str] = {}

    def correct(self, text: str) -> str:
        out = []
        for w in text.split():
            if w not in self._memo:
                match = difflib.get_close_matches(w, self.words, n=1, cutoff=self.cutoff)
                self._memo[w] = match[0] if match else w
            out.append(self._memo[w])
        return " ".join(out)


@torch.no_grad()
def transcribe(asr: CTCASR, feats: list[np.ndarray], idx: list[int], pad: float,
               lexicon: Lexicon | None = None) -> list[str]:
    hyps: list[str] = []
    for s in range(0, len(idx), 64):
        x, lengths = pad_batch([feats[i] for i in idx[s:s + 64]], pad)
        hyps += greedy_decode(*asr.eval()(x, lengths))
    return [lexicon.correct(h) for h in hyps] if lexicon is not None else hyps


def train_inpainter(data: SuiteData, sent: Sent, *, steps: int, cache: Cache, seed: int = 0,
                    progress: bool = True) -> Inpainter:
    """Learns clean log-mel from what was sent and where it was withheld (L1 on withheld)."""
    idx = data.content_train
    model = seeded(seed, lambda: Inpainter(data.frontend.n_mels))
    model.norm.fit(*feature_stats(data.fs, idx))
    cfg = FitConfig(steps, lr=2e-3, seed=seed)

    def loss(batch: list[int], g: torch.Generator) -> torch.Tensor:
        rows = [idx[p] for p in batch]
        x, lengths = pad_batch([sent.features[i] for i in rows], data.floor)
        clean, _ = pad_batch([data.fs.features[i] for i in rows], data.floor)
        w, _ = pad_batch([sent.withheld[i].astype(np.float32) for i in rows], 0.0)
        guess = model(x, w > 0.5)
        valid = (torch.arange(x.shape[1])[None] < lengths[:, None]).float()[..., None] * w
        return (((guess - clean) / model.norm.std).abs() * valid).sum() / valid.sum().clamp_min(1)

    key = Cache.key("inpainter", cfg, digest_arrays(sent.features[i] for i in idx),
                    digest_arrays(sent.withheld[i] for i in idx))
    return cache.get_or_fit(model, "inpainter", key, lambda: fit(
        model, loss, len(idx), cfg, desc="train inpainter", progress=progress))


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
