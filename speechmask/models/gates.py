"""Stretched hard-concrete gates (Louizos et al. 2018) and how gates mask features and audio.

One gate per (time segment x band group). Training samples z in [0, 1] and penalises the expected
L0 norm P(z > 0); inference is deterministic: the test-time gate
`clamp(sigmoid(log_alpha) * (r - l) + l, 0, 1)` thresholded at `threshold`, so the device sends a
binary mask (for the default threshold 0.5 and symmetric stretch this is `log_alpha > 0`).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ..errors import ConfigError
from ..features import FrontendConfig
from .config import GateConfig


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
