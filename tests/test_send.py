"""The send steps wired into the mask: configs, calibration, integer and float paths, what
`mask`, `train mask` and the suite send."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import speechmask
from speechmask.cli import main
from speechmask.device import export_id
from speechmask.device.send import (StreamingSend, bandnorm_config, calibrate, quantize,
                                    send_float, send_int)
from speechmask.errors import ConfigError
from speechmask.features import FrontendConfig
from speechmask.features_int import log_mel_int
from speechmask.masking import mask_utterance
from speechmask.models.config import MaskConfig, SendConfig
from speechmask.models.mask import MaskGenerator

FE = FrontendConfig()
PLAIN = MaskConfig(send=SendConfig(norm_frames=0, warp_max=0.0))  # no send step
ON = MaskConfig(send=SendConfig(norm_frames=16, warp_max=0.2, norm_scale=False,
                                norm_target=tuple(range(-8000, -7960))))
ON_LEVEL = MaskConfig(send=SendConfig(norm_frames=16, warp_max=0.2, norm_scale=False,
                                      norm_target=ON.send.norm_target, level=True,
                                      level_target=-5000))  # and the level removal


def _speech(seed: int = 0, seconds: float = 1.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(int(16000 * seconds)) * 3000).astype(np.int16)


@pytest.mark.parametrize("cfg", [ON, ON_LEVEL], ids=["norm+warp", "norm+warp+level"])
@settings(max_examples=25, deadline=None)
@given(cuts=st.lists(st.integers(0, 100), max_size=5), seed=st.integers(0, 99),
       level=st.integers(-8, 8))
def test_streaming_equals_offline(cfg, cuts, seed, level):
    q = log_mel_int(_speech(seed), FE)
    stream = StreamingSend(cfg, level)
    edges = [0, *sorted(min(c, len(q)) for c in cuts), len(q)]
    parts = [stream.push(q[a:b]) for a, b in zip(edges, edges[1:])]
    assert np.array_equal(np.concatenate(parts), send_int(q, cfg, level))
    stream.reset(level)  # a new utterance starts from fresh state
    assert np.array_equal(stream.push(q), send_int(q, cfg, level))


def test_the_steps_chain_norm_then_warp_in_the_integer_path():
    from speechmask.device.bandnorm import normalize_int
    from speechmask.device.send import bandnorm_config, warp_config
    from speechmask.device.warp import warp_int

    q = log_mel_int(_speech(4), FE)
    want = warp_int(normalize_int(q, bandnorm_config(ON.send)), 5, warp_config(ON.send), FE)
    assert np.array_equal(send_int(q, ON, 5), want)
    with pytest.raises(ValueError):
        StreamingSend(ON, 9)


def test_levels_are_per_utterance_uniform_and_independent_of_the_batch():
    from speechmask.device.send import utterance_level

    utterances = [log_mel_int(_speech(k, 0.3), FE) for k in range(400)]
    levels = [utterance_level(q, ON) for q in utterances]
    counts = np.bincount(np.array(levels) + 8, minlength=17)
    assert counts.min() > 5 and set(levels) <= set(range(-8, 9))
    assert levels == [utterance_level(q, ON) for q in utterances]  # reproducible
    assert not any(utterance_level(q, PLAIN) for q in utterances[:10])  # warp off: identity
    a = np.random.default_rng(5).normal(-5, 2, (60, 40)).astype(np.float32)
    b = np.random.default_rng(6).normal(-5, 2, (90, 40)).astype(np.float32)
    x = torch.full((2, 90, 40), float(np.log(FE.log_floor)))
    x[0, :60], x[1] = torch.from_numpy(a), torch.from_numpy(b)
    batch = send_float(x, ON, torch.tensor([60, 90]))
    assert np.allclose(batch[0, :60].numpy(), send_float(a, ON), atol=1e-5)
    assert np.allclose(batch[1].numpy(), send_float(b, ON), atol=1e-5)


def test_float_twin_within_two_lsb_of_the_firmware_arithmetic():
    q = log_mel_int(_speech(1), FE)
    ref = send_int(q, ON).astype(np.float64) / (1 << FE.log_frac_bits)
    got = send_float(q.astype(np.float64) / (1 << FE.log_frac_bits), ON)
    assert np.abs(ref - got).max() <= 2 / (1 << FE.log_frac_bits)
    batch = send_float(torch.tensor(q, dtype=torch.float64)[None] / (1 << FE.log_frac_bits), ON)
    assert np.allclose(batch[0].numpy(), got)


def test_the_header_carries_the_constants():
    from dataclasses import replace

    from firmware_export.headers import send_defines

    text = send_defines(ON)
    assert "#define SM_SEND_NORM_SCALE 0" in text and "sm_send_norm_scale[40]" not in text
    scaled = replace(ON, send=replace(ON.send, norm_scale=True, norm_scale_target=(80,) * 40))
    text_scaled = send_defines(scaled)
    assert "#define SM_SEND_NORM_SCALE 1" in text_scaled
    assert "sm_send_norm_scale[40]" in text_scaled and "sm_send_norm_floor[40]" in text_scaled
    assert "#define SM_SEND_NORM_FRAMES 16" in text and "sm_send_norm_target[40]" in text
    assert "#define SM_SEND_WARP_LEVELS 8" in text and "sm_send_warp_weight[680]" in text
    assert "#define SM_SEND_NORM_FRAMES 0" in send_defines(PLAIN)
    assert "const" not in send_defines(PLAIN)  # no tables for steps that are off


def test_off_sends_the_features_unchanged():
    x = torch.randn(2, 30, 40)
    assert send_float(x, PLAIN) is x
    q = log_mel_int(_speech(2), FE)
    assert np.array_equal(send_int(q, PLAIN), q)


def test_calibration_targets_the_training_band_means():
    feats = [np.random.default_rng(k).normal(-5, 2, (50, 40)).astype(np.float32) for k in range(3)]
    cfg = calibrate(MaskConfig(), feats)  # the default: means only
    want = np.concatenate([quantize(f, FE) for f in feats]).astype(np.float64).mean(0)
    assert np.abs(np.array(cfg.send.norm_target) - want).max() <= 0.5
    assert calibrate(cfg, [feats[0]]) is cfg  # calibrated once: kept
    assert calibrate(PLAIN, feats) == PLAIN  # off: nothing to calibrate
    scaled = calibrate(MaskConfig(send=SendConfig(norm_scale=True)), feats)  # the scale too
    assert len(scaled.send.norm_scale_target) == 40 and scaled.send.norm_target == \
        cfg.send.norm_target
    q = quantize(feats[0], FE)  # the float path sends what the integer path does, to rounding
    ref = send_int(q, scaled).astype(np.float64) / (1 << FE.log_frac_bits)
    assert np.median(np.abs(ref - send_float(feats[0], scaled))) <= 1 / (1 << FE.log_frac_bits)


def test_an_uncalibrated_step_is_refused():
    with pytest.raises(ConfigError, match="no target"):
        bandnorm_config(SendConfig(norm_frames=16))
    with pytest.raises(ConfigError, match="scale has no target"):
        bandnorm_config(SendConfig(norm_frames=16, norm_scale=True, norm_target=(0,) * 40))
    assert SendConfig(norm_frames=0).norm_scale is False  # the scale goes with the normalisation
    with pytest.raises(ConfigError):
        MaskConfig(send=SendConfig(norm_frames=16, norm_target=(1, 2, 3)))
    with pytest.raises(ConfigError):
        SendConfig(norm_frames=-1)


def test_configs_round_trip_and_old_masks_keep_their_export_id():
    assert MaskConfig.from_dict(ON.to_dict()) == ON
    assert "norm_scale" not in ON.to_dict()["send"]  # saved as before the scale existed
    scaled = MaskConfig(send=SendConfig(norm_frames=16, norm_scale=True,
                                        norm_target=ON.send.norm_target,
                                        norm_scale_target=(300,) * 40))
    assert MaskConfig.from_dict(scaled.to_dict()) == scaled
    old = ON.to_dict()
    assert MaskConfig.from_dict(old).send.norm_scale is False
    off = PLAIN
    assert "send" not in off.to_dict()  # saved as before the send steps existed
    assert MaskConfig.from_dict(off.to_dict()) == off
    state = MaskGenerator(off).state_dict()
    assert export_id(off, state) != export_id(ON, state)


def test_mask_utterance_sends_normalised_features_and_no_audio():
    torch.manual_seed(0)
    mask = MaskGenerator(ON).eval()
    wave = _speech(3, 2.0).astype(np.float64) / 32768
    res = mask_utterance(mask, wave)
    assert res.masked_audio is None and not ON.sends_audio
    seg = ON.frames_per_segment
    open_ = np.repeat(res.gates[:, 0] > 0, seg)
    sent = send_float(res.features, ON)
    n = open_.size
    assert np.allclose(res.masked_features[:n][open_], sent[:n][open_], atol=1e-5)
    assert np.allclose(res.masked_features[:n][~open_], np.log(FE.log_floor))
    plain = mask_utterance(MaskGenerator(PLAIN).eval(), wave)
    assert plain.masked_audio is not None


def test_train_mask_calibrates_and_the_cli_sends_features_only(tmp_path, tiny_corpus, slu_path):
    mask = tmp_path / "mask.pt"
    assert main(["train", "mask", "--manifest", str(tiny_corpus), "--slu", str(slu_path),
                 "--out", str(mask), "--max-steps", "2", "--batch-size", "8", "--device", "cpu",
                 "--send-norm-frames", "16", "--send-warp", "0.1", "--quiet"]) == 0
    cfg = speechmask.load_mask(mask).cfg
    assert cfg.send.norm_frames == 16 and len(cfg.send.norm_target) == FE.n_mels
    assert not cfg.send.norm_scale and not cfg.send.norm_scale_target  # the default: means only
    assert cfg.send.warp_max == 0.1
    scaled = tmp_path / "scaled.pt"
    assert main(["train", "mask", "--manifest", str(tiny_corpus), "--slu", str(slu_path),
                 "--out", str(scaled), "--max-steps", "1", "--batch-size", "8", "--device",
                 "cpu", "--send-norm-scale", "--quiet"]) == 0
    send_cfg = speechmask.load_mask(scaled).cfg.send
    assert send_cfg.norm_scale and len(send_cfg.norm_scale_target) == FE.n_mels
    wav = next(tiny_corpus.parent.rglob("*.wav"))
    with pytest.raises(SystemExit):  # no audio counterpart: one line, exit 1
        main(["mask", "--model", str(mask), str(wav), "--out", str(tmp_path / "x.wav")])
    assert main(["mask", "--model", str(mask), str(wav), "--features",
                 str(tmp_path / "x.npy")]) == 0


def test_the_header_s_constants_reproduce_the_integer_reference_in_c(tmp_path):
    """A C program that follows the header's comment, with its tables, gives `send_int`'s bytes
    (the firmware of #16 implements exactly this)."""
    import shutil
    import subprocess

    from firmware_export.headers import send_defines

    if shutil.which("gcc") is None:
        pytest.skip("no host gcc")
    q = log_mel_int(_speech(7), FE)
    level = -6
    (tmp_path / "send.h").write_text("#include <stdint.h>\n" + send_defines(ON))
    frames = ", ".join(str(int(v)) for v in q.ravel())
    (tmp_path / "main.c").write_text(f"""
#include <stdio.h>
#include "send.h"
#define NB 40
static const int16_t x[] = {{{frames}}};
static int16_t sat16(int64_t v) {{ return v > 32767 ? 32767 : v < -32768 ? -32768 : (int16_t)v; }}
int main(void) {{
  int32_t m[NB] = {{0}}; int32_t count = 0; const int F = SM_SEND_NORM_FRAC_BITS;
  const int r = {level} + SM_SEND_WARP_LEVELS;
  for (int t = 0; t < {len(q)}; t++) {{
    int16_t y[NB];
    if (count < SM_SEND_NORM_FRAMES) count++;
    for (int b = 0; b < NB; b++) {{
      int32_t d = ((int32_t)x[t * NB + b] * (1 << F)) - m[b];
      m[b] += d >= 0 ? (d + count / 2) / count : -((-d + count / 2) / count);
      y[b] = sat16((int64_t)x[t * NB + b] - ((m[b] + (1 << (F - 1))) >> F)
                   + sm_send_norm_target[b]);
    }}
    for (int b = 0; b < NB; b++) {{
      int j = sm_send_warp_index[r * NB + b]; int32_t w = sm_send_warp_weight[r * NB + b];
      int32_t z = y[j] + (((int32_t)(y[j + 1] - y[j]) * w + (1 << (SM_SEND_WARP_WEIGHT_BITS - 1)))
                          >> SM_SEND_WARP_WEIGHT_BITS);
      printf("%d\\n", sat16(z));
    }}
  }}
  return 0;
}}
""")
    exe = tmp_path / "send"
    subprocess.run(["gcc", "-std=c11", "-Wall", "-Wextra", "-Werror", "-o", str(exe),
                    str(tmp_path / "main.c")], check=True)
    got = np.array(subprocess.run([str(exe)], check=True, capture_output=True,
                                  text=True).stdout.split(), dtype=np.int64)
    assert np.array_equal(got.reshape(q.shape), send_int(q, ON, level).astype(np.int64))


def test_send_cost_counts_the_scale():
    from dataclasses import replace

    from speechmask.device.send import send_cost

    scaled = replace(ON, send=replace(ON.send, norm_scale=True, norm_scale_target=(80,) * 40))
    base, more = send_cost(ON), send_cost(scaled)
    n, fps = FE.n_mels, FE.frames_per_second
    assert more["ops_per_second"] - base["ops_per_second"] == round(7 * n * fps)
    assert more["state_bytes"] - base["state_bytes"] == 4 * n  # an int32 deviation per band
    assert more["table_bytes"] - base["table_bytes"] == 4 * n  # int16 target and floor per band
