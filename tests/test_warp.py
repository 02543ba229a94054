"""Random frequency warping: tables, integer reference, float twin, streaming (per-utterance levels:
tests/test_send.py)."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from speechmask.device.warp import (WEIGHT_BITS, WarpConfig, source_position, tables,
                                    warp_float, warp_int)
from speechmask.errors import ConfigError
from speechmask.features import FrontendConfig

FE = FrontendConfig()
CFG = WarpConfig("random", max_warp=0.2, levels=4)
feats = arrays(np.int16, st.tuples(st.integers(0, 30), st.just(FE.n_mels)))


def test_level_zero_is_the_identity():
    x = (np.random.default_rng(0).integers(-32768, 32768, (20, FE.n_mels))).astype(np.int16)
    index, weight = tables(CFG, FE)
    identity = CFG.levels
    assert np.array_equal(warp_int(x, 0, CFG, FE), x)
    got = index[identity].astype(np.int64) + weight[identity] / (1 << WEIGHT_BITS)
    assert np.array_equal(got, np.arange(FE.n_mels))


def test_tables_are_monotone_and_in_range():
    index, weight = tables(CFG, FE)
    pos = index.astype(np.int64) * (1 << WEIGHT_BITS) + weight
    assert index.max() <= FE.n_mels - 2 and weight.max() <= 1 << WEIGHT_BITS
    assert (np.diff(pos, axis=1) >= 0).all()
    # the warp fixes fmax, the filterbank's upper edge: the top band moves by less than one band
    assert (np.abs(pos[:, -1] - ((FE.n_mels - 1) << WEIGHT_BITS)) < 1 << WEIGHT_BITS).all()


def test_a_larger_factor_reads_higher_frequencies():
    """alpha > 1 reads each band from higher up, so a spectral peak moves down (a longer tract)."""
    lo, hi = source_position(CFG.factor(-4), CFG, FE), source_position(CFG.factor(4), CFG, FE)
    assert (hi[1:-1] > np.arange(FE.n_mels)[1:-1]).all()
    assert (lo[1:-1] < np.arange(FE.n_mels)[1:-1]).all()
    x = np.full((1, FE.n_mels), -8000, dtype=np.int16)
    x[0, 20] = 4000
    assert int(np.argmax(warp_int(x, 4, CFG, FE)[0])) < 20 < int(
        np.argmax(warp_int(x, -4, CFG, FE)[0]))


@settings(max_examples=40, deadline=None)
@given(x=feats, level=st.integers(-4, 4))
def test_float_twin_within_half_an_lsb(x, level):
    ref = warp_int(x, level, CFG, FE).astype(np.float64)
    got = warp_float(torch.tensor(x, dtype=torch.float64)[None], [level], CFG, FE)[0].numpy()
    assert np.abs(ref - got).max(initial=0) <= 0.5


@settings(max_examples=30, deadline=None)
@given(x=feats, level=st.integers(-4, 4), cut=st.integers(0, 30))
def test_frame_by_frame_streaming_equals_offline(x, level, cut):
    """The step reads one frame at a time (no state, no later frame): any chunking agrees."""
    cut = min(cut, len(x))
    parts = [warp_int(x[:cut], level, CFG, FE), warp_int(x[cut:], level, CFG, FE)]
    assert np.array_equal(np.concatenate(parts), warp_int(x, level, CFG, FE))


def test_interpolation_stays_inside_int16():
    x = np.tile(np.array([-32768, 32767], dtype=np.int16), FE.n_mels // 2)[None]
    for level in range(-4, 5):
        y = warp_int(x, level, CFG, FE)
        assert y.dtype == np.int16 and y.min() >= -32768 and y.max() <= 32767


def test_factors_are_symmetric_in_log():
    assert CFG.factor(4) == pytest.approx(1.2) and CFG.factor(-4) == pytest.approx(1 / 1.2)


@pytest.mark.parametrize("kwargs, field", [({"mode": "fixed"}, "mode"),
                                           ({"max_warp": -0.1}, "max_warp"),
                                           ({"levels": 0}, "levels"),
                                           ({"pivot": 1.0}, "pivot")])
def test_bad_configs_name_the_field(kwargs, field):
    with pytest.raises(ConfigError) as exc:
        WarpConfig(**kwargs)
    assert exc.value.field == field


def test_warp_int_refuses_the_wrong_shape():
    with pytest.raises(ValueError):
        warp_int(np.zeros((3, 7), np.int16), 1, CFG, FE)
