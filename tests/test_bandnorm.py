"""Streaming per-band normalisation: integer reference, streaming, causality, offsets, float twin."""

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
feats = arrays(np.int16, st.tuples(st.integers(0, 40), st.just(BANDS)))


@settings(max_examples=60, deadline=None)
@given(x=feats, cuts=st.lists(st.integers(0, 40), max_size=6))
def test_streaming_equals_offline_for_any_chunking(x, cuts):
    whole = normalize_int(x, CFG)
    stream = StreamingBandNormInt(CFG, BANDS)
    edges = [0, *sorted(min(c, len(x)) for c in cuts), len(x)]
    parts = [stream.push(x[a:b]) for a, b in zip(edges, edges[1:])]
    assert np.array_equal(np.concatenate(parts), whole)


@settings(max_examples=40, deadline=None)
@given(x=arrays(np.int16, (30, BANDS)), t=st.integers(0, 29), seed=st.integers(0, 2**16))
def test_causal_no_output_reads_a_later_frame(x, t, seed):
    """Changing every frame after t leaves the outputs up to t unchanged."""
    y = x.copy()
    y[t + 1:] = np.random.default_rng(seed).integers(-32768, 32768, y[t + 1:].shape)
    assert np.array_equal(normalize_int(x, CFG)[:t + 1], normalize_int(y, CFG)[:t + 1])


@settings(max_examples=40, deadline=None)
@given(x=arrays(np.int16, (25, BANDS), elements=st.integers(-20000, 0)),
       c=arrays(np.int16, (BANDS,), elements=st.integers(-5000, 5000)))
def test_a_constant_offset_per_band_is_removed_exactly(x, c):
    """A microphone's response or a gain is a constant per log-mel band: it leaves no trace."""
    cfg = BandNormConfig("mean", frames=8, frac_bits=8, target=(-9000,) * BANDS)
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


def test_calibrate_is_the_rounded_mean_of_every_frame():
    a = np.array([[1, -1], [2, -2]], dtype=np.int16)
    b = np.array([[6, -7]], dtype=np.int16)
    assert calibrate([a, b]).target == (3, -3)  # 9/3, -10/3


@pytest.mark.parametrize("kwargs, flag", [
    ({"mode": "median"}, "mode"), ({"frames": 0}, "frames"), ({"frac_bits": 15}, "frac_bits"),
    ({"mode": "mean"}, "target"), ({"mode": "mean", "target": (40000,)}, "target")])
def test_bad_configs_refused_naming_the_field(kwargs, flag):
    with pytest.raises(ConfigError) as err:
        BandNormConfig(**kwargs)
    assert err.value.field == flag


def test_a_target_of_the_wrong_width_is_refused():
    with pytest.raises(ConfigError, match="3 bands"):
        StreamingBandNormInt(BandNormConfig("mean", target=(0, 0, 0)), 40)
