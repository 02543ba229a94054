"""Log-mel front-end: `FrontendConfig` (single source of truth) and the float torch implementation.

The integer reference that the firmware mirrors lives in `speechmask.features_int`; both compute
the same quantity, `ln(mel_power + log_floor)` of the 16 kHz waveform scaled to [-1, 1), framed
without centring (frame t covers samples [t*hop, t*hop + win)), so a device can stream it.
"""

from __future__ import annotations

import functools
from dataclasses import asdict, dataclass

from .errors import ConfigError


def exact_div(x: float, y: float, what: str) -> int:
    """`x / y` as an int, or ConfigError if it is not whole."""
    q = x / y
    if abs(q - round(q)) > 1e-9:
        raise ConfigError(f"{what}: {x} / {y} is not a whole number")
    return int(round(q))


@dataclass(frozen=True)
class FrontendConfig:
    """Every constant of the front-end. The C header and TFLite export are generated from this.

    Fixed-point fields describe the integer path (see `features_int`): the window is Q15, the
    windowed frame is `(pcm * window_q15) >> window_shift`, the FFT runs in int32 with Q31
    twiddles and halves every stage (it returns DFT / (n_fft/2)), power is shifted right by
    `power_shift` (truncated), mel weights are Q15, and the
    output is `round(ln(mel + log_floor) * 2**log_frac_bits)` as int16.
    """

    sample_rate: int = 16000
    win_ms: float = 25.0
    hop_ms: float = 10.0
    n_fft: int = 512
    n_mels: int = 40
    fmin: float = 60.0
    fmax: float = 7600.0
    log_floor: float = 1e-6
    # fixed-point layout of the integer path
    window_shift: int = 2
    power_shift: int = 11
    log_frac_bits: int = 10
    # the integer FFT's arithmetic: 2 halves every stage (1, before it, did not scale and used
    # window_shift 8 / power_shift 14); only the integer path depends on these three fields
    int_layout: int = 2

    def __post_init__(self) -> None:
        if self.n_fft & (self.n_fft - 1) or self.n_fft < 16:
            raise ConfigError(f"n_fft must be a power of two >= 16, got {self.n_fft}")
        if self.win_length > self.n_fft:
            raise ConfigError(f"window ({self.win_length} samples) longer than n_fft {self.n_fft}")
        if self.hop_length > self.win_length:
            raise ConfigError("hop longer than the window would skip samples")
        if not 0 <= self.fmin < self.fmax <= self.sample_rate / 2:
            raise ConfigError(f"need 0 <= fmin < fmax <= Nyquist, got {self.fmin}, {self.fmax}")
        if self.log_floor <= 0:
            raise ConfigError("log_floor must be positive")
        if self.int_layout != 2:
            raise ConfigError(f"int_layout {self.int_layout} is not this version's (2)")
        if self.mel_scale_log2 < 0 or self.log_floor * 2.0 ** self.mel_scale_log2 < 1:
            raise ConfigError("fixed-point layout leaves no resolution at the log floor")

    @property
    def win_length(self) -> int:
        return exact_div(self.sample_rate * self.win_ms, 1000, "window length in samples")

    @property
    def hop_length(self) -> int:
        return exact_div(self.sample_rate * self.hop_ms, 1000, "hop length in samples")

    @property
    def n_bins(self) -> int:
        return self.n_fft // 2 + 1

    @property
    def frames_per_second(self) -> float:
        return self.sample_rate / self.hop_length

    @property
    def mel_scale_log2(self) -> int:
        """Integer mel energy = float mel energy * 2**mel_scale_log2 (see features_int)."""
        # pcm Q15 times window Q15, shifted; the FFT divides by n_fft/2 (a halving per stage)
        frame_bits = 15 + 15 - self.window_shift - (self.n_fft.bit_length() - 2)
        return 2 * frame_bits - self.power_shift + 15  # power, shifted, times Q15 mel weights

    def n_frames(self, n_samples: int) -> int:
        """Frames in a waveform of `n_samples` (no padding: a frame needs a whole window)."""
        return 0 if n_samples < self.win_length else 1 + (n_samples - self.win_length) // self.hop_length

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "FrontendConfig":
        unknown = set(d) - set(cls.__dataclass_fields__)
        if unknown:
            raise ConfigError(f"unknown front-end field(s): {', '.join(sorted(unknown))}")
        if "int_layout" not in d:  # saved before layout 2: its shifts were for the unscaled FFT
            d = {k: v for k, v in d.items() if k not in ("window_shift", "power_shift")}
        return cls(**d)


@functools.lru_cache(maxsize=8)
def window(cfg: FrontendConfig) -> np.ndarray:
    """Periodic Hann window, float64 `(win_length,)`."""
    import numpy as np  # here: `speechmask --help` reads FrontendConfig without numpy

    n = np.arange(cfg.win_length)
    return 0.5 - 0.5 * np.cos(2 * np.pi * n / cfg.win_length)


@functools.lru_cache(maxsize=8)
def mel_filterbank(cfg: FrontendConfig) -> np.ndarray:
    """Triangular mel filters (Slaney mel scale, peak 1, no area normalisation): float64
    `(n_mels, n_bins)`. Peak-1 triangles quantise well to Q15 for the integer path."""
    import librosa
    import numpy as np

    fb = librosa.filters.mel(sr=cfg.sample_rate, n_fft=cfg.n_fft, n_mels=cfg.n_mels,
                             fmin=cfg.fmin, fmax=cfg.fmax, htk=False, norm=None,
                             dtype=np.float64)
    if np.any(fb.sum(axis=1) == 0):
        raise ConfigError(f"{cfg.n_mels} mel bands over {cfg.fmin}-{cfg.fmax} Hz leave an empty "
                          f"band at n_fft={cfg.n_fft}; use fewer bands or a larger FFT")
    return fb


def log_mel_numpy(wave: np.ndarray, cfg: FrontendConfig = FrontendConfig()) -> np.ndarray:
    """Float64 reference in numpy. wave: `(n_samples,)` in [-1, 1) -> `(n_frames, n_mels)`."""
    import numpy as np

    frames = frame_signal(np.asarray(wave, dtype=np.float64), cfg)
    spec = np.fft.rfft(frames * window(cfg), n=cfg.n_fft, axis=-1)
    power = spec.real ** 2 + spec.imag ** 2
    return np.log(power @ mel_filterbank(cfg).T + cfg.log_floor)


def frame_signal(wave: np.ndarray, cfg: FrontendConfig) -> np.ndarray:
    """`(..., n_samples)` -> `(..., n_frames, win_length)` view, frame t at t * hop."""
    import numpy as np

    n = cfg.n_frames(wave.shape[-1])
    if n == 0:
        return np.zeros(wave.shape[:-1] + (0, cfg.win_length), dtype=wave.dtype)
    view = np.lib.stride_tricks.sliding_window_view(wave, cfg.win_length, axis=-1)
    return view[..., ::cfg.hop_length, :][..., :n, :]


@functools.cache
def _torch_module():
    import torch

    class LogMel(torch.nn.Module):
        """Differentiable log-mel. wave: `(..., n_samples)` float -> `(..., n_frames, n_mels)`."""

        def __init__(self, cfg: FrontendConfig = FrontendConfig()):
            super().__init__()
            self.cfg = cfg
            self.register_buffer("window", torch.tensor(window(cfg), dtype=torch.float32),
                                 persistent=False)
            self.register_buffer("mel_t", torch.tensor(mel_filterbank(cfg).T, dtype=torch.float32),
                                 persistent=False)

        def forward(self, wave: torch.Tensor) -> torch.Tensor:
            cfg = self.cfg
            if wave.shape[-1] < cfg.win_length:
                return wave.new_zeros(wave.shape[:-1] + (0, cfg.n_mels))
            frames = wave.unfold(-1, cfg.win_length, cfg.hop_length)
            spec = torch.fft.rfft(frames * self.window, n=cfg.n_fft, dim=-1)
            power = spec.real.square() + spec.imag.square()
            return torch.log(power @ self.mel_t + cfg.log_floor)

    return LogMel


def LogMel(cfg: FrontendConfig = FrontendConfig()):  # noqa: N802 - a class factory, used as one
    """The torch front-end as an `nn.Module` (built lazily so importing this module skips torch)."""
    return _torch_module()(cfg)


def log_mel(wave, cfg: FrontendConfig = FrontendConfig()):
    """Functional torch front-end. wave: `(..., n_samples)` -> `(..., n_frames, n_mels)`."""
    return LogMel(cfg).to(wave.device)(wave)
