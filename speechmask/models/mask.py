"""The on-device mask generator: causal, bounded look-back, one gate logit per segment x band group.

Architectures: `tiny`, a per-segment MLP over the segment's frames and `context_segments` before
it (like SILENCE-S); `small`, causal depthwise-separable 1-D convolutions with dilations, average
pooled per segment. Both are causal: a segment's gate depends only on frames up to its own end.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from ..features import FrontendConfig
from .gates import GateConfig

ARCHS = ("tiny", "small")


@dataclass(frozen=True)
class MaskConfig:
    """Architecture of the mask generator, with the gate and front-end configs it was built for."""

    arch: str = "small"
    hidden: int = 32
    layers: int = 3  # small: dilated blocks (dilation 1, 2, 4, ...)
    kernel: int = 5  # small: depthwise kernel
    context_segments: int = 1  # tiny: segments of look-back
    init_logit: float = 1.0  # gates start open (P(open) 0.93, KL near 0); L0 closes them
    logit_bound: float = 4.0  # training penalises |log_alpha| beyond this: no gate saturates
                              # beyond reach of the gradients, and int8 output has a known range
    gate: GateConfig = field(default_factory=GateConfig)
    frontend: FrontendConfig = field(default_factory=FrontendConfig)

    def __post_init__(self) -> None:
        if self.arch not in ARCHS:
            raise ConfigError(f"unknown mask architecture {self.arch!r} (choose from {ARCHS})")
        if self.hidden < 1 or self.layers < 0 or self.kernel < 1 or self.context_segments < 0:
            raise ConfigError("hidden, kernel >= 1 and layers, context_segments >= 0 required")
        self.gate.frames_per_segment(self.frontend)  # validates segment_ms against the hop
        self.gate.band_edges(self.frontend.n_mels)

    @property
    def fps(self) -> int:
        return self.gate.frames_per_segment(self.frontend)

    @property
    def lookback_frames(self) -> int:
        """Frames before a segment's first frame that its gate depends on."""
        if self.arch == "tiny":
            return self.context_segments * self.fps
        return sum((self.kernel - 1) * 2 ** i for i in range(self.layers))

    @property
    def window_frames(self) -> int:
        """Frames one streaming call sees: look-back rounded up to whole segments, plus one."""
        return (math.ceil(self.lookback_frames / self.fps) + 1) * self.fps

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "MaskConfig":
        d = dict(d)
        d["gate"] = GateConfig(**d.get("gate", {}))
        d["frontend"] = FrontendConfig.from_dict(d.get("frontend", {}))
        return cls(**d)


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
        n_in = (cfg.context_segments + 1) * cfg.fps * cfg.frontend.n_mels
        self.cfg = cfg
        self.fc1 = nn.Linear(n_in, cfg.hidden)
        self.fc2 = nn.Linear(cfg.hidden, cfg.gate.band_groups)
        nn.init.constant_(self.fc2.bias, cfg.init_logit)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: normalised `(B, T, n_mels)` -> log_alpha `(B, T // fps, G)`."""
        b, t, f = x.shape
        s = t // self.cfg.fps
        seg = x[:, : s * self.cfg.fps].reshape(b, s, self.cfg.fps * f)
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
        """x: normalised `(B, T, n_mels)` -> log_alpha `(B, T // fps, G)`."""
        fps = self.cfg.fps
        h = torch.relu(self.inp(x.transpose(1, 2)))
        for dw, pw in zip(self.depthwise, self.pointwise):
            pad = (self.cfg.kernel - 1) * dw.dilation[0]
            h = h + torch.relu(pw(dw(F.pad(h, (pad, 0)))))  # causal: pad on the left only
        s = h.shape[-1] // fps
        pooled = F.avg_pool1d(h[..., : s * fps], fps) if s else h[..., :0]
        return self.head(pooled).transpose(1, 2)


class MaskGenerator(nn.Module):
    """Raw log-mel `(B, T, n_mels)` -> gate logits log_alpha `(B, T // fps, band_groups)`."""

    def __init__(self, cfg: MaskConfig):
        super().__init__()
        self.cfg = cfg
        self.norm = Normalizer(cfg.frontend.n_mels)
        self.net = TinyMask(cfg) if cfg.arch == "tiny" else SmallMask(cfg)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.net(self.norm(features))

    def cost(self) -> dict:
        """Cost per second of audio and per streaming call (see `models.cost`)."""
        from .cost import count_cost

        fe = self.cfg.frontend
        second = count_cost(self, torch.zeros(1, int(fe.frames_per_second), fe.n_mels), 1.0)
        call = count_cost(self, torch.zeros(1, self.cfg.window_frames, fe.n_mels), 1.0)
        # a stateless streaming call recomputes its window; a stateful one costs `second`
        return {**second, "activation_bytes": call["activation_bytes"],
                "window_frames": self.cfg.window_frames,
                "segments_per_second": fe.frames_per_second / self.cfg.fps}
