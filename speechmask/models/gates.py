"""Stretched hard-concrete gates (Louizos et al. 2018) and how gates mask features and audio.

One gate per (time segment x band group). Training samples z in [0, 1] and penalises the expected
L0 norm P(z > 0); inference is deterministic: the test-time gate
`clamp(sigmoid(log_alpha) * (r - l) + l, 0, 1)` thresholded at `threshold`, so the device sends a
binary mask (for the default threshold 0.5 and symmetric stretch this is `log_alpha > 0`).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import torch

from ..errors import ConfigError
from ..features import FrontendConfig, exact_div


@dataclass(frozen=True)
class GateConfig:
    """Where gates sit and how they are sampled."""

    segment_ms: float = 40.0
    band_groups: int = 1
    beta: float = 2.0 / 3.0  # temperature
    stretch_low: float = -0.1  # l
    stretch_high: float = 1.1  # r
    threshold: float = 0.5  # on the deterministic gate

    def __post_init__(self) -> None:
        if self.band_groups < 1:
            raise ConfigError("band_groups must be >= 1")
        if not (self.stretch_low < 0 and self.stretch_high > 1 and self.beta > 0):
            raise ConfigError("hard-concrete needs l < 0, r > 1 and beta > 0")
        if not 0 < self.threshold < 1:
            raise ConfigError("threshold must be in (0, 1)")

    def frames_per_segment(self, fe: FrontendConfig) -> int:
        seg_frames = exact_div(self.segment_ms, fe.hop_ms, f"segment_ms={self.segment_ms} / hop_ms")
        if seg_frames < 1:
            raise ConfigError("a segment must hold at least one frame")
        return seg_frames

    def samples_per_segment(self, fe: FrontendConfig) -> int:
        return self.frames_per_segment(fe) * fe.hop_length

    def band_edges(self, n_mels: int) -> list[tuple[int, int]]:
        """Contiguous, near-equal groups of mel bands: [(start, end), ...]."""
        if self.band_groups > n_mels:
            raise ConfigError(f"band_groups={self.band_groups} > n_mels={n_mels}")
        cuts = np.linspace(0, n_mels, self.band_groups + 1).round().astype(int)
        return [(int(a), int(b)) for a, b in zip(cuts[:-1], cuts[1:])]

    @property
    def threshold_logit(self) -> float:
        """log_alpha above which the gate is open at inference."""
        p = (self.threshold - self.stretch_low) / (self.stretch_high - self.stretch_low)
        return math.log(p / (1 - p))

    def to_dict(self) -> dict:
        return asdict(self)


def sample_gates(log_alpha: torch.Tensor, cfg: GateConfig, *,
                 noise: torch.Tensor | None = None,
                 generator: torch.Generator | None = None) -> torch.Tensor:
    """Reparameterised sample z in [0, 1] with the shape of `log_alpha` (differentiable).
    `noise` (uniform, same shape) may be given so that callers control the randomness."""
    if noise is None:
        noise = torch.rand(log_alpha.shape, generator=generator, dtype=log_alpha.dtype)
    u = noise.to(log_alpha.device, log_alpha.dtype).clamp(1e-6, 1 - 1e-6)
    s = torch.sigmoid((torch.log(u) - torch.log1p(-u) + log_alpha) / cfg.beta)
    return (s * (cfg.stretch_high - cfg.stretch_low) + cfg.stretch_low).clamp(0.0, 1.0)


def prob_open(log_alpha: torch.Tensor, cfg: GateConfig) -> torch.Tensor:
    """P(z > 0): the expected L0 contribution of each gate."""
    return torch.sigmoid(log_alpha - cfg.beta * math.log(-cfg.stretch_low / cfg.stretch_high))


def prob_fully_open(log_alpha: torch.Tensor, cfg: GateConfig) -> torch.Tensor:
    """P(z == 1)."""
    return torch.sigmoid(log_alpha - cfg.beta * math.log((1 - cfg.stretch_low) /
                                                         (cfg.stretch_high - 1)))


def deterministic_gates(log_alpha: torch.Tensor, cfg: GateConfig) -> torch.Tensor:
    """Test-time gate value in [0, 1]."""
    return (torch.sigmoid(log_alpha) * (cfg.stretch_high - cfg.stretch_low)
            + cfg.stretch_low).clamp(0.0, 1.0)


def binary_gates(log_alpha: torch.Tensor, cfg: GateConfig) -> torch.Tensor:
    """What the device sends: 1.0 where the segment (x band group) is kept, else 0.0."""
    return (log_alpha > cfg.threshold_logit).to(log_alpha.dtype)


def expand_gates(gates: torch.Tensor, n_frames: int, seg_frames: int,
                 edges: list[tuple[int, int]]) -> torch.Tensor:
    """gates `(B, S, G)` -> per-feature mask `(B, n_frames, n_mels)`. Frames after the last
    whole segment get 0 (the device never sends an incomplete segment)."""
    b, s, g = gates.shape
    if g != len(edges):
        raise ConfigError(f"{g} gate groups but {len(edges)} band groups")
    widths = torch.tensor([e - a for a, e in edges], device=gates.device)
    per_band = torch.repeat_interleave(gates, widths, dim=2)  # (B, S, n_mels)
    per_frame = torch.repeat_interleave(per_band, seg_frames, dim=1)  # (B, S*seg_frames, n_mels)
    if per_frame.shape[1] >= n_frames:
        return per_frame[:, :n_frames]
    pad = per_frame.new_zeros(b, n_frames - per_frame.shape[1], per_frame.shape[2])
    return torch.cat([per_frame, pad], dim=1)


def mask_features(features: torch.Tensor, mask: torch.Tensor, floor_value: float) -> torch.Tensor:
    """Gate the signal's *amplitude*: `ln(z**2 * mel + floor)` where `features = ln(mel + floor)`.

    For binary gates this is the feature (z = 1) or exactly `floor_value` (z = 0), what the
    device sends, and it is what multiplying the waveform segment by z does to its mel energy, so
    feature and audio masking agree. For soft training samples it behaves like a volume change
    (z = 0.9 shifts a frame by ln 0.81) instead of dragging log values toward the floor, which
    the cloud model would read as a different sound; and unlike gating energy linearly, its
    gradient stays bounded as z -> 0. features, mask: `(B, T, n_mels)`.
    """
    floor = math.exp(floor_value)
    energy = (torch.exp(features) - floor).clamp_min(0.0)
    return torch.log(mask.square() * energy + floor)


def mask_waveform(wave: np.ndarray, gates: np.ndarray, samples_per_segment: int) -> np.ndarray:
    """Zero the samples of closed segments. wave `(n,)`, binary gates `(S,)` (one band group).
    Samples after the last whole segment are zeroed too."""
    keep = np.repeat(np.asarray(gates, dtype=bool), samples_per_segment)[: wave.size]
    out = np.zeros_like(wave)
    out[: keep.size][keep] = wave[: keep.size][keep]
    return out


def floor_value(fe: FrontendConfig) -> float:
    """The feature value of silence: ln(log_floor)."""
    return math.log(fe.log_floor)
