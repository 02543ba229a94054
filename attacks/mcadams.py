"""McAdams-coefficient speaker anonymisation (VoicePrivacy baseline B2, Patino et al. 2021)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
from scipy.signal import lfilter

from speechmask.errors import AudioError, ConfigError

SILENT_ENERGY = 1e-20  # frame energy (sum of squares) below which a frame passes through
NOISE_FLOOR = 1e-6  # white-noise correction of lag 0, keeps Levinson well conditioned


@dataclass(frozen=True)
class McAdamsConfig:
    """Framing and LPC analysis of the transform; per-utterance alpha ~ U[alpha_low, alpha_high]."""

    winlen_ms: float = 20.0
    hop_ms: float = 10.0
    lpc_order: int = 20
    alpha_low: float = 0.5
    alpha_high: float = 0.9
    sample_rate: int = 16000

    def frame_samples(self) -> tuple[int, int]:
        """(window, hop) in samples; both must be whole numbers and 0 < hop <= window."""
        win, hop = (self.winlen_ms * self.sample_rate / 1000, self.hop_ms * self.sample_rate / 1000)
        if win != int(win) or hop != int(hop) or not 0 < hop <= win:
            raise ConfigError(f"McAdamsConfig: winlen_ms={self.winlen_ms}, hop_ms={self.hop_ms} "
                              f"at {self.sample_rate} Hz need whole samples and 0 < hop <= window")
        return int(win), int(hop)


def _levinson(frames: np.ndarray, order: int) -> np.ndarray:
    """Autocorrelation-method LPC of frames (F, N) -> a (F, order + 1) with a[:, 0] = 1.

    Silent frames get a = [1, 0, ..., 0] (identity filter), so they pass through unchanged."""
    n = frames.shape[1]
    r = np.stack([np.einsum("fn,fn->f", frames[:, :n - k], frames[:, k:])
                  for k in range(order + 1)], axis=1)
    silent = r[:, 0] <= SILENT_ENERGY
    r[silent] = np.eye(1, order + 1)
    r[:, 0] *= 1 + NOISE_FLOOR
    a = np.zeros_like(r)
    a[:, 0] = 1.0
    err = r[:, 0].copy()
    for i in range(1, order + 1):
        k = -(r[:, i] + np.einsum("fj,fj->f", a[:, 1:i], r[:, i - 1:0:-1])) / err
        a[:, 1:i] = a[:, 1:i] + k[:, None] * a[:, i - 1:0:-1]
        a[:, i] = k
        err = np.maximum(err * (1 - k * k), NOISE_FLOOR * r[:, 0])
    return a


def _warp_poles(a: np.ndarray, alpha: float) -> np.ndarray:
    """Move each complex pole pair of A(z) (F, p + 1) from angle +-phi to +-phi**alpha."""
    frames, p = a.shape[0], a.shape[1] - 1
    companion = np.zeros((frames, p, p))
    companion[:, 0, :] = -a[:, 1:]
    companion[:, np.arange(1, p), np.arange(p - 1)] = 1.0
    poles = np.linalg.eigvals(companion)  # (F, p); LAPACK returns exact conjugate pairs
    phi = np.angle(poles)
    warped_phi = np.sign(phi) * np.minimum(np.abs(phi) ** alpha, np.pi)
    poles = np.where(poles.imag != 0, np.abs(poles) * np.exp(1j * warped_phi), poles)
    coeffs = np.zeros((frames, p + 1), complex)
    coeffs[:, 0] = 1.0
    for j in range(p):  # batched np.poly: multiply by (z - pole_j)
        coeffs[:, 1:j + 2] -= poles[:, j, None] * coeffs[:, :j + 1]
    return coeffs.real


def mcadams(wave: np.ndarray, alpha: float, cfg: McAdamsConfig = McAdamsConfig()) -> np.ndarray:
    """McAdams transform of a 16 kHz mono waveform (n,) -> float32 (n,).

    Per Hann-windowed frame: LPC, residual by inverse filtering, pole angles phi -> phi**alpha
    (magnitudes kept, real poles untouched), synthesis from the residual with the new filter,
    synthesis window, overlap-add, division by the overlap-added squared window. Normalisation:
    the output is scaled down only if its peak exceeds the input's peak (no clipping, and
    alpha = 1 returns the input up to rounding); loudness is otherwise left as the filter makes it.
    """
    wave = np.asarray(wave, dtype=np.float64)
    if wave.ndim != 1 or not np.all(np.isfinite(wave)):
        raise AudioError(f"mcadams: expected a finite 1-D waveform, got shape {wave.shape}")
    if not alpha > 0:
        raise ConfigError(f"mcadams: alpha must be positive, got {alpha}")
    if wave.size == 0:
        return wave.astype(np.float32)
    win, hop = cfg.frame_samples()
    window = np.hanning(win + 1)[:-1]  # periodic Hann
    lead = win - hop  # zeros before and after, so every sample lies in full overlaps
    n_frames = -(-(wave.size + win - 2 * hop) // hop) + 1
    padded = np.zeros((n_frames - 1) * hop + win)
    padded[lead:lead + wave.size] = wave
    frames = np.lib.stride_tricks.sliding_window_view(padded, win)[::hop] * window
    a = _levinson(frames, cfg.lpc_order)
    warped = _warp_poles(a, alpha)
    out, window_sum = np.zeros_like(padded), np.zeros_like(padded)
    for f in range(n_frames):
        residual = lfilter(a[f], [1.0], frames[f])
        out[f * hop:f * hop + win] += lfilter([1.0], warped[f], residual) * window
        window_sum[f * hop:f * hop + win] += window * window
    out = out[lead:lead + wave.size] / np.maximum(window_sum[lead:lead + wave.size], 1e-8)
    peak_in, peak_out = np.max(np.abs(wave)), np.max(np.abs(out))
    if peak_out > peak_in:
        out *= peak_in / peak_out
    return out.astype(np.float32)


def utterance_alpha(utt_id: str, seed: int, cfg: McAdamsConfig = McAdamsConfig()) -> float:
    """alpha ~ U[alpha_low, alpha_high], a pure function of (seed, utt_id) via BLAKE2b."""
    digest = hashlib.blake2b(f"{seed}\x00{utt_id}".encode(), digest_size=8).digest()
    unit = int.from_bytes(digest, "big") / 2.0 ** 64
    return cfg.alpha_low + (cfg.alpha_high - cfg.alpha_low) * unit


def anonymise(wave: np.ndarray, utt_id: str, seed: int = 0,
              cfg: McAdamsConfig = McAdamsConfig()) -> np.ndarray:
    """McAdams transform with the utterance's own alpha (see `utterance_alpha`)."""
    return mcadams(wave, utterance_alpha(utt_id, seed, cfg), cfg)


def mcadams_cost(cfg: McAdamsConfig = McAdamsConfig()) -> dict:
    """Analytic estimate (not a measurement) of on-device work per second of audio.

    With N window samples, H hop samples, p = lpc_order and frame_rate = sample_rate / H:
      macs_per_second = frame_rate * (N                 analysis window
                               + (p + 1) * N     autocorrelation, lags 0..p
                               + p**2            Levinson-Durbin
                               + 10 * p**3       roots: companion-matrix eigenvalues (QR), estimate
                               + p**2            polynomial rebuild from warped poles
                               + 2 * (p + 1) * N inverse (FIR) + synthesis (IIR) filtering
                               + N + H)          synthesis window + overlap-add, 1/window-sum gain
      (the p angle warps, atan2/pow/sincos per pole, are left out as negligible).
    weight_bytes = 2 * (N + H): int16 Hann table and int16 reciprocal overlap-added window over
    one hop. activation_bytes = 4 * (3N + 3(p + 1) + p**2 + 2p): float32 frame, residual/synthesis
    and overlap-add buffers, autocorrelation, old and new LPC coefficients, companion matrix and
    the complex roots, all held at once.
    """
    n, hop = cfg.frame_samples()
    p = cfg.lpc_order
    per_frame = n + (p + 1) * n + p ** 2 + 10 * p ** 3 + p ** 2 + 2 * (p + 1) * n + n + hop
    return {"params": 0,
            "macs_per_second": int(round(cfg.sample_rate / hop * per_frame)),
            "weight_bytes": 2 * (n + hop),
            "activation_bytes": 4 * (3 * n + 3 * (p + 1) + p ** 2 + 2 * p)}
