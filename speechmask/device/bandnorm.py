"""Streaming per-band normalisation: a device-side step that moves each utterance's band means
to a fixed target, so the microphone's band shape and the speaker's level and average spectrum
(speaker cues in every frame, which gating whole segments cannot touch) do not leave the device.

    y_t[b] = x_t[b] - m_t[b] + target[b]

`m_t` is the running mean of band `b` over frames `0..t`: the plain mean while `t < frames`
(warm-up), then an exponential average of weight `1 / frames`. One recursion covers both:
`m_t = m_(t-1) + (x_t - m_(t-1)) / n_t`, `n_t = min(t + 1, frames)`. It reads no frame after `t`
(causal), costs one subtraction, one division and two additions per band and frame, and keeps
`n_mels` int32 means of state. A constant offset per band (a microphone's response, a gain) is
removed exactly: `y(x + c) == y(x)` bit for bit in the integer path.

Three implementations that agree: `normalize_int` (the firmware's arithmetic in numpy, int16
Q`log_frac_bits` features in and out, the mean kept in int32 with `frac_bits` more fractional
bits), `StreamingBandNormInt` (the same with carried state, any chunking), and `normalize_float`
(torch, float log-mel, for training; within a few LSB of the integer path).

Integer arithmetic (C's on two's complement):
    d   = (x << F) - m                                   int32, |d| < 2**(16 + F)
    m  += sign(d) * ((|d| + n // 2) // n)                 division rounded half away from zero
    y   = sat16(x - ((m + 2**(F-1)) >> F) + target)       round half up, arithmetic shift
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..errors import ConfigError
from ..features_int import round_shift

MODES = ("none", "mean")


@dataclass(frozen=True)
class BandNormConfig:
    """`mode` none (the step is off) or mean; `frames` the running mean's length (warm-up and
    the exponential average's weight, 256 frames = 2.56 s at a 10 ms hop); `frac_bits` the extra
    fractional bits of the int32 mean; `target` the per-band means every utterance is moved to,
    in the front-end's int16 Q`log_frac_bits` units (calibrated on training features by
    `calibrate`; empty while the mode is none)."""

    mode: str = "none"
    frames: int = 256
    frac_bits: int = 8
    target: tuple[int, ...] = field(default=())

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ConfigError(f"band-norm mode must be one of {', '.join(MODES)}, got "
                              f"{self.mode!r}", field="mode")
        if not 1 <= self.frames <= 1 << 15:
            raise ConfigError(f"band-norm frames must be in 1..32768, got {self.frames}",
                              field="frames")
        if not 1 <= self.frac_bits <= 14:  # (x << F) of an int16 must fit int32 with its sign
            raise ConfigError(f"band-norm frac_bits must be in 1..14, got {self.frac_bits}",
                              field="frac_bits")
        if any(not -32768 <= int(v) <= 32767 for v in self.target):
            raise ConfigError("band-norm target must be int16 values", field="target")
        if self.mode != "none" and not self.target:
            raise ConfigError("band-norm mode 'mean' needs a target (see bandnorm.calibrate)",
                              field="target")

    @property
    def enabled(self) -> bool:
        return self.mode != "none"


def calibrate(features_q: list[np.ndarray], frames: int = BandNormConfig.frames,
              frac_bits: int = BandNormConfig.frac_bits) -> BandNormConfig:
    """The mean mode with `target` the per-band mean of int16 training features (every frame of
    every utterance weighs the same), rounded half away from zero."""
    if not features_q:
        raise ConfigError("band-norm calibration needs at least one utterance", field="target")
    total = sum(np.asarray(f, dtype=np.int64).sum(0) for f in features_q)
    count = sum(len(f) for f in features_q)
    if count == 0:
        raise ConfigError("band-norm calibration needs at least one frame", field="target")
    mean = _div_round(total, count)
    return BandNormConfig("mean", frames, frac_bits, tuple(int(v) for v in mean))


def _div_round(d: np.ndarray, n: int) -> np.ndarray:
    """d / n rounded half away from zero (C: d >= 0 ? (d + n/2) / n : -((-d + n/2) / n))."""
    return np.sign(d) * ((np.abs(d) + n // 2) // n)


class StreamingBandNormInt:
    """The integer step frame by frame with carried state (the int32 means and the frame count,
    saturating at `frames`), as the firmware runs it. `push(features)` takes any number of new
    int16 frames `(k, n_mels)` and returns their normalised frames; any chunking of an utterance
    gives `normalize_int` of the whole, exactly."""

    def __init__(self, cfg: BandNormConfig, n_mels: int):
        if cfg.enabled and len(cfg.target) != n_mels:
            raise ConfigError(f"band-norm target has {len(cfg.target)} bands, the front-end "
                              f"{n_mels}", field="target")
        self.cfg, self.n_mels = cfg, n_mels
        self._target = np.asarray(cfg.target or (0,) * n_mels, dtype=np.int64)
        self.reset()

    def reset(self) -> None:
        self.mean = np.zeros(self.n_mels, dtype=np.int64)  # int32 on the device (bound above)
        self.count = 0

    def push(self, frames_q: np.ndarray) -> np.ndarray:
        x = np.asarray(frames_q)
        if x.dtype != np.int16 or x.ndim != 2 or x.shape[1] != self.n_mels:
            raise ValueError(f"expected int16 frames (k, {self.n_mels}), got {x.dtype} {x.shape}")
        if not self.cfg.enabled:
            return x.copy()
        f = self.cfg.frac_bits
        out = np.empty_like(x)
        for t, row in enumerate(x.astype(np.int64)):
            self.count = min(self.count + 1, self.cfg.frames)
            self.mean += _div_round((row << f) - self.mean, self.count)
            y = row - round_shift(self.mean, f) + self._target
            out[t] = np.clip(y, -32768, 32767)
        return out


def normalize_int(features_q: np.ndarray, cfg: BandNormConfig) -> np.ndarray:
    """Whole-utterance integer step: int16 `(n_frames, n_mels)` -> int16, same shape."""
    x = np.asarray(features_q)
    return StreamingBandNormInt(cfg, x.shape[-1]).push(x)


def normalize_float(features, cfg: BandNormConfig, log_frac_bits: int):
    """The float twin: float log-mel `(..., frames, n_mels)` (a torch tensor or numpy array,
    natural log units) -> the same type and shape. `target` is read in Q`log_frac_bits` units.
    The recursion in closed form: the running plain mean (a cumulative sum) during the warm-up,
    then the exponential average as a first-order IIR filter (`scipy.signal.lfilter`, started
    from the warm-up's last mean), so that no Python loop runs over frames. Not differentiable:
    it shapes what is sent, and nothing is trained through it."""
    if not cfg.enabled:
        return features
    from scipy.signal import lfilter

    is_torch = not isinstance(features, np.ndarray)
    x = features.detach().cpu().double().numpy() if is_torch else features.astype(np.float64)
    steps, n = x.shape[-2], cfg.frames
    mean = np.cumsum(x[..., :n, :], axis=-2) / np.arange(1, min(steps, n) + 1)[:, None]
    if steps > n:
        a = 1.0 - 1.0 / n
        zi = a * mean[..., -1:, :]
        tail, _ = lfilter([1.0 / n], [1.0, -a], x[..., n:, :], axis=-2, zi=zi)
        mean = np.concatenate([mean, tail], axis=-2)
    target = np.asarray(cfg.target, dtype=np.float64) / (1 << log_frac_bits)
    y = x - mean + target
    if not is_torch:
        return y.astype(features.dtype)
    import torch

    return torch.from_numpy(y).to(features.dtype).to(features.device)
