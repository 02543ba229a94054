"""Front-end: integer reference vs float (SNR), streaming == whole utterance, FFT/log accuracy."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from speechmask.audio import from_pcm16, read_audio, to_pcm16
from speechmask.corpus.manifest import read_manifest, resolve_audio
from speechmask.corpus.stats import snr_db
from speechmask.errors import ConfigError
from speechmask.features import FrontendConfig, LogMel, frame_signal, log_mel_numpy
from speechmask.features_int import (StreamingLogMelInt, dequantize, fft_q31, ilog2_q16,
                                     log_mel_int, tables)

CFG = FrontendConfig()


def speech_pcm(manifest, k: int = 0) -> np.ndarray:
    rows = read_manifest(manifest)
    return to_pcm16(read_audio(resolve_audio(manifest, rows[k])))


@pytest.mark.parametrize("kwargs", [dict(n_fft=500), dict(win_ms=40.0), dict(hop_ms=30.0),
                                    dict(win_ms=25.03), dict(fmax=9000.0), dict(log_floor=0.0),
                                    dict(window_shift=0), dict(power_shift=2),
                                    dict(n_fft=4096)])
def test_config_rejects_inconsistent_values(kwargs):
    with pytest.raises(ConfigError):
        cfg = FrontendConfig(**kwargs)
        tables(cfg)


def test_config_round_trips_and_rejects_unknown_fields():
    assert FrontendConfig.from_dict(CFG.to_dict()) == CFG
    with pytest.raises(ConfigError, match="bogus"):
        FrontendConfig.from_dict({**CFG.to_dict(), "bogus": 1})
    assert (CFG.win_length, CFG.hop_length, CFG.n_bins) == (400, 160, 257)
    # a checkpoint saved before the halving FFT carries the old shifts: they are replaced
    old = {k: v for k, v in CFG.to_dict().items() if k != "int_layout"}
    assert FrontendConfig.from_dict({**old, "window_shift": 8, "power_shift": 14}) == CFG


@pytest.mark.parametrize("n, frames", [(0, 0), (399, 0), (400, 1), (559, 1), (560, 2), (16000, 98)])
def test_frame_count(n, frames):
    assert CFG.n_frames(n) == frames
    assert frame_signal(np.zeros(n), CFG).shape == (frames, CFG.win_length)
    assert log_mel_int(np.zeros(n, np.int16)).shape == (frames, CFG.n_mels)


def test_integer_fft_matches_numpy():
    rng = np.random.default_rng(0)
    x = rng.integers(-(1 << 28), 1 << 28, size=(4, CFG.n_fft)).astype(np.int64)
    re, im = fft_q31(x, np.zeros_like(x), CFG)  # DFT / n: a halving per stage
    ref = np.fft.fft(x, axis=-1) / CFG.n_fft
    assert np.abs(re - ref.real).max() <= 8 and np.abs(im - ref.imag).max() <= 8


def test_integer_real_fft_matches_numpy():
    from speechmask.features_int import real_fft_q31

    rng = np.random.default_rng(2)
    x = rng.integers(-(1 << 28), 1 << 28, size=(4, CFG.n_fft)).astype(np.int64)
    re, im = real_fft_q31(x, CFG)  # DFT / (n_fft / 2)
    ref = np.fft.rfft(x, axis=-1) / (CFG.n_fft // 2)
    assert np.abs(re - ref.real).max() <= 8 and np.abs(im - ref.imag).max() <= 8


def test_integer_log2_accuracy():
    rng = np.random.default_rng(1)
    v = np.concatenate([rng.integers(1, 1 << 62, 2000), 1 << np.arange(63),
                        (1 << np.arange(1, 63)) - 1, np.arange(1, 300),
                        rng.integers(1 << 62, (1 << 63) - 1, 200), [(1 << 63) - 1]]
                       ).astype(np.int64)
    err = ilog2_q16(v) / 65536.0 - np.log2(v.astype(np.float64))
    assert np.abs(err).max() < 4e-5


def test_integer_matches_float_on_speech(tiny_corpus):
    snrs = []
    for k in range(4):
        pcm = speech_pcm(tiny_corpus, k)
        ref = log_mel_numpy(from_pcm16(pcm).astype(np.float64), CFG)
        snrs.append(snr_db(ref, dequantize(log_mel_int(pcm), CFG)))
    assert min(snrs) >= 30.0, snrs  # issue target; measured ~75 dB


@pytest.mark.parametrize("level_dbfs", [-90.0, -60.0, -20.0, 0.0])
def test_integer_matches_float_across_levels_without_overflow(level_dbfs):
    rng = np.random.default_rng(2)
    noise = rng.standard_normal(8000)
    wave = noise / np.abs(noise).max() * 10 ** (level_dbfs / 20) * 0.999
    pcm = to_pcm16(wave)
    ref = log_mel_numpy(from_pcm16(pcm).astype(np.float64), CFG)
    got = dequantize(log_mel_int(pcm), CFG)
    assert np.abs(ref - got).max() < 0.05  # an overflow would be off by whole units


def test_full_scale_square_wave_does_not_overflow():
    pcm = np.where(np.arange(4000) % 64 < 32, 32767, -32768).astype(np.int16)
    ref = log_mel_numpy(from_pcm16(pcm).astype(np.float64), CFG)
    assert np.abs(ref - dequantize(log_mel_int(pcm), CFG)).max() < 0.05


def test_digital_silence_gives_the_log_floor():
    q = log_mel_int(np.zeros(1600, np.int16))
    assert np.all(q == int(round(np.log(CFG.log_floor) * 1024)))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_streaming_equals_whole_utterance_exactly(tiny_corpus, seed):
    pcm = speech_pcm(tiny_corpus, seed)
    whole = log_mel_int(pcm)
    rng = np.random.default_rng(seed)
    stream, parts, i = StreamingLogMelInt(CFG), [], 0
    while i < pcm.size:
        n = int(rng.choice([0, 1, 7, 160, 161, 400, 1000]))
        parts.append(stream.push(pcm[i:i + n]))
        i += n
    assert np.array_equal(np.concatenate(parts), whole)


def test_streaming_one_hop_at_a_time_as_the_firmware_calls_it(tiny_corpus):
    pcm = speech_pcm(tiny_corpus, 1)
    stream = StreamingLogMelInt(CFG)
    frames = [stream.push(pcm[i:i + CFG.hop_length]) for i in range(0, pcm.size, CFG.hop_length)]
    assert all(f.shape[0] <= 1 for f in frames)
    assert np.array_equal(np.concatenate(frames), log_mel_int(pcm))


def test_torch_matches_numpy_and_batches(tiny_corpus):
    waves = [from_pcm16(speech_pcm(tiny_corpus, k))[:16000] for k in range(2)]
    batch = torch.tensor(np.stack([np.pad(w, (0, 16000 - w.size)) for w in waves]))
    out = LogMel(CFG)(batch)
    for k in range(2):
        ref = log_mel_numpy(batch[k].numpy().astype(np.float64), CFG)
        assert out[k].shape == ref.shape
        assert np.abs(out[k].numpy() - ref).max() < 1e-3


def test_torch_front_end_is_differentiable():
    wave = (0.1 * torch.randn(4000)).requires_grad_(True)
    LogMel(CFG)(wave).mean().backward()
    assert torch.isfinite(wave.grad).all() and wave.grad.abs().sum() > 0


def test_tables_are_consistent():
    t = tables(CFG)
    assert t["window_q15"].shape == (CFG.win_length,)
    assert np.all(t["mel_q15"].sum(axis=1) > 0), "every mel band has weight"
    assert t["mel_q15"].max() < 1 << 15 and t["window_q15"].max() < 1 << 15
    assert sorted(t["bitrev"]) == list(range(CFG.n_fft // 2))
