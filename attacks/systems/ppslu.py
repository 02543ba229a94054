"""`ppslu`: a privacy-preserving SLU encoder on the device, trained for intent with speaker and
CTC adversaries; what is sent is its representation, read by its own cloud intent head."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

from speechmask.models.baselines import PPSLUEncoder, stats_pool
from speechmask.train.adversaries import ctc_loss, grad_reverse
from speechmask.train.data import feature_stats, pad_batch

from . import System
from .common import counted, map_rows
from ..config import BaselineConfig
from ..data import Sent, SuiteData
from ..fit import Cache, FitConfig, digest_arrays, fit, seeded

if TYPE_CHECKING:
    from ..suite import Suite


def intents_of(data: SuiteData) -> list[str]:
    """The intents of the training part: the encoder's intent head's outputs."""
    return sorted({data.rows[i]["intent"] for i in data.content_train if data.rows[i]["intent"]})


def new_ppslu(data: SuiteData) -> PPSLUEncoder:
    """An untrained encoder of the suite's shape."""
    return PPSLUEncoder(data.frontend.n_mels, len(intents_of(data)),
                        len(data.speakers(data.content_train)))


def train_ppslu(data: SuiteData, cfg: BaselineConfig, fit_cfg: FitConfig, cache: Cache,
                progress: bool) -> tuple[PPSLUEncoder, list[str]]:
    idx = data.content_train
    speakers = data.speakers(idx)
    intents = intents_of(data)
    model = seeded(fit_cfg.seed, lambda: new_ppslu(data))
    model.norm.fit(*feature_stats(data.fs, idx))
    spk = {s: k for k, s in enumerate(speakers)}
    lab = {s: k for k, s in enumerate(intents)}

    calls = [0]
    warm = int(cfg.ppslu_warmup * fit_cfg.steps)

    def loss(batch: list[int], g: torch.Generator) -> torch.Tensor:
        rows = [idx[p] for p in batch]
        x, lengths = pad_batch([data.fs.features[i] for i in rows], data.floor)
        step = calls[0]
        calls[0] += 1
        rep = model.represent(x, lengths)
        steps = model.steps(lengths).clamp_max(rep.shape[1])
        y = torch.tensor([lab.get(data.rows[i]["intent"], -100) for i in rows])
        task = F.cross_entropy(model.classify(rep, steps), y, label_smoothing=0.05,
                               ignore_index=-100)
        texts = [data.rows[i]["transcript"] for i in rows]
        if step < warm:
            # phase 1: intent with a (forward) CTC auxiliary, as the cloud SLU trains; intent
            # alone from a few hundred utterances memorises the training set (CHANGELOG.md)
            return task + ctc_loss(F.log_softmax(model.ctc(rep), -1), steps, texts).mean()
        # phase 2: the adversaries, through gradient reversal, with the weight ramped as in
        # Ganin & Lempitsky (2015), 2 / (1 + e^(-10 p)) - 1, so the encoder is not torn apart
        p = (step - warm) / max(1, fit_cfg.steps - warm)
        weight = cfg.ppslu_adversary * (2 / (1 + math.exp(-10 * p)) - 1)
        hidden = grad_reverse(rep, weight)
        s = torch.tensor([spk[data.rows[i]["speaker"]] for i in rows])
        adv_spk = F.cross_entropy(model.speaker(stats_pool(hidden.transpose(1, 2), steps)), s)
        adv_ctc = ctc_loss(F.log_softmax(model.ctc(hidden), -1), steps, texts).mean()
        return task + adv_spk + adv_ctc

    key = Cache.key("ppslu", cfg, fit_cfg, intents,
                    digest_arrays(data.fs.features[i] for i in idx))
    fit_lr = FitConfig(fit_cfg.steps, fit_cfg.batch_size, 1e-3, fit_cfg.weight_decay,
                       fit_cfg.seed)
    cache.get_or_fit(model, "ppslu", key, lambda: fit(
        model, loss, len(idx), fit_lr, desc="train ppslu baseline", progress=progress))
    return model, intents


def ppslu(data: SuiteData, model: PPSLUEncoder, intents: list[str]) -> Sent:
    reps = map_rows(model.represent, data.fs.features, data.floor, stride=PPSLUEncoder.STRIDE)

    def intent(idx: list[int]) -> list[str]:
        out = []
        with torch.no_grad():
            for s in range(0, len(idx), 64):
                x, lengths = pad_batch([reps[i] for i in idx[s:s + 64]], 0.0)
                out += [intents[k] for k in model.classify(x, lengths).argmax(-1).tolist()]
        return out
    return Sent(reps, log_mel=False, frame_stride=PPSLUEncoder.STRIDE, intent=intent)


class PPSLU(System):
    expected_cost = 5.0
    build_cost = 4.0

    def __init__(self) -> None:
        self.trained: tuple[PPSLUEncoder, list[str]] | None = None  # by the first `build`

    def build(self, suite: Suite) -> Sent:
        if self.trained is None:
            b = suite.cfg.baselines
            self.trained = train_ppslu(suite.data, b, FitConfig(suite.cfg.steps(b.ppslu_steps),
                                                                seed=suite.cfg.seed),
                                       suite.cache, suite.progress)
        return ppslu(suite.data, *self.trained)

    def cost(self, suite: Suite) -> dict[str, int]:
        return counted(seeded(0, lambda: new_ppslu(suite.data)).device_part(), suite)
