"""The per-frame level removal (`speechmask.device.level`) and its place in the send steps: exact
removal of a frame's level, the float twin, streaming == offline, calibration, config, cost."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from test_send import FE, ON, _speech
from test_send import ON_LEVEL as LEVEL

from speechmask.device import export_id
from speechmask.device.level import calibrate as level_calibrate
from speechmask.device.level import remove_level_float, remove_level_int
from speechmask.device.send import (calibrate, quantize, send_cost, send_float, send_int,
                                    steps_name)
from speechmask.errors import ConfigError
from speechmask.features_int import log_mel_int
from speechmask.models.config import MaskConfig, SendConfig
from speechmask.models.mask import MaskGenerator


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000), target=st.integers(-9000, 9000))
def test_a_level_common_to_a_frame_s_bands_is_removed_exactly(seed, target):
    """y(x + c_t) == y(x) for any offset c_t per frame, bit for bit; every frame's band mean
    is the target to rounding."""
    rng = np.random.default_rng(seed)
    x = rng.integers(-12000, 4000, (30, 40)).astype(np.int16)
    c = rng.integers(-6000, 6000, (30, 1))
    y = remove_level_int(x, target)
    assert np.array_equal(remove_level_int((x + c).astype(np.int16), target), y)
    assert np.abs(y.astype(np.float64).mean(1) - target).max() <= 0.5
    # what is left of a frame is its shape: differences between bands are kept
    assert np.array_equal(np.diff(y.astype(np.int64), axis=1), np.diff(x.astype(np.int64), axis=1))


def test_the_mean_rounds_half_up_and_saturates():
    x = np.zeros((2, 4), np.int16)
    x[0, 0], x[1, 0] = 2, -2  # sums 2 and -2 over 4 bands: means 0.5 and -0.5, rounded 1 and 0
    assert remove_level_int(x, 0)[:, 1].tolist() == [-1, 0]
    big = np.full((1, 4), -32768, np.int16)
    big[0, 0] = 32767  # mean -16384 (floor of -16383.75 + 0.5): 32767 + 16384 saturates
    assert remove_level_int(big, 0)[0, 0] == 32767
    with pytest.raises(ValueError):
        remove_level_int(x.astype(np.int32), 0)


def test_float_twin_within_one_lsb_and_numpy_and_torch_agree():
    q = log_mel_int(_speech(1), FE)
    scale = 1 << FE.log_frac_bits
    ref = remove_level_int(q, -5000).astype(np.float64) / scale
    got = remove_level_float(q.astype(np.float64) / scale, -5000 / scale)
    assert np.abs(ref - got).max() <= 1 / scale
    batch = remove_level_float(torch.tensor(q, dtype=torch.float64)[None] / scale, -5000 / scale)
    assert np.allclose(batch[0].numpy(), got)
    # in the chain: the float path sends what the integer path does, within the steps' LSBs
    sent = send_float(q.astype(np.float64) / scale, LEVEL)
    assert np.abs(send_int(q, LEVEL).astype(np.float64) / scale - sent).max() <= 2 / scale


def test_the_step_runs_last_on_what_the_others_send():
    """In any chunking the chain equals its offline form (tests/test_send.py's streaming test
    runs `LEVEL` too); here the order: norm, warp, then the level removal, at every warp level."""
    q = log_mel_int(_speech(6), FE)
    for level in range(-8, 9):
        without = send_int(q, ON, level)
        assert np.array_equal(send_int(q, LEVEL, level), remove_level_int(without, -5000))


def test_the_step_reads_no_other_frame():
    """Causal and stateless: changing frame t changes only frame t of what is sent."""
    q = log_mel_int(_speech(5), FE)
    plain = MaskConfig(send=SendConfig(norm_frames=0, warp_max=0.0, level=True,
                                       level_target=-4000))
    a = send_int(q, plain, 0)
    q2 = q.copy()
    q2[40, :10] = np.clip(q2[40, :10].astype(np.int32) + 900, -32768, 32767)  # its shape
    b = send_int(q2, plain, 0)
    changed = np.flatnonzero(np.any(a != b, axis=1))
    assert changed.tolist() == [40]


def test_calibration_and_an_uncalibrated_step():
    feats = [np.random.default_rng(k).normal(-5, 2, (50, 40)).astype(np.float32) for k in range(3)]
    cfg = calibrate(MaskConfig(send=SendConfig(level=True)), feats)
    want = np.concatenate([quantize(f, FE) for f in feats]).astype(np.float64).mean()
    assert abs(cfg.send.level_target - want) <= 0.5
    assert cfg.send.level_target == level_calibrate([quantize(f, FE) for f in feats])
    assert len(cfg.send.norm_target) == 40  # the default normalisation is calibrated too
    assert calibrate(cfg, [feats[0]]) is cfg
    uncalibrated = MaskConfig(send=SendConfig(norm_frames=0, warp_max=0.0, level=True))
    with pytest.raises(ConfigError, match="level removal has no target"):
        send_int(np.zeros((3, 40), np.int16), uncalibrated)
    with pytest.raises(ConfigError, match="level removal has no target"):
        send_float(np.zeros((3, 40), np.float32), uncalibrated)
    for bad in (32768, -32769, 1.5):  # an int16 feature value
        with pytest.raises(ConfigError, match="level_target"):
            SendConfig(level=True, level_target=bad)


def test_config_round_trips_and_masks_without_the_step_keep_their_export_id():
    assert MaskConfig.from_dict(LEVEL.to_dict()) == LEVEL
    # saved as before the step existed: exactly the keys a mask of 9f0619e wrote
    assert set(ON.to_dict()["send"]) == {"norm_frames", "warp_max", "norm_target",
                                         "norm_frac_bits", "warp_levels", "warp_pivot"}
    assert set(LEVEL.to_dict()["send"]) - set(ON.to_dict()["send"]) == {"level", "level_target"}
    assert MaskConfig.from_dict(ON.to_dict()).send.level is False
    state = MaskGenerator(ON).state_dict()
    assert export_id(ON, state) != export_id(LEVEL, state)
    assert steps_name(LEVEL.send) == "norm16+warp20+level"
    only = MaskConfig(send=SendConfig(norm_frames=0, warp_max=0.0, level=True, level_target=0))
    assert only.send.enabled and "send" in only.to_dict()
    assert not only.sends_audio  # a step on: features only


def test_send_cost_counts_the_level_step():
    base, more = send_cost(ON), send_cost(LEVEL)
    n, fps = FE.n_mels, FE.frames_per_second
    assert more["ops_per_second"] - base["ops_per_second"] == round((3 * n + 1) * fps)
    assert more["state_bytes"] == base["state_bytes"]  # no state
    assert more["table_bytes"] == base["table_bytes"]  # the target is an immediate


def test_the_header_carries_the_level_constants():
    from firmware_export.headers import send_defines

    assert "#define SM_SEND_LEVEL 1" in send_defines(LEVEL)
    assert "#define SM_SEND_LEVEL_TARGET -5000" in send_defines(LEVEL)
    assert "#define SM_SEND_LEVEL 0" in send_defines(ON)
