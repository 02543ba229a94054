"""Random frequency warping: a device-side step that rescales each utterance's frequency axis by a
factor drawn at random for that utterance, so that a speaker's vocal-tract length (the formant
positions, a speaker cue in every frame) varies from one utterance to the next as much as it
varies between speakers.

The warp is VTLP's (Jaitly & Hinton 2013): an output band centred on `f` reads the input spectrum
at `s(f)`, linear in Hz with slope `alpha` up to a knee, then linear to the top band so that the
range maps onto itself:

    s(f) = alpha * f                                    f <= knee = pivot * fmax * min(1, 1/alpha)
    s(f) = fmax - (fmax - alpha * knee) * (fmax - f) / (fmax - knee)    above

`s(f)` is read on the log-mel frame by linear interpolation between the two mel bands whose
centres bracket it (clamped at the first and last band). The device does not compute `s`: the
export writes, for each of the `2 * levels + 1` quantised factors `alpha_k = (1 + max_warp) **
(k / levels)`, k = -levels..levels, a table of (source band, Q8 weight 0..256) per output band
(`tables`), and the device draws `k` once per utterance from its random number generator
(STM32H7: the RNG peripheral). Per band and frame it costs one multiply, two additions and a
shift:

    y[b] = x[j] + ((x[j+1] - x[j]) * w + 128) >> 8        j, w = table[k][b]; int32, then int16

Two implementations that agree bit for bit on the integer path: `warp_int` (numpy, int16
Q`log_frac_bits` features) and the float twin `warp_float` (torch, for training; the same table,
so within rounding of the integer path). Which level an utterance gets is the caller's:
`speechmask.device.send.utterance_level` stands in for the device's hardware generator.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from ..errors import ConfigError
from ..features import FrontendConfig
from ..features_int import round_shift

MODES = ("none", "random")
WEIGHT_BITS = 8  # Q8 interpolation weights, 0..256


@dataclass(frozen=True)
class WarpConfig:
    """`mode` none (off) or random (a factor per utterance, uniform over the quantised levels);
    `max_warp` the largest factor is `1 + max_warp` (and the smallest its inverse); `levels` the
    quantised factors on each side of 1; `pivot` the knee as a share of fmax."""

    mode: str = "none"
    max_warp: float = 0.2
    levels: int = 8
    pivot: float = 0.8

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ConfigError(f"warp mode must be one of {', '.join(MODES)}, got {self.mode!r}",
                              field="mode")
        if not (isinstance(self.max_warp, (int, float)) and 0 <= self.max_warp <= 1):
            raise ConfigError(f"max_warp must be in 0..1, got {self.max_warp!r}",
                              field="max_warp")
        if not (isinstance(self.levels, int) and 1 <= self.levels <= 63):
            raise ConfigError(f"warp levels must be in 1..63, got {self.levels!r}",
                              field="levels")
        if not (isinstance(self.pivot, (int, float)) and 0 < self.pivot < 1):
            raise ConfigError(f"warp pivot must be in (0, 1), got {self.pivot!r}", field="pivot")

    @property
    def enabled(self) -> bool:
        return self.mode != "none"

    @property
    def n_levels(self) -> int:
        return 2 * self.levels + 1

    def factor(self, k: int) -> float:
        """alpha of level k in -levels..levels."""
        return (1.0 + self.max_warp) ** (k / self.levels)


def _mel(f: np.ndarray) -> np.ndarray:
    import librosa

    return librosa.hz_to_mel(f, htk=False)  # the front-end's filterbank scale (Slaney)


def source_position(alpha: float, cfg: WarpConfig, fe: FrontendConfig) -> np.ndarray:
    """Fractional mel-band index `(n_mels,)` each output band reads for factor `alpha`."""
    import librosa

    centres = librosa.mel_frequencies(fe.n_mels + 2, fmin=fe.fmin, fmax=fe.fmax,
                                      htk=False)[1:-1]
    top = fe.fmax
    knee = cfg.pivot * top * min(1.0, 1.0 / alpha)
    s = np.where(centres <= knee, alpha * centres,
                 top - (top - alpha * knee) * (top - centres) / (top - knee))
    m, mc = _mel(s), _mel(centres)
    pos = (m - mc[0]) / (mc[-1] - mc[0]) * (fe.n_mels - 1)
    return np.clip(pos, 0.0, fe.n_mels - 1)


@functools.lru_cache(maxsize=8)
def tables(cfg: WarpConfig, fe: FrontendConfig) -> tuple[np.ndarray, np.ndarray]:
    """(index uint8, weight uint16), each `(n_levels, n_mels)`: output band b of level k reads
    bands `index` and `index + 1` with Q8 weight `weight` (0..256) on the second. Row `levels`
    is the identity, exactly."""
    n = fe.n_mels
    if n > 255:
        raise ConfigError("frequency warping's tables hold band indices in one byte (n_mels <= "
                          "255)", field="n_mels")
    index = np.zeros((cfg.n_levels, n), dtype=np.uint8)
    weight = np.zeros((cfg.n_levels, n), dtype=np.uint16)
    for row, k in enumerate(range(-cfg.levels, cfg.levels + 1)):
        pos = source_position(cfg.factor(k), cfg, fe) if k else np.arange(n, dtype=np.float64)
        q = np.rint(pos * (1 << WEIGHT_BITS)).astype(np.int64)
        j = np.minimum(q >> WEIGHT_BITS, n - 2)  # the top band reads n - 2 and n - 1, weight 256
        index[row], weight[row] = j, q - (j << WEIGHT_BITS)
    index.setflags(write=False)
    weight.setflags(write=False)
    return index, weight


def warp_int(features_q: np.ndarray, level: int, cfg: WarpConfig,
             fe: FrontendConfig) -> np.ndarray:
    """int16 `(frames, n_mels)` -> int16, warped by level `level` (-levels..levels), as the
    firmware computes it. Level 0 (and mode none) return the input unchanged."""
    x = np.asarray(features_q)
    if x.dtype != np.int16 or x.ndim != 2 or x.shape[1] != fe.n_mels:
        raise ValueError(f"expected int16 frames (k, {fe.n_mels}), got {x.dtype} {x.shape}")
    if not cfg.enabled or level == 0:
        return x.copy()
    index, weight = tables(cfg, fe)
    j = index[level + cfg.levels].astype(np.int64)
    w = weight[level + cfg.levels].astype(np.int64)
    a, b = x[:, j].astype(np.int64), x[:, j + 1].astype(np.int64)
    return np.clip(a + round_shift((b - a) * w, WEIGHT_BITS), -32768, 32767).astype(np.int16)


def warp_float(features, levels, cfg: WarpConfig, fe: FrontendConfig):
    """The float twin for training: float log-mel `(B, frames, n_mels)` (torch) warped by one
    level per utterance (`levels`: `(B,)` ints) -> the same shape."""
    import torch

    if not cfg.enabled:
        return features
    index, weight = tables(cfg, fe)
    rows = torch.as_tensor(np.asarray(levels), dtype=torch.long) + cfg.levels
    j = torch.from_numpy(index.astype(np.int64))[rows].to(features.device)  # (B, n_mels)
    w = torch.from_numpy(weight.astype(np.float32))[rows].to(features.device, features.dtype) \
        / (1 << WEIGHT_BITS)
    gather = lambda idx: torch.gather(  # noqa: E731
        features, 2, idx[:, None, :].expand(-1, features.shape[1], -1))
    a, b = gather(j), gather(j + 1)
    return a + (b - a) * w[:, None, :]
