"""Integer log-mel reference: the exact arithmetic of the C firmware, in numpy.

int16 PCM in, int16 features out (Q`log_frac_bits` natural log), bit-exact with the firmware.
Every step uses integer operations that C reproduces exactly (int32 data, int64 products,
arithmetic right shifts that round half up):

1. window:  x[n] = (pcm[n] * win_q15[n] + 2**(s-1)) >> s,  s = window_shift.  |x| <= 2**(30-s).
2. FFT:     the real frame of N = n_fft points (zero-padded at the end) as a complex FFT of
            M = N/2 points, z[m] = x[2m] + i x[2m+1]: radix-2 decimation in time with Q31
            twiddles, every butterfly halving its outputs so that nothing grows:
                t  = b * w / 2:  t_re = hi(b_re w_re) + hi(-b_im w_im),
                                 t_im = hi(b_re w_im) + hi(b_im w_re),  hi(v) = (v + 2**31) >> 32
                a' = (a >> 1) + t,   b' = (a >> 1) - t
            (on a Cortex-M7 each `hi` sum is one SMMULR and one SMMLAR/SMMLSR, each output one
            add with a shifted operand: firmware/core/sm_dsp.h). The outputs are Z / M.
            Then the split, for k = 0..M with Z[M] = Z[0]: E = Z[k] + conj(Z[M-k]),
            D = -i (Z[k] - conj(Z[M-k])), and X[k] = (E >> 1) + D * W_N^k / 2, the product as in
            the butterfly (W_N^M = -1 is exactly -2**31 in Q31). X = DFT / M: half the
            butterflies of an N-point complex FFT. Halving keeps every value below the input's
            magnitude: the components of z are <= 2**(30-s), those of E and D <= 2*sqrt(2)*
            2**(30-s), below 2**31 for s >= 1 (the default s = 2 gives 2**(30-s) = 2**28, so
            quiet speech keeps about 4 bits below a PCM step through the 8 halvings).
3. power:   P[k] = (re**2 + im**2) >> p for k <= n_fft/2, of X (int64, p = power_shift;
            truncated: a rounding term costs two instructions a bin and buys nothing here).
4. mel:     M[m] = sum_k P[k] * mel_q15[m, k] (int64; by Parseval < 2**63, `check_layout`).
5. log:     ln(M + floor_q) - mel_scale_log2 * ln 2 via integer log2 (MSB position plus a
            257-entry Q16 table of log2(1 + i/256) with linear interpolation), times ln 2 in Q30,
            rounded to Q`log_frac_bits` and saturated to int16.

`check_layout` refuses layouts whose worst case could overflow.
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
    # W_N^k for k = 0..N/2, built symmetric: W^(N/2 - k) = -conj(W^k) exactly for 0 < k < N/2
    # (the firmware computes the split's bins k and N/2 - k from one twiddle); W^(N/2) = -1 is
    # exactly -2**31, W^0 = 1 is 2**31 - 1
    m = n // 2
    k = np.arange(m // 2 + 1)
    c = np.clip(np.round(np.cos(2 * np.pi * k / n) * Q31), -Q31, Q31 - 1).astype(np.int64)
    sn = np.clip(np.round(-np.sin(2 * np.pi * k / n) * Q31), -Q31, Q31 - 1).astype(np.int64)
    tw_re = np.concatenate([c, -c[1:-1][::-1], [-Q31]])
    tw_im = np.concatenate([sn, sn[1:-1][::-1], [0]])
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
    if cfg.n_fft > 2048:  # the firmware's FFT runs up to five two-stage passes (sm_frontend.c)
        raise ConfigError(f"n_fft={cfg.n_fft}: the integer front-end goes up to 2048")
    x_max = float(1 << (30 - cfg.window_shift))  # a windowed sample, either component of z
    if 2 * np.sqrt(2) * x_max + 64 >= 2 ** 31:  # E and D of the split (+ rounding slack)
        raise ConfigError(f"window_shift={cfg.window_shift} lets the FFT's split overflow "
                          f"int32 (bound {2 * np.sqrt(2) * x_max:.3g} >= 2**31); raise it")
    m = cfg.n_fft // 2
    # Parseval: sum_k |X[k]|**2 <= N * win * x_max**2 / M**2 for X = DFT / M; the mel sum of
    # P * Q15 weights stays below that over 2**power_shift times 2**15
    power_sum = cfg.n_fft * cfg.win_length * x_max ** 2 / m ** 2
    if power_sum / 2 ** cfg.power_shift * Q15 >= 2 ** 63:
        raise ConfigError(f"power_shift={cfg.power_shift} lets the mel sum overflow int64")


def _hi(v: np.ndarray) -> np.ndarray:
    """(v + 2**31) >> 32: the top word of a 64-bit product, rounded (SMMULR's rounding)."""
    return (v + (1 << 31)) >> 32


def _half_product(b_re, b_im, w_re, w_im):
    """b * w / 2 for Q31 `w`, as the firmware's SMMULR + SMMLSR / SMMLAR pairs compute it."""
    return (_hi(b_re * w_re) + _hi(-(b_im * w_im)),
            _hi(b_re * w_im) + _hi(b_im * w_re))


def fft_q31(re: np.ndarray, im: np.ndarray, cfg: FrontendConfig) -> tuple[np.ndarray, np.ndarray]:
    """Integer radix-2 DIT complex FFT over the last axis, of any power-of-two length n up to
    n_fft, every stage halved: returns DFT / n (int64 arrays holding int32 values; twiddles
    W_n^k = W_n_fft^(k n_fft / n))."""
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
        t_re, t_im = _half_product(b_re, b_im, w_re, w_im)
        a_re, a_im = a_re >> 1, a_im >> 1
        re = np.stack([a_re + t_re, a_re - t_re], axis=2).reshape(-1, n)
        im = np.stack([a_im + t_im, a_im - t_im], axis=2).reshape(-1, n)
        half *= 2
    return re.reshape(lead + (n,)), im.reshape(lead + (n,))


@functools.lru_cache(maxsize=8)
def _bitrev(n: int) -> np.ndarray:
    bits = n.bit_length() - 1
    return np.array([int(f"{i:0{bits}b}"[::-1], 2) if bits else 0 for i in range(n)], np.int64)


def real_fft_q31(x: np.ndarray, cfg: FrontendConfig) -> tuple[np.ndarray, np.ndarray]:
    """X[k] = DFT[k] / (n_fft/2), k = 0..n_fft/2, of real int64 frames `(..., n_fft)`: the
    n_fft/2-point complex FFT of the even and odd samples, then the split (module docstring)."""
    t = tables(cfg)
    m = cfg.n_fft // 2
    z_re, z_im = fft_q31(x[..., 0::2], x[..., 1::2], cfg)
    k = np.arange(m + 1)
    zk_re, zk_im = z_re[..., k % m], z_im[..., k % m]
    zc_re, zc_im = z_re[..., (m - k) % m], -z_im[..., (m - k) % m]  # conj(Z[M - k])
    e_re, e_im = zk_re + zc_re, zk_im + zc_im
    d_re, d_im = zk_im - zc_im, -(zk_re - zc_re)  # -i (Z[k] - conj(Z[M - k]))
    p_re, p_im = _half_product(d_re, d_im, t["twiddle_re_q31"], t["twiddle_im_q31"])
    return (e_re >> 1) + p_re, (e_im >> 1) + p_im


def ilog2_q16(v: np.ndarray) -> np.ndarray:
    """Integer log2 of positive int64 `v`, in Q16 (MSB position + table with interpolation)."""
    t = tables(FrontendConfig())["log2_q16"]  # table depends on no config field
    v = np.asarray(v, dtype=np.int64)
    if np.any(v <= 0):
        raise ValueError("ilog2_q16 needs positive input")
    e = np.floor(np.log2(v.astype(np.float64))).astype(np.int64)
    # float log2 can be off by one next to powers of two: fix with exact integer comparisons
    e = np.where((np.int64(1) << e) > v, e - 1, e)
    # (a positive int64 has e <= 62: no upward correction past it, where 1 << 63 overflows)
    e = np.where((e < 62) & ((np.int64(1) << np.minimum(e + 1, 62)) <= v), e + 1, e)
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
    re, im = real_fft_q31(frame, cfg)  # DFT / M, k <= n_fft/2
    power = (re ** 2 + im ** 2) >> cfg.power_shift
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
