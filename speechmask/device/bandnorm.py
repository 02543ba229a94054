"""Streaming per-band normalisation: a device-side step that moves each utterance's band means
to a fixed target, so the microphone's band shape and the speaker's level and average spectrum
(speaker cues in every frame, which gating whole segments cannot touch) do not leave the device;
in the `scale` mode it also moves each band's mean absolute deviation to a fixed target, so how
much each band varies (the speaker's spectral dynamics) does not leave it either.

    mean:   y_t[b] = x_t[b] - m_t[b] + target[b]
    scale:  e_t[b] = x_t[b] - m_t[b],  y_t[b] = e_t[b] * scale[b] / max(a_t[b], floor[b])
                     + target[b]

`m_t` is the running mean of band `b` over frames `0..t`: the plain mean while `t < frames`
(warm-up), then an exponential average of weight `1 / frames`. One recursion covers both:
`m_t = m_(t-1) + (x_t - m_(t-1)) / n_t`, `n_t = min(t + 1, frames)`. `a_t` is the same running
mean of `|e_t|`. The mean absolute deviation, not the standard deviation: it needs no square
(which would overflow int32) and no square root on the device, and screened alike (CHANGELOG,
#15). `floor = scale / max_gain` bounds the gain where a band barely moves (the warm-up's first
frames, steady noise). The step reads no frame after `t` (causal); the mean mode costs one
subtraction, one division and two additions per band and frame and keeps `n_mels` int32 means
of state, the scale mode twice that and a multiplication. A constant offset per band (a
microphone's response, a gain) is removed exactly: `y(x + c) == y(x)` bit for bit in the
integer path, in both modes.

Three implementations that agree: `normalize_int` (the firmware's arithmetic in numpy, int16
Q`log_frac_bits` features in and out, the mean kept in int32 with `frac_bits` more fractional
bits), `StreamingBandNormInt` (the same with carried state, any chunking), and `normalize_float`
(torch, float log-mel, for training; within a few LSB of the integer path).

Integer arithmetic (C's on two's complement):
    d   = (x << F) - m                                   int32, |d| < 2**(16 + F)
    m  += sign(d) * ((|d| + n // 2) // n)                 division rounded half away from zero
    mean:  y = sat16(x - ((m + 2**(F-1)) >> F) + target)  round half up, arithmetic shift
    scale: e = sat16(x - ((m + 2**(F-1)) >> F))
           a += div((|e| << F) - a, n)                    0 <= a <= 2**(15 + F)
           y = sat16(div(e * scale, max((a + 2**(F-1)) >> F, floor)) + target)
                                                          |e * scale| < 2**30: int32
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..errors import ConfigError
from ..features_int import round_shift

MODES = ("none", "mean", "scale")


@dataclass(frozen=True)
class BandNormConfig:
    """`mode` none (the step is off), mean or scale; `frames` the running means' length (warm-up
    and the exponential average's weight, 256 frames = 2.56 s at a 10 ms hop); `frac_bits` the
    extra fractional bits of the int32 means; `target` the per-band means every utterance is
    moved to and `scale` (the scale mode) the per-band mean absolute deviations, in the
    front-end's int16 Q`log_frac_bits` units (calibrated on training features by `calibrate`;
    empty while unused); `max_gain` the largest factor the scale mode multiplies a deviation by."""

    mode: str = "none"
    frames: int = 256
    frac_bits: int = 8
    target: tuple[int, ...] = field(default=())
    scale: tuple[int, ...] = field(default=())
    max_gain: int = 8

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
            raise ConfigError(f"band-norm mode {self.mode!r} needs a target (see "
                              "bandnorm.calibrate)", field="target")
        if self.mode == "scale" and len(self.scale) != len(self.target):
            raise ConfigError("band-norm mode 'scale' needs a scale per band (see "
                              "bandnorm.calibrate)", field="scale")
        if any(not 1 <= int(v) <= 32767 for v in self.scale):
            raise ConfigError("band-norm scale must be int16 values >= 1", field="scale")
        if not 1 <= self.max_gain <= 1 << 10:
            raise ConfigError(f"band-norm max_gain must be in 1..1024, got {self.max_gain}",
                              field="max_gain")

    @property
    def enabled(self) -> bool:
        return self.mode != "none"

    @property
    def floor(self) -> np.ndarray:
        """Per band, the least deviation the scale mode divides by: scale / max_gain, >= 1."""
        return np.maximum(_div_round(np.asarray(self.scale, dtype=np.int64), self.max_gain), 1)


def calibrate(features_q: list[np.ndarray], frames: int = BandNormConfig.frames,
              frac_bits: int = BandNormConfig.frac_bits, mode: str = "mean",
              max_gain: int = BandNormConfig.max_gain) -> BandNormConfig:
    """`mode` (mean or scale) with `target` the per-band mean of int16 training features (every
    frame of every utterance weighs the same) and, for scale, `scale` the per-band mean of
    `|e|`, the deviation from the running mean as the step computes it; both rounded half away
    from zero."""
    if not features_q:
        raise ConfigError("band-norm calibration needs at least one utterance", field="target")
    count = sum(len(f) for f in features_q)
    if count == 0:
        raise ConfigError("band-norm calibration needs at least one frame", field="target")
    total = sum(np.asarray(f, dtype=np.int64).sum(0) for f in features_q)
    cfg = BandNormConfig("mean", frames, frac_bits,
                         tuple(int(v) for v in _div_round(total, count)))
    if mode == "mean":
        return cfg
    if mode != "scale":
        raise ConfigError(f"band-norm calibration mode must be mean or scale, got {mode!r}",
                          field="mode")
    scale = np.clip(_div_round(_deviation_sum(features_q, frames, frac_bits), count), 1, 32767)
    return BandNormConfig("scale", frames, frac_bits, cfg.target,
                          tuple(int(v) for v in scale), max_gain)


def _deviation_sum(features_q: list[np.ndarray], frames: int, frac_bits: int,
                   batch: int = 64) -> np.ndarray:
    """Per band, the sum over every frame of `|e|`, the deviation from the running mean as the
    mean mode computes it (`_mean_step`, the arithmetic of `StreamingBandNormInt`). Utterances
    run side by side, `batch` at a time, padded to the longest: the frame count `n_t` is the same
    for all of them at frame `t`, so one pass over frames serves a batch (about 12 times faster
    than a pass per utterance on 300 utterances of 150-400 frames)."""
    n_mels = np.asarray(features_q[0]).shape[-1]
    total = np.zeros(n_mels, dtype=np.int64)
    order = sorted(features_q, key=len)  # similar lengths together: little padding
    for i in range(0, len(order), batch):
        group = order[i:i + batch]
        steps = max(len(f) for f in group)
        x = np.zeros((len(group), steps, n_mels), dtype=np.int64)
        for j, f in enumerate(group):
            x[j, :len(f)] = f
        lengths = np.array([len(f) for f in group])
        mean = np.zeros((len(group), n_mels), dtype=np.int64)
        for t in range(steps):
            e = np.clip(_mean_step(mean, x[:, t], min(t + 1, frames), frac_bits), -32768, 32767)
            total += np.abs(e[lengths > t]).sum(0)
    return total


def _mean_step(mean: np.ndarray, x: np.ndarray, n: int, frac_bits: int) -> np.ndarray:
    """One frame of the running mean, in place: `mean` (int32 on the device) takes frame `x`
    (int64 rows of int16 values, any leading shape) with count `n`; returns `x` minus the mean,
    rounded to the features' units (not yet saturated)."""
    mean += _div_round((x << frac_bits) - mean, n)
    return x - round_shift(mean, frac_bits)


def _div_round(d: np.ndarray, n) -> np.ndarray:
    """d / n (n > 0, a number or an array) rounded half away from zero (C: d >= 0 ?
    (d + n/2) / n : -((-d + n/2) / n))."""
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
        self._scale, self._floor = np.asarray(cfg.scale, dtype=np.int64), cfg.floor
        self.reset()

    def reset(self) -> None:
        self.mean = np.zeros(self.n_mels, dtype=np.int64)  # int32 on the device (bound above)
        self.dev = np.zeros(self.n_mels, dtype=np.int64)   # int32 too (scale mode)
        self.count = 0

    def push(self, frames_q: np.ndarray) -> np.ndarray:
        x = np.asarray(frames_q)
        if x.dtype != np.int16 or x.ndim != 2 or x.shape[1] != self.n_mels:
            raise ValueError(f"expected int16 frames (k, {self.n_mels}), got {x.dtype} {x.shape}")
        if not self.cfg.enabled:
            return x.copy()
        f = self.cfg.frac_bits
        out = np.empty_like(x)
        scale = self.cfg.mode == "scale"
        for t, row in enumerate(x.astype(np.int64)):
            self.count = min(self.count + 1, self.cfg.frames)
            e = _mean_step(self.mean, row, self.count, f)
            if scale:
                e = np.clip(e, -32768, 32767)
                self.dev += _div_round((np.abs(e) << f) - self.dev, self.count)
                e = _div_round(e * self._scale,
                               np.maximum(round_shift(self.dev, f), self._floor))
            out[t] = np.clip(e + self._target, -32768, 32767)
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
    is_torch = not isinstance(features, np.ndarray)
    x = features.detach().cpu().double().numpy() if is_torch else features.astype(np.float64)
    unit = float(1 << log_frac_bits)
    e = x - _running_mean(x, cfg.frames)
    if cfg.mode == "scale":
        dev = np.maximum(_running_mean(np.abs(e), cfg.frames), cfg.floor / unit)
        e = e * (np.asarray(cfg.scale, dtype=np.float64) / unit) / dev
    y = e + np.asarray(cfg.target, dtype=np.float64) / unit
    if not is_torch:
        return y.astype(features.dtype)
    import torch

    return torch.from_numpy(y).to(features.dtype).to(features.device)


def _running_mean(x: np.ndarray, n: int) -> np.ndarray:
    """The step's running mean along frames (axis -2) in closed form: the plain mean (a cumulative
    sum) during the warm-up, then the exponential average of weight 1/n as a first-order IIR
    filter (`scipy.signal.lfilter`, started from the warm-up's last mean)."""
    from scipy.signal import lfilter

    steps = x.shape[-2]
    mean = np.cumsum(x[..., :n, :], axis=-2) / np.arange(1, min(steps, n) + 1)[:, None]
    if steps > n:
        a = 1.0 - 1.0 / n
        tail, _ = lfilter([1.0 / n], [1.0, -a], x[..., n:, :], axis=-2, zi=a * mean[..., -1:, :])
        mean = np.concatenate([mean, tail], axis=-2)
    return mean
