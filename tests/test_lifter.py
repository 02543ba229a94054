"""Cepstral liftering: projection properties, integer path against float, what it removes."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from speechmask.device.lifter import (LifterConfig, dct_matrix, lifter_float, lifter_int,
                                      lifter_matrix)
from speechmask.errors import ConfigError


def test_dct_is_orthonormal_and_the_lifter_a_projection():
    d = dct_matrix(40)
    assert np.allclose(d @ d.T, np.eye(40))
    m = lifter_matrix(13, 40)
    assert np.allclose(m @ m, m) and np.allclose(m, m.T)
    assert np.isclose(np.trace(m), 13)
    assert np.allclose(lifter_matrix(40, 40), np.eye(40))


@settings(max_examples=50, deadline=None)
@given(x=arrays(np.int16, st.tuples(st.integers(0, 20), st.just(40)),
                elements=st.integers(-20000, 20000)),
       keep=st.integers(1, 40))
def test_integer_path_within_rounding_of_float(x, keep):
    cfg = LifterConfig(keep)
    got = lifter_int(x, cfg).astype(np.float64)
    ref = lifter_float(torch.tensor(x, dtype=torch.float64), cfg).numpy()
    # Q15 rounding of each of the 40 entries (<= 2**-16 each) times |x| <= 20000, plus 1/2 LSB
    assert np.all(np.abs(got - ref) <= 40 * 20000 / 2**16 + 1)


@settings(max_examples=30, deadline=None)
@given(x=arrays(np.int16, (6, 40), elements=st.integers(-20000, 20000)), t=st.integers(0, 5))
def test_frame_by_frame_no_frame_reads_another(x, t):
    cfg = LifterConfig(12)
    whole = lifter_int(x, cfg)
    assert np.array_equal(lifter_int(x[t:t + 1], cfg)[0], whole[t])


def test_removes_fine_structure_and_keeps_the_envelope():
    """A smooth envelope plus a ripple every other band (harmonics resolved by the low bands):
    the ripple goes (under 1 % of its energy left), the envelope stays."""
    bands = np.arange(40)
    envelope = -8000 + 3000 * np.cos(np.pi * (bands + 0.5) * 2 / 40)
    ripple = 1500 * (-1) ** bands
    x = np.round(envelope + ripple).astype(np.int16)[None]
    y = lifter_int(x, LifterConfig(13))[0].astype(np.float64)
    residual = np.sqrt(np.mean((y - envelope) ** 2))  # the DCT's edges leak some, hence RMS
    assert residual < 0.1 * 1500


def test_off_passes_through_and_bad_keeps_refused():
    x = np.arange(80, dtype=np.int16).reshape(2, 40)
    assert np.array_equal(lifter_int(x, LifterConfig()), x)
    with pytest.raises(ConfigError):
        LifterConfig(-1)
    with pytest.raises(ConfigError, match="1..40"):
        lifter_int(x, LifterConfig(41))
