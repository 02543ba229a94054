"""Integer log-mel reference: the exact arithmetic of the C firmware, in numpy.

int16 PCM in, int16 features out (Q`log_frac_bits` natural log), bit-exact with the firmware.
Every step uses integer operations that C reproduces exactly (int32 data, int64 products,
arithmetic right shifts that round half up):

1. window:  x[n] = (pcm[n] * win_q15[n] + 2**(s-1)) >> s,  s = window_shift.  |x| < 2**(30-s).
2. FFT:     the real frame of N = n_fft points (zero-padded at the end) as a complex FFT of
            M = N/2 points, z[m] = x[2m] + i x[2m+1]: radix-2 decimation in time, Q31 twiddles
            (W_M^k = W_N^2k), each product rounded back with (a*w + 2**30) >> 31, no per-stage
            scaling. Then the split, for k = 0..M with Z[M] = Z[0]: E = Z[k] + conj(Z[M-k]),
            D = -i (Z[k] - conj(Z[M-k])), and 2X[k] = E + W_N^k D, the product rounded as above
            (k = M: W = -1 exactly, 2X = E - D). Half the butterflies of an N-point complex FFT.
            Every partial sum of Z is bounded by sum|x| <= 2**(30-s) * win/2, 8.4e8 for the
            default layout (s=8, win=400), so E and D stay below 2**31 and 2X below 2**32 (int64).
3. power:   P[k] = (re**2 + im**2 + 2**(p+1)) >> (p+2) for k <= n_fft/2, of 2X (int64,
            p = power_shift): |X|**2 / 2**p, rounded.
4. mel:     M[m] = sum_k P[k] * mel_q15[m, k] (int64; by Parseval < 2**62 for full-scale input).
5. log:     ln(M + floor_q) - mel_scale_log2 * ln 2 via integer log2 (MSB position plus a
            257-entry Q16 table of log2(1 + i/256) with linear interpolation), times ln 2 in Q30,
            rounded to Q`log_frac_bits` and saturated to int16.

Overflow caveat: the bounds above assume `window_shift >= 8` and `win_length <= 512`; the config
check and `check_layout` refuse layouts that could overflow.
"""

from __future__ import annotations

import functools

import numpy as np

from .errors import ConfigError
from .features import FrontendConfig, frame_signal, mel_filterbank, window

Q15 = 1 << 15
Q31 = 1 << 31
LOG2_TABLE_BITS = 8  # 256 intervals -> 257-entry table
LOG2_FRAC_BITS = 16
LN2_Q30 = int(round(np.log(2.0) * (1 << 30)))


def round_shift(x: np.ndarray, shift: int) -> np.ndarray:
    """(x + 2**(shift-1)) >> shift: round half up, arithmetic shift (as C on two's complement)."""
    return (x + (1 << (shift - 1))) >> shift if shift > 0 else x


@functools.lru_cache(maxsize=8)
def tables(cfg: FrontendConfig) -> dict[str, np.ndarray]:
    """Every integer table the firmware needs, generated from `cfg` (never copied by hand)."""
    check_layout(cfg)
    n = cfg.n_fft
    k = np.arange(n // 2)
    tw_re = np.clip(np.round(np.cos(2 * np.pi * k / n) * Q31), -Q31, Q31 - 1).astype(np.int64)
    tw_im = np.clip(np.round(-np.sin(2 * np.pi * k / n) * Q31), -Q31, Q31 - 1).astype(np.int64)
    bits = n.bit_length() - 2  # the complex FFT has n / 2 points
    bitrev = np.array([int(f"{i:0{bits}b}"[::-1], 2) for i in range(n // 2)], dtype=np.int64)
    mel_q15 = np.clip(np.round(mel_filterbank(cfg) * Q15), 0, Q15 - 1).astype(np.int64)
    i = np.arange((1 << LOG2_TABLE_BITS) + 1)
    log2_q16 = np.round(np.log2(1 + i / (1 << LOG2_TABLE_BITS)) * (1 << LOG2_FRAC_BITS))
    return {
        "window_q15": np.clip(np.round(window(cfg) * Q15), -Q15, Q15 - 1).astype(np.int64),
        "twiddle_re_q31": tw_re,
        "twiddle_im_q31": tw_im,
        "bitrev": bitrev,
        "mel_q15": mel_q15,
        "log2_q16": log2_q16.astype(np.int64),
        "floor_q": np.array(int(round(cfg.log_floor * 2.0 ** cfg.mel_scale_log2)), dtype=np.int64),
    }


def check_layout(cfg: FrontendConfig) -> None:
    """Refuse fixed-point layouts whose worst case could overflow int32 / int64."""
    frame_max = (1 << 15) * (1 << (15 - cfg.window_shift)) * cfg.win_length / 2  # sum|x|
    if frame_max >= 2 ** 31:
        raise ConfigError(f"window_shift={cfg.window_shift} lets the FFT overflow int32 "
                          f"(bound {frame_max:.3g} >= 2**31); raise window_shift")
    if 2 * (2 * frame_max) ** 2 >= 2 ** 63:  # |2X|**2 summed over re and im, in int64
        raise ConfigError(f"window_shift={cfg.window_shift} lets the power of 2X overflow int64 "
                          f"(bound {frame_max:.3g}); raise window_shift")
    power_sum = cfg.n_fft * cfg.win_length * float(1 << (30 - cfg.window_shift)) ** 2
    if power_sum / 2 ** cfg.power_shift * Q15 >= 2 ** 63:
        raise ConfigError(f"power_shift={cfg.power_shift} lets the mel sum overflow int64")


def fft_q31(re: np.ndarray, im: np.ndarray, cfg: FrontendConfig) -> tuple[np.ndarray, np.ndarray]:
    """Integer radix-2 DIT complex FFT over the last axis, of any power-of-two length n up to
    n_fft (int64 arrays holding int32 values; twiddles W_n^k = W_n_fft^(k n_fft / n))."""
    t = tables(cfg)
    n = re.shape[-1]
    stride = cfg.n_fft // n
    lead = re.shape[:-1]
    order = _bitrev(n)
    re = re[..., order].reshape(-1, n)
    im = im[..., order].reshape(-1, n)
    half = 1
    while half < n:
        step = stride * n // (2 * half)
        w_re = t["twiddle_re_q31"][::step][:half]
        w_im = t["twiddle_im_q31"][::step][:half]
        blocks = (re.shape[0], n // (2 * half), 2, half)
        re4, im4 = re.reshape(blocks), im.reshape(blocks)
        a_re, a_im, b_re, b_im = re4[:, :, 0], im4[:, :, 0], re4[:, :, 1], im4[:, :, 1]
        t_re = (b_re * w_re - b_im * w_im + (1 << 30)) >> 31
        t_im = (b_re * w_im + b_im * w_re + (1 << 30)) >> 31
        re = np.stack([a_re + t_re, a_re - t_re], axis=2).reshape(-1, n)
        im = np.stack([a_im + t_im, a_im - t_im], axis=2).reshape(-1, n)
        half *= 2
    return re.reshape(lead + (n,)), im.reshape(lead + (n,))


@functools.lru_cache(maxsize=8)
def _bitrev(n: int) -> np.ndarray:
    bits = n.bit_length() - 1
    return np.array([int(f"{i:0{bits}b}"[::-1], 2) if bits else 0 for i in range(n)], np.int64)


def real_fft_q31(x: np.ndarray, cfg: FrontendConfig) -> tuple[np.ndarray, np.ndarray]:
    """2X[k], k = 0..n_fft/2, of real int64 frames `(..., n_fft)`: the n_fft/2-point complex
    FFT of the even and odd samples, then the split (module docstring, step 2)."""
    t = tables(cfg)
    m = cfg.n_fft // 2
    z_re, z_im = fft_q31(x[..., 0::2], x[..., 1::2], cfg)
    k = np.arange(m + 1)
    zk_re, zk_im = z_re[..., k % m], z_im[..., k % m]
    zc_re, zc_im = z_re[..., (m - k) % m], -z_im[..., (m - k) % m]  # conj(Z[M - k])
    e_re, e_im = zk_re + zc_re, zk_im + zc_im
    d_re, d_im = zk_im - zc_im, -(zk_re - zc_re)  # -i (Z[k] - conj(Z[M - k]))
    w_re = np.append(t["twiddle_re_q31"][:m], 0)
    w_im = np.append(t["twiddle_im_q31"][:m], 0)
    p_re = (w_re * d_re - w_im * d_im + (1 << 30)) >> 31
    p_im = (w_re * d_im + w_im * d_re + (1 << 30)) >> 31
    p_re[..., m], p_im[..., m] = -d_re[..., m], -d_im[..., m]  # W_N^M = -1 exactly
    return e_re + p_re, e_im + p_im


def ilog2_q16(v: np.ndarray) -> np.ndarray:
    """Integer log2 of positive int64 `v`, in Q16 (MSB position + table with interpolation)."""
    t = tables(FrontendConfig())["log2_q16"]  # table depends on no config field
    v = np.asarray(v, dtype=np.int64)
    if np.any(v <= 0):
        raise ValueError("ilog2_q16 needs positive input")
    e = np.floor(np.log2(v.astype(np.float64))).astype(np.int64)
    # float log2 can be off by one next to powers of two: fix with exact integer comparisons
    e = np.where((np.int64(1) << e) > v, e - 1, e)
    e = np.where((np.int64(1) << np.minimum(e + 1, 62)) <= v, e + 1, e)
    frac = np.where(e >= 30, v >> np.maximum(e - 30, 0), v << np.maximum(30 - e, 0)) - (1 << 30)
    idx = frac >> (30 - LOG2_TABLE_BITS)
    rem = frac & ((1 << (30 - LOG2_TABLE_BITS)) - 1)
    interp = round_shift((t[idx + 1] - t[idx]) * rem, 30 - LOG2_TABLE_BITS)
    return (e << LOG2_FRAC_BITS) + t[idx] + interp


def frames_to_features(frames_pcm: np.ndarray, cfg: FrontendConfig) -> np.ndarray:
    """int16 frames `(n_frames, win_length)` -> int16 features `(n_frames, n_mels)`."""
    t = tables(cfg)
    x = round_shift(frames_pcm.astype(np.int64) * t["window_q15"], cfg.window_shift)
    frame = np.zeros(frames_pcm.shape[:-1] + (cfg.n_fft,), dtype=np.int64)
    frame[..., : cfg.win_length] = x
    re2, im2 = real_fft_q31(frame, cfg)  # 2X[k], k <= n_fft/2
    power = round_shift(re2 ** 2 + im2 ** 2, cfg.power_shift + 2)
    mel = power @ t["mel_q15"].T + t["floor_q"]
    log2 = ilog2_q16(mel) - (cfg.mel_scale_log2 << LOG2_FRAC_BITS)
    out = round_shift(log2 * LN2_Q30, LOG2_FRAC_BITS + 30 - cfg.log_frac_bits)
    return np.clip(out, -32768, 32767).astype(np.int16)


def log_mel_int(pcm: np.ndarray, cfg: FrontendConfig = FrontendConfig()) -> np.ndarray:
    """Whole-utterance integer front-end. pcm: int16 `(n_samples,)` -> int16 `(n_frames, n_mels)`."""
    pcm = np.asarray(pcm)
    if pcm.dtype != np.int16 or pcm.ndim != 1:
        raise ValueError(f"expected 1-D int16 PCM, got {pcm.dtype} {pcm.shape}")
    frames = frame_signal(pcm, cfg)
    if frames.shape[0] == 0:
        return np.zeros((0, cfg.n_mels), dtype=np.int16)
    return frames_to_features(frames, cfg)


def dequantize(features_q: np.ndarray, cfg: FrontendConfig = FrontendConfig()) -> np.ndarray:
    """int16 Q`log_frac_bits` features -> float32 natural-log units (what the float path computes)."""
    return np.asarray(features_q, dtype=np.float32) / np.float32(1 << cfg.log_frac_bits)


class StreamingLogMelInt:
    """Frame-by-frame integer front-end with carried state, as the firmware runs it.

    `push(chunk)` takes any number of new int16 samples and returns the features of every frame
    completed so far, `(k, n_mels)`. Concatenating the outputs over any chunking equals
    `log_mel_int` of the whole signal exactly. State: the last `< win_length` samples.
    """

    def __init__(self, cfg: FrontendConfig = FrontendConfig()):
        self.cfg = cfg
        self._pending = np.zeros(0, dtype=np.int16)

    def push(self, chunk: np.ndarray) -> np.ndarray:
        chunk = np.asarray(chunk)
        if chunk.dtype != np.int16:
            raise ValueError(f"expected int16 PCM, got {chunk.dtype}")
        buf = np.concatenate([self._pending, chunk.reshape(-1)])
        n = self.cfg.n_frames(buf.size)
        self._pending = buf[n * self.cfg.hop_length:]
        if n == 0:
            return np.zeros((0, self.cfg.n_mels), dtype=np.int16)
        return frames_to_features(frame_signal(buf, self.cfg)[:n], self.cfg)

    def reset(self) -> None:
        self._pending = np.zeros(0, dtype=np.int16)
