"""What several protections share: gating features and audio, mapping encoders over utterances,
random training crops, and cost counting."""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

import numpy as np
import torch

from speechmask.masking import sent_with_gates
from speechmask.models.config import MaskConfig
from speechmask.models.cost import count_cost
from speechmask.models.gates import GateConfig, mask_waveform
from speechmask.train.data import pad_batch

from ..data import Sent, SuiteData
from . import COST_KEYS

if TYPE_CHECKING:
    from ..suite import Suite


def no_cost() -> dict[str, int]:
    """The cost of a protection that computes nothing on the device."""
    return dict.fromkeys(COST_KEYS, 0)


def counted(model: torch.nn.Module, suite: Suite) -> dict[str, int]:
    """`models.cost.count_cost` of a `(1, T, n_mels) -> ...` module on one second of features."""
    fe = suite.data.frontend
    return count_cost(model, torch.zeros(1, int(fe.frames_per_second), fe.n_mels), 1.0)


def map_rows(fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], feats: list[np.ndarray],
             floor: float, stride: int = 1, batch: int = 64) -> list[np.ndarray]:
    """Apply a batched `(B, T, F), lengths -> (B, T / stride, D)` function to every utterance."""
    out: list[np.ndarray] = []
    with torch.no_grad():
        for s in range(0, len(feats), batch):
            x, lengths = pad_batch(feats[s:s + batch], floor)
            y = fn(x, lengths).numpy()
            n = ((lengths - 1) // stride + 1).tolist()
            out += [y[k, : n[k]].astype(np.float32) for k in range(len(n))]
    return out


def crop_batch(feats: list[np.ndarray], rows: list[int], frames: int | None, floor: float,
               g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Padded batch of `rows`, each cut to a random window of at most `frames` frames."""
    parts = []
    for i in rows:
        f = feats[i]
        if frames is not None and f.shape[0] > frames:
            start = int(torch.randint(0, f.shape[0] - frames + 1, (1,), generator=g))
            f = f[start:start + frames]
        parts.append(f)
    return pad_batch(parts, floor)


def gated(data: SuiteData, gates: list[np.ndarray], gate: GateConfig,
          mask_cfg: MaskConfig | None = None) -> Sent:
    """Sent features, withheld flags and masked audio for per-utterance binary gates `(S_i, G)`;
    with `mask_cfg`, the open features first go through its send steps (`device.send`), and no
    audio is sent when they have no waveform counterpart."""
    fe = data.frontend
    feats, withheld = [], []
    for f, g in zip(data.fs.features, gates):
        sent, keep = sent_with_gates(f, g, gate, fe, mask_cfg)
        feats.append(sent)
        withheld.append(~keep)

    def masked_audio(i: int) -> np.ndarray:
        return mask_waveform(data.wave(i), gates[i][:, 0], gate.samples_per_segment(fe))

    sends_audio = mask_cfg.sends_audio if mask_cfg is not None else gate.band_groups == 1
    audio = masked_audio if sends_audio else None  # band gates, send steps: features only
    test = data.content_test
    open_fraction = float(np.concatenate([gates[i].ravel() for i in test]).mean())
    return Sent(feats, withheld=withheld, audio=audio, open_fraction=open_fraction)
