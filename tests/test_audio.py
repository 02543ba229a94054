"""Audio I/O: resampling, down-mixing, atomic writes, and a clear error for each kind of bad file."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from speechmask.audio import (SAMPLE_RATE, from_pcm16, probe_audio, read_audio, to_pcm16,
                              write_wav)
from speechmask.errors import AudioError


def tone(sr: int, seconds: float = 0.5, hz: float = 440.0) -> np.ndarray:
    t = np.arange(int(sr * seconds)) / sr
    return (0.5 * np.sin(2 * np.pi * hz * t)).astype(np.float32)


@pytest.mark.parametrize("sr", [8000, 22050, 44100, 48000])
def test_resamples_to_16k_keeping_the_pitch(tmp_path, sr):
    path = tmp_path / "x.wav"
    sf.write(path, tone(sr), sr)
    wave = read_audio(path)
    assert abs(wave.size - SAMPLE_RATE * 0.5) <= 2
    spectrum = np.abs(np.fft.rfft(wave))
    assert abs(np.argmax(spectrum) * SAMPLE_RATE / wave.size - 440) < 4


def test_down_mixes_stereo(tmp_path):
    path = tmp_path / "s.flac"
    left = tone(SAMPLE_RATE)
    sf.write(path, np.stack([left, np.zeros_like(left)], axis=1), SAMPLE_RATE)
    assert np.allclose(read_audio(path), left / 2, atol=1e-3)


def write_nan(path):
    data = tone(SAMPLE_RATE)
    data[100] = np.nan
    sf.write(path, data, SAMPLE_RATE, subtype="FLOAT")


@pytest.mark.parametrize("name, make, message", [
    ("missing.wav", lambda p: None, "no such audio file"),
    ("garbage.wav", lambda p: p.write_bytes(b"RIFFnot really a wave file" * 10), "unreadable"),
    ("notes.mp3", lambda p: p.write_text("hello"), "unreadable or unsupported"),
    ("empty.wav", lambda p: sf.write(p, np.zeros(0, np.float32), SAMPLE_RATE), "empty"),
    ("short.wav", lambda p: sf.write(p, tone(SAMPLE_RATE, 0.02), SAMPLE_RATE), "too short"),
    ("nan.wav", write_nan, "NaN"),
])
def test_bad_files_raise_a_clear_error_naming_the_file(tmp_path, name, make, message):
    path = tmp_path / name
    make(path)
    for reader in (read_audio, probe_audio):
        with pytest.raises(AudioError, match=message) as err:
            reader(path)
        assert str(path) in str(err.value)


def test_write_wav_is_atomic_and_round_trips(tmp_path):
    pcm = (np.arange(16000) % 2000 - 1000).astype(np.int16)
    out = tmp_path / "sub" / "a.wav"
    write_wav(out, pcm)
    assert list(out.parent.iterdir()) == [out]  # no temp file left behind
    back, sr = sf.read(out, dtype="int16")
    assert sr == SAMPLE_RATE and np.array_equal(back, pcm)
    assert probe_audio(out) == pytest.approx(1.0)


def test_pcm_conversion_clips_and_rounds():
    assert np.array_equal(to_pcm16(np.array([-2.0, -1.0, 0.0, 0.5, 1.0])),
                          np.array([-32768, -32768, 0, 16384, 32767], np.int16))
    assert from_pcm16(np.array([-32768], np.int16))[0] == -1.0


def test_atomic_outputs_get_the_usual_permissions(tmp_path):
    import os
    import stat

    from speechmask.audio import atomic_write_text

    old = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "a.txt", "x")
        write_wav(tmp_path / "a.wav", np.zeros(1600, np.int16))
    finally:
        os.umask(old)
    for name in ("a.txt", "a.wav"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o644
