"""Audio constants, reading with validation, resampling, and atomic WAV writing."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import soundfile as sf

from .atomic import atomic_output
from .errors import AudioError

SAMPLE_RATE = 16000  # Hz; every waveform inside speechmask is 16 kHz mono
MIN_DURATION_S = 0.1  # shorter files cannot fill a few analysis windows
PCM_SCALE = 32768.0  # int16 full scale; float waveforms live in [-1, 1)


def read_audio(path: str | os.PathLike, *, sample_rate: int = SAMPLE_RATE,
               min_duration_s: float = MIN_DURATION_S) -> np.ndarray:
    """Read, validate, down-mix and resample one file. Returns float32 `(n_samples,)` in [-1, 1].

    Raises AudioError naming the file for unreadable, unsupported, empty, too short or
    non-finite audio.
    """
    data, sr = _decode(path)
    return validate_waveform(data, sr, source=str(path), sample_rate=sample_rate,
                             min_duration_s=min_duration_s)


def _decode(path: str | os.PathLike) -> tuple[np.ndarray, int]:
    """Decode a whole file as float32 `(n_samples, channels)`; AudioError naming the file."""
    path = Path(path)
    if not path.is_file():
        raise AudioError(f"{path}: no such audio file")
    try:
        return sf.read(str(path), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as exc:
        raise AudioError(f"{path}: unreadable or unsupported audio ({_short(exc)})") from None


def validate_waveform(data: np.ndarray, sr: int, *, source: str = "<array>",
                      sample_rate: int = SAMPLE_RATE,
                      min_duration_s: float = MIN_DURATION_S) -> np.ndarray:
    """Check and normalise a waveform `(n_samples,)` or `(n_samples, channels)` at rate `sr`.

    Returns float32 mono `(n_samples',)` at `sample_rate`.
    """
    data = np.asarray(data)
    if data.ndim == 2:
        if data.shape[1] == 0:
            raise AudioError(f"{source}: audio has no channels")
        data = data.mean(axis=1)
    elif data.ndim != 1:
        raise AudioError(f"{source}: expected 1-D or 2-D audio, got shape {data.shape}")
    if sr <= 0:
        raise AudioError(f"{source}: invalid sample rate {sr}")
    if data.size == 0:
        raise AudioError(f"{source}: empty audio (0 samples)")
    if not np.all(np.isfinite(data)):
        raise AudioError(f"{source}: audio contains NaN or infinite samples")
    duration = data.size / sr
    if duration < min_duration_s:
        raise AudioError(f"{source}: too short ({duration:.3f} s < {min_duration_s} s)")
    data = data.astype(np.float32, copy=False)
    if sr != sample_rate:
        data = resample(data, sr, sample_rate)
    return data


def resample(data: np.ndarray, sr_in: int, sr_out: int) -> np.ndarray:
    """Band-limited resampling (librosa's soxr backend). `(n,)` -> `(n * sr_out / sr_in,)`."""
    import librosa  # lazy: keeps `speechmask --help` fast

    return librosa.resample(data, orig_sr=sr_in, target_sr=sr_out, res_type="soxr_hq").astype(
        np.float32)


def to_pcm16(data: np.ndarray) -> np.ndarray:
    """Float `[-1, 1]` -> int16 PCM, rounding and clipping (what the device's ADC path delivers)."""
    return np.clip(np.round(np.asarray(data, dtype=np.float64) * PCM_SCALE), -32768, 32767).astype(
        np.int16)


def from_pcm16(pcm: np.ndarray) -> np.ndarray:
    """int16 PCM -> float32 in [-1, 1)."""
    return (np.asarray(pcm, dtype=np.float32) / PCM_SCALE).astype(np.float32)


def read_adc(path: str | os.PathLike) -> np.ndarray:
    """A file as the device's ADC delivers it: 16 kHz mono, rounded to 16-bit, as float32."""
    return from_pcm16(to_pcm16(read_audio(path)))


def write_wav(path: str | os.PathLike, data: np.ndarray, sample_rate: int = SAMPLE_RATE) -> None:
    """Write 16-bit PCM WAV atomically: a temp file in the same folder, then rename.

    A crash never leaves a half-written file under `path`.
    """
    pcm = data if np.asarray(data).dtype == np.int16 else to_pcm16(data)
    with atomic_output(path) as tmp:
        sf.write(tmp, pcm, sample_rate, subtype="PCM_16", format="WAV")


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write a text file atomically (temp file + rename)."""
    with atomic_output(path) as tmp:
        Path(tmp).write_text(text, encoding="utf-8")


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[-1] if text else type(exc).__name__


def probe_audio(path: str | os.PathLike, *, min_duration_s: float = MIN_DURATION_S) -> float:
    """Fully decode and validate a file without resampling; return its duration in seconds.

    Used when building manifests, so a bad file is found once, up front, not mid-training.
    """
    data, sr = _decode(path)
    validate_waveform(data, sr, source=str(path), sample_rate=sr, min_duration_s=min_duration_s)
    return data.shape[0] / sr


def describe_audio(path: str | os.PathLike, sample_rate: int = SAMPLE_RATE) -> dict:
    """What reading `path` will do to it, from its header alone: `sample_rate`, `channels`,
    `resampled` (from another rate to `sample_rate`), `downmixed` (several channels averaged),
    and `truncated`: a WAV whose data chunk promises more bytes than the file holds (libsndfile
    reads what is there without a word), with `declared_s` and `present_s`. AudioError for a
    file libsndfile cannot open."""
    path = Path(path)
    try:
        info = sf.info(str(path))
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as exc:
        raise AudioError(f"{path}: unreadable or unsupported audio ({_short(exc)})") from None
    out = {"sample_rate": int(info.samplerate), "channels": int(info.channels),
           "resampled": int(info.samplerate) != sample_rate, "downmixed": info.channels > 1,
           "truncated": False}
    declared = _wav_data_bytes(path)
    if declared is not None:
        promised, present, frame_bytes = declared
        if present < promised:
            rate = info.samplerate * frame_bytes
            out.update(truncated=True, declared_s=round(promised / rate, 3),
                       present_s=round(present / rate, 3))
    return out


def _wav_data_bytes(path: Path) -> tuple[int, int, int] | None:
    """(bytes the data chunk declares, bytes present, bytes per frame) of a RIFF WAV; None for
    other formats or headers this walk does not follow (RF64, a data size of 0xFFFFFFFF)."""
    import struct

    with open(path, "rb") as fh:
        head = fh.read(12)
        if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            return None
        size = path.stat().st_size
        frame_bytes = None
        while True:
            chunk = fh.read(8)
            if len(chunk) < 8:
                return None
            tag, length = chunk[:4], struct.unpack("<I", chunk[4:])[0]
            if tag == b"fmt ":
                fmt = fh.read(min(length, 16))
                if len(fmt) >= 14:
                    frame_bytes = struct.unpack("<H", fmt[12:14])[0]  # block align
                fh.seek(length - len(fmt) + (length & 1), 1)
            elif tag == b"data":
                if length == 0xFFFFFFFF or not frame_bytes:
                    return None
                return length, size - fh.tell(), frame_bytes
            else:
                fh.seek(length + (length & 1), 1)
