"""The on-device mask generator: causal, bounded look-back, one gate logit per segment x band group.

Architectures: `tiny`, a per-segment MLP over the segment's frames and `context_segments` before
it (like SILENCE-S); `small`, causal depthwise-separable 1-D convolutions with dilations, average
pooled per segment. Both are causal: a segment's gate depends only on frames up to its own end.

Gate feedback (`feedback` > 0): the gates of the last `feedback` segments, as decided, are added
linearly to the current segment's logits (weights bounded to +-logit_bound by tanh). The device
knows what it has already withheld, and what the cloud model can do without depends on it: single
closed 40 ms segments between open ones cost the clean cloud model far less than the same share
closed at random (`benchmarks/bench_patterns.py`, docs/results.md). A feed-forward mask sees only
audio and cannot learn such run-length rules. The weight of the latest gate starts at
`feedback_init` (< 0: after an open segment, lean towards closing); from there training moves
every weight, and the audio path may make segments deviate from the alternation (how far it does:
bench_patterns' trained-mask row against the regular pattern; without a negative start the
weights drift towards "stay open", CHANGELOG.md). Training samples the gates segment by segment
and feeds the samples back; inference feeds back the binary gates the device sends.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .config import MaskConfig
from .gates import binary_gates, sample_gates

class Normalizer(nn.Module):
    """Fixed per-band standardisation, fitted on training features (stored in checkpoints)."""

    def __init__(self, n_mels: int):
        super().__init__()
        self.register_buffer("mean", torch.zeros(n_mels))
        self.register_buffer("std", torch.ones(n_mels))

    def fit(self, mean: torch.Tensor, std: torch.Tensor) -> "Normalizer":
        self.mean.copy_(mean)
        self.std.copy_(std.clamp_min(1e-3))
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


class TinyMask(nn.Module):
    def __init__(self, cfg: MaskConfig):
        super().__init__()
        n_in = (cfg.context_segments + 1) * cfg.frames_per_segment * cfg.frontend.n_mels
        self.cfg = cfg
        self.fc1 = nn.Linear(n_in, cfg.hidden)
        self.fc2 = nn.Linear(cfg.hidden, cfg.gate.band_groups)
        nn.init.constant_(self.fc2.bias, cfg.init_logit)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: normalised `(B, T, n_mels)` -> log_alpha `(B, T // seg_frames, G)`."""
        b, t, f = x.shape
        s = t // self.cfg.frames_per_segment
        seg = x[:, : s * self.cfg.frames_per_segment].reshape(b, s, self.cfg.frames_per_segment * f)
        c = self.cfg.context_segments
        padded = F.pad(seg, (0, 0, c, 0))  # zero context before the first segment
        stacked = torch.cat([padded[:, i: i + s] for i in range(c + 1)], dim=-1)
        return self.fc2(torch.relu(self.fc1(stacked)))


class SmallMask(nn.Module):
    def __init__(self, cfg: MaskConfig):
        super().__init__()
        h, k = cfg.hidden, cfg.kernel
        self.cfg = cfg
        self.inp = nn.Conv1d(cfg.frontend.n_mels, h, 1)
        self.depthwise = nn.ModuleList(nn.Conv1d(h, h, k, groups=h, dilation=2 ** i)
                                       for i in range(cfg.layers))
        self.pointwise = nn.ModuleList(nn.Conv1d(h, h, 1) for _ in range(cfg.layers))
        self.head = nn.Conv1d(h, cfg.gate.band_groups, 1)
        nn.init.constant_(self.head.bias, cfg.init_logit)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: normalised `(B, T, n_mels)` -> log_alpha `(B, T // seg_frames, G)`."""
        seg_frames = self.cfg.frames_per_segment
        h = torch.relu(self.inp(x.transpose(1, 2)))
        for dw, pw in zip(self.depthwise, self.pointwise):
            pad = (self.cfg.kernel - 1) * dw.dilation[0]
            h = h + torch.relu(pw(dw(F.pad(h, (pad, 0)))))  # causal: pad on the left only
        s = h.shape[-1] // seg_frames
        if s == 0:  # shorter than one segment: nothing to gate (conv1d refuses empty input)
            return h.new_zeros(h.shape[0], 0, self.cfg.gate.band_groups)
        return self.head(F.avg_pool1d(h[..., : s * seg_frames], seg_frames)).transpose(1, 2)


class MaskGenerator(nn.Module):
    """Raw log-mel `(B, T, n_mels)` -> gate logits log_alpha `(B, T // seg_frames, band_groups)`.

    Inference feeds back binary gates; training feeds back reparameterised hard-concrete
    samples."""

    def __init__(self, cfg: MaskConfig):
        super().__init__()
        self.cfg = cfg
        self.norm = Normalizer(cfg.frontend.n_mels)
        self.net = TinyMask(cfg) if cfg.arch == "tiny" else SmallMask(cfg)
        g = cfg.gate.band_groups
        self.feedback = nn.Linear(cfg.feedback * g, g, bias=False) if cfg.feedback else None
        if self.feedback is not None:  # effective weight: logit_bound * tanh(raw)
            nn.init.zeros_(self.feedback.weight)
            with torch.no_grad():  # each band group's own latest gate
                self.feedback.weight[range(g), range(g)] = math.atanh(cfg.feedback_init /
                                                                       cfg.logit_bound)

    def segment_logits(self, features: torch.Tensor) -> torch.Tensor:
        """The feed-forward part: `(B, T, n_mels)` -> `(B, T // seg_frames, G)`."""
        return self.net(self.norm(features))

    def initial_state(self, a: torch.Tensor) -> torch.Tensor:
        """Gates before the first segment, newest first: `(B, feedback, G)` of zeros (nothing
        has been sent yet)."""
        return a.new_zeros(a.shape[0], self.cfg.feedback, a.shape[-1])

    def recur(self, a: torch.Tensor, noise: torch.Tensor | None = None,
              state: torch.Tensor | None = None):
        """Add feedback to feed-forward logits `a` `(B, S, G)`, segment by segment. Returns
        (log_alpha, gates, state): the gates fed back are hard-concrete samples drawn with
        `noise` (uniform, shaped like `a`) when given, else the binary inference gates."""
        gate = self.cfg.gate
        draw = (lambda la, s: sample_gates(la, gate, noise=noise[:, s])) if noise is not None \
            else (lambda la, s: binary_gates(la, gate))
        bound = self.cfg.logit_bound
        if self.feedback is None:
            la = bound * torch.tanh(a / bound)
            return la, draw(la, slice(None)), state
        state = self.initial_state(a) if state is None else state
        w = bound * torch.tanh(self.feedback.weight)  # no single past gate decides alone
        logits, gates = [], []
        for s in range(a.shape[1]):
            la = bound * torch.tanh((a[:, s] + F.linear(state.flatten(1), w)) / bound)
            z = draw(la, s)
            logits.append(la)
            gates.append(z)
            state = torch.cat([z[:, None], state[:, :-1]], dim=1)
        if not logits:
            return a, a, state
        return torch.stack(logits, 1), torch.stack(gates, 1), state

    def forward(self, features: torch.Tensor, noise: torch.Tensor | None = None):
        """Inference: log_alpha. Training (`noise` given, uniform `(B, T // seg_frames, G)`):
        (log_alpha, sampled gates z). One entry point, so that DDP sees the training forward."""
        log_alpha, z, _ = self.recur(self.segment_logits(features), noise=noise)
        return log_alpha if noise is None else (log_alpha, z)
