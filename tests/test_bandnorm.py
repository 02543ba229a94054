"""Streaming per-band normalisation (mean and scale modes): integer reference, streaming,
causality, offsets, float twin."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from speechmask.device.bandnorm import (BandNormConfig, StreamingBandNormInt, calibrate,
                                        normalize_float, normalize_int)
from speechmask.errors import ConfigError
from speechmask.features import FrontendConfig
from speechmask.features_int import log_mel_int

BANDS = 5
CFG = BandNormConfig("mean", frames=8, frac_bits=8, target=(-5000, -4000, 0, 1200, 32767))
SCALE = BandNormConfig("scale", frames=8, frac_bits=8, target=CFG.target,
                       scale=(1, 300, 32767, 700, 5), max_gain=8)
MODES = pytest.mark.parametrize("cfg", [CFG, SCALE], ids=["mean", "scale"])
feats = arrays(np.int16, st.tuples(st.integers(0, 40), st.just(BANDS)))


@MODES
@settings(max_examples=60, deadline=None)
@given(x=feats, cuts=st.lists(st.integers(0, 40), max_size=6))
def test_streaming_equals_offline_for_any_chunking(cfg, x, cuts):
    whole = normalize_int(x, cfg)
    stream = StreamingBandNormInt(cfg, BANDS)
    edges = [0, *sorted(min(c, len(x)) for c in cuts), len(x)]
    parts = [stream.push(x[a:b]) for a, b in zip(edges, edges[1:])]
    assert np.array_equal(np.concatenate(parts), whole)


@MODES
@settings(max_examples=40, deadline=None)
@given(x=arrays(np.int16, (30, BANDS)), t=st.integers(0, 29), seed=st.integers(0, 2**16))
def test_causal_no_output_reads_a_later_frame(cfg, x, t, seed):
    """Changing every frame after t leaves the outputs up to t unchanged."""
    y = x.copy()
    y[t + 1:] = np.random.default_rng(seed).integers(-32768, 32768, y[t + 1:].shape)
    assert np.array_equal(normalize_int(x, cfg)[:t + 1], normalize_int(y, cfg)[:t + 1])


@MODES
@settings(max_examples=40, deadline=None)
@given(x=arrays(np.int16, (25, BANDS), elements=st.integers(-20000, 0)),
       c=arrays(np.int16, (BANDS,), elements=st.integers(-5000, 5000)))
def test_a_constant_offset_per_band_is_removed_exactly(cfg, x, c):
    """A microphone's response or a gain is a constant per log-mel band: it leaves no trace."""
    cfg = BandNormConfig(cfg.mode, frames=8, frac_bits=8, target=(-9000,) * BANDS,
                         scale=cfg.scale)
    shifted = (x.astype(np.int32) + c).astype(np.int16)
    assert np.array_equal(normalize_int(shifted, cfg), normalize_int(x, cfg))


def test_warm_up_is_the_plain_mean_then_exponential():
    x = np.array([[0], [1000], [2000], [3000]], dtype=np.int16)
    cfg = BandNormConfig("mean", frames=2, frac_bits=4, target=(0,))
    # means: 0, 500 (plain, n=2), then n saturates: 500 + (2000-500)/2 = 1250, 1250 + 875 = 2125
    assert normalize_int(x, cfg)[:, 0].tolist() == [0, 500, 750, 875]


def test_none_passes_features_through():
    x = np.arange(12, dtype=np.int16).reshape(3, 4)
    assert np.array_equal(normalize_int(x, BandNormConfig()), x)
    t = torch.randn(2, 3, 4)
    assert normalize_float(t, BandNormConfig(), 10) is t


def test_float_twin_within_two_lsb_of_the_integer_path():
    """On real front-end output the float recursion agrees with the integer one to rounding."""
    fe = FrontendConfig()
    pcm = (np.random.default_rng(0).standard_normal(16000) * 3000).astype(np.int16)
    q = log_mel_int(pcm, fe)
    cfg = calibrate([q], frames=32)
    ref = normalize_int(q, cfg).astype(np.float64) / (1 << fe.log_frac_bits)
    got = normalize_float(torch.tensor(q, dtype=torch.float64) / (1 << fe.log_frac_bits), cfg,
                          fe.log_frac_bits).numpy()
    assert np.abs(ref - got).max() <= 2 / (1 << fe.log_frac_bits)


def test_scale_warm_up_by_hand():
    """Frames 0, 1000, 2000, 3000 over 2 frames, scale 100, gain at most 4 (floor 25): means 0,
    500, 1250, 2125; deviations e 0, 500, 750, 875; their running means 0, 250, 500, 688 (n = 2:
    250 + (750 - 250) / 2, 500 + (875 - 500) / 2 rounded half away); y = e * 100 / max(a, 25)."""
    x = np.array([[0], [1000], [2000], [3000]], dtype=np.int16)
    cfg = BandNormConfig("scale", frames=2, frac_bits=4, target=(7,), scale=(100,), max_gain=4)
    assert normalize_int(x, cfg)[:, 0].tolist() == [7, 200 + 7, 150 + 7, 127 + 7]


def test_scale_moves_each_band_s_deviation_to_its_target():
    """Two bands with the same shape, one varying 8x more: after the step both vary alike (the
    speaker's spectral dynamics are gone), around the target."""
    rng = np.random.default_rng(3)
    base = rng.normal(0, 1, 2000)
    x = np.stack([-3000 + 100 * base, -3000 + 800 * base], 1).astype(np.int16)
    cfg = BandNormConfig("scale", frames=64, frac_bits=8, target=(-4000, -4000),
                         scale=(300, 300))
    y = normalize_int(x, cfg)[200:].astype(np.float64)
    dev = np.abs(y + 4000).mean(0)
    assert np.allclose(dev, 300, rtol=0.1) and abs(dev[0] - dev[1]) < 10
    before = np.abs(x[200:] - x[200:].mean(0)).mean(0)
    assert before[1] > 7 * before[0]


def test_scale_float_twin_agrees_with_the_integer_path_to_its_rounding():
    """The integer path rounds the divisor to whole units, so the twin differs by up to about
    |e| / (2 * divisor) + 2 units: under 0.1 dB at these levels."""
    from speechmask.device.bandnorm import _running_mean

    fe = FrontendConfig()
    pcm = (np.random.default_rng(1).standard_normal(16000) * 3000).astype(np.int16)
    q = log_mel_int(pcm, fe)
    cfg = calibrate([q], frames=32, mode="scale")
    assert cfg.mode == "scale" and len(cfg.scale) == fe.n_mels
    unit = 1 << fe.log_frac_bits
    ref = normalize_int(q, cfg).astype(np.float64)
    got = normalize_float(torch.tensor(q, dtype=torch.float64) / unit, cfg,
                          fe.log_frac_bits).numpy() * unit
    e = q - _running_mean(q.astype(np.float64), 32)
    div = np.maximum(_running_mean(np.abs(e), 32), cfg.floor)
    bound = 2 + np.abs(got - cfg.target) / (2 * div) + np.asarray(cfg.scale) / div
    assert (np.abs(ref - got) <= bound).all()
    assert np.median(np.abs(ref - got)) <= 1


def test_calibrate_scale_is_the_mean_absolute_deviation_of_the_mean_step():
    x = np.array([[0], [1000], [2000], [3000]], dtype=np.int16)
    cfg = calibrate([x], frames=2, frac_bits=4, mode="scale", max_gain=4)
    # deviations from the running mean, as the mean mode sends them: 0, 500, 750, 875
    assert cfg.target == (1500,) and cfg.scale == (531,) and cfg.floor.tolist() == [133]
    with pytest.raises(ConfigError):
        calibrate([x], mode="median")


@settings(max_examples=30, deadline=None)
@given(utts=st.lists(feats, min_size=1, max_size=7), batch=st.integers(1, 4))
def test_calibrated_deviations_equal_the_mean_step_run_per_utterance(utts, batch):
    """The batched pass over utterances side by side (padded, several batches) sums the same
    |e| as the streaming step run on each utterance alone, saturation included."""
    from speechmask.device.bandnorm import _deviation_sum

    zero = BandNormConfig("mean", frames=8, frac_bits=8, target=(0,) * BANDS)
    expected = sum(np.abs(normalize_int(u, zero).astype(np.int64)).sum(0) for u in utts)
    np.testing.assert_array_equal(_deviation_sum(utts, 8, 8, batch=batch), expected)


def test_calibrate_is_the_rounded_mean_of_every_frame():
    a = np.array([[1, -1], [2, -2]], dtype=np.int16)
    b = np.array([[6, -7]], dtype=np.int16)
    assert calibrate([a, b]).target == (3, -3)  # 9/3, -10/3


@pytest.mark.parametrize("kwargs, flag", [
    ({"mode": "median"}, "mode"), ({"frames": 0}, "frames"), ({"frac_bits": 15}, "frac_bits"),
    ({"mode": "mean"}, "target"), ({"mode": "mean", "target": (40000,)}, "target"),
    ({"mode": "scale", "target": (0, 0)}, "scale"),
    ({"mode": "scale", "target": (0,), "scale": (0,)}, "scale"),
    ({"mode": "scale", "target": (0,), "scale": (9,), "max_gain": 0}, "max_gain")])
def test_bad_configs_refused_naming_the_field(kwargs, flag):
    with pytest.raises(ConfigError) as err:
        BandNormConfig(**kwargs)
    assert err.value.field == flag


def test_a_target_of_the_wrong_width_is_refused():
    with pytest.raises(ConfigError, match="3 bands"):
        StreamingBandNormInt(BandNormConfig("mean", target=(0, 0, 0)), 40)
