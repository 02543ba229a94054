"""Export groundwork (issue 5): the streaming call the firmware makes reproduces the offline
mask exactly, its Keras twin matches it in float, and the int8 TFLite model gives the same
outputs in ai-edge-litert and in TFLite Micro's host interpreter."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from speechmask.api import load_mask
from speechmask.masking import gate_logits
from speechmask.models.mask import MaskConfig, MaskGenerator

from firmware_export.streaming import windows

pytest.importorskip("tensorflow", reason="needs the [export] extra")


def _random(arch: str) -> MaskGenerator:
    """Random weights: both gate decisions occur, so the feedback path is exercised."""
    torch.manual_seed(0)
    mask = MaskGenerator(MaskConfig(arch=arch, context_segments=2)).eval()
    for p in mask.parameters():
        torch.nn.init.normal_(p, std=0.2)
    return mask


def _features(mask: MaskGenerator, frames: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.normal(-6, 2, (frames, mask.cfg.frontend.n_mels)).astype(np.float32)


@pytest.fixture(scope="module")
def masks(mask_path):
    return {"trained": load_mask(mask_path), "small": _random("small"), "tiny": _random("tiny")}


@pytest.mark.parametrize("arch", ["trained", "small", "tiny"])
def test_streaming_calls_reproduce_the_offline_mask(masks, arch):
    mask = masks[arch]
    feats = _features(mask, 203, 1)
    _, _, _, logits, gates = windows(mask, feats)
    offline = gate_logits(mask, feats)
    assert logits.shape == offline.shape == (203 // mask.cfg.fps, mask.cfg.gate.band_groups)
    np.testing.assert_allclose(logits, offline, atol=1e-4)
    if arch != "trained":
        assert 0 < gates.mean() < 1  # both decisions occur: the feedback path is exercised


@pytest.mark.parametrize("arch", ["trained", "small", "tiny"])
def test_keras_twin_matches_pytorch_in_float(masks, arch):
    from firmware_export.keras_mask import build_keras

    mask = masks[arch]
    frames, valid, state, logits, _ = windows(mask, _features(mask, 120, 2))
    out = build_keras(mask).predict([frames, valid, state], verbose=0)
    np.testing.assert_allclose(out, logits, atol=1e-4)


def test_int8_model_agrees_in_litert_and_tflite_micro(masks):
    """On random features (`speechmask export` checks real ones: within 1 LSB on the built-in
    corpus, where its closed-loop gate agreement, 95.6 %, is still under the 98 % target)."""
    from firmware_export.keras_mask import build_keras
    from firmware_export.tflite_int8 import TFLM, LiteRT, arena_bytes, convert_int8

    mask = masks["trained"]
    calib = [windows(mask, _features(mask, 160, s)) for s in range(4)]
    calls = [(f[k], v[k], s[k]) for f, v, s, _, _ in calib for k in range(len(f))]
    model = convert_int8(build_keras(mask), calls)
    litert = LiteRT(model)
    assert all(d["dtype"] == np.int8 for d in litert.inputs) and litert.output["dtype"] == np.int8
    arena = arena_bytes(model)
    assert 1000 < arena < 64 * 1024
    micro = TFLM(model, arena + 4096)
    frames, valid, state, logits, gates = windows(mask, _features(mask, 160, 9))
    test = [(frames[k], valid[k], state[k]) for k in range(len(frames))]
    a = np.array([litert.run(c) for c in test]).astype(int)
    b = np.array([micro.run(litert.quantized_inputs(c)) for c in test]).astype(int)
    assert np.abs(a - b).max() <= 1
    # the int8 logits are the float ones up to a few quantization steps
    scale = litert.output["quantization"][0]
    assert np.abs(litert.dequantize(a.astype(np.int8)) - logits).max() < 8 * scale + 0.1
    # closed loop (the int8 model's own gates fed back) against the float model's gates
    from firmware_export.tflite_int8 import int8_gates, operators

    agree = []
    for seed in range(10, 14):
        feats = _features(mask, 200, seed)
        _, float_gates = windows(mask, feats)[3:]
        agree.append(int8_gates(litert, mask, feats)[1] == float_gates)
    assert np.concatenate(agree).mean() >= 0.98
    ops = operators(model)
    assert "DEPTHWISE_CONV_2D" in ops and "TANH" in ops and not any("FLEX" in o for o in ops)


@pytest.mark.parametrize("arch", ["trained", "tiny"])
def test_onnx_float_and_qdq_int8_run_in_onnxruntime(masks, arch, tmp_path):
    pytest.importorskip("onnxruntime")
    from firmware_export.onnx_export import export_onnx, quantize_onnx, run_onnx

    mask = masks[arch]
    calib = [windows(mask, _features(mask, 160, s)) for s in range(3)]
    calls = [(f[k], v[k], s[k]) for f, v, s, _, _ in calib for k in range(len(f))]
    fp = export_onnx(mask, tmp_path / "mask.onnx")
    q = quantize_onnx(fp, tmp_path / "mask_int8.onnx", calls)
    frames, valid, state, logits, gates = windows(mask, _features(mask, 160, 9))
    test = [(frames[k], valid[k], state[k]) for k in range(len(frames))]
    np.testing.assert_allclose(run_onnx(fp, test), logits, atol=1e-4)
    int8 = run_onnx(q, test)
    import onnx

    ops = {n.op_type for n in onnx.load(q).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    assert np.abs(int8 - logits).max() < 0.25 * mask.cfg.logit_bound


def test_generated_headers_compile_and_hold_the_configs(masks, tmp_path):
    """model_data.h/.c, speechmask_frontend.h and speechmask_gates.h compile with the host C
    compiler (-Wall -Werror), and a C program reads back the values Python generated."""
    import shutil
    import subprocess

    from speechmask.features_int import tables

    from firmware_export.headers import frontend_header, gates_header, model_data

    if shutil.which("gcc") is None:
        pytest.skip("no host gcc")
    mask = masks["trained"]
    cfg = mask.cfg
    model = bytes(range(256)) * 3 + b"\x01"
    h, c = model_data(model)
    (tmp_path / "model_data.h").write_text(h)
    (tmp_path / "model_data.c").write_text(c)
    (tmp_path / "speechmask_frontend.h").write_text(frontend_header(cfg.frontend))
    gates = gates_header(cfg, {"frames": (0.08, 19), "valid": (1 / 255, -128),
                               "state": (1 / 255, -128)}, (0.0266, -4))
    (tmp_path / "speechmask_gates.h").write_text(gates)
    t = tables(cfg.frontend)
    (tmp_path / "main.c").write_text(f"""
#include <stdio.h>
#include <stdint.h>
#include "model_data.h"
#include "speechmask_frontend.h"
#include "speechmask_gates.h"
int main(void) {{
  if (g_speechmask_model_len != {len(model)}u || g_speechmask_model[{len(model) - 1}] != 1) return 1;
  if (((uintptr_t)g_speechmask_model) % 16 != 0) return 2;
  if (sm_window_q15[100] != {int(t['window_q15'][100])}) return 3;
  if (sm_mel_q15[{cfg.frontend.n_bins} * 5 + 20] != {int(t['mel_q15'][5, 20])}) return 4;
  if (SM_N_MELS != {cfg.frontend.n_mels} || SM_WINDOW_FRAMES != {cfg.window_frames}) return 5;
  if (SM_FRAMES_PER_SEGMENT != {cfg.fps} || SM_FRAMES_ZERO_POINT != 19) return 6;
  if (sm_twiddle_im_q31[1] != {int(t['twiddle_im_q31'][1])}) return 7;
  printf("%d\\n", SM_GATE_OPEN_ABOVE);
  return 0;
}}
""")
    exe = tmp_path / "check"
    subprocess.run(["gcc", "-std=c11", "-Wall", "-Wextra", "-Werror", "-o", str(exe),
                    str(tmp_path / "main.c"), str(tmp_path / "model_data.c")], check=True,
                   capture_output=True, text=True)
    done = subprocess.run([str(exe)], capture_output=True, text=True)
    assert done.returncode == 0, done.returncode
    # the gate opens above this int8 value exactly where the float rule opens
    thr = cfg.gate.threshold_logit
    open_above = int(done.stdout)
    for q in range(-128, 128):
        assert (q > open_above) == ((q + 4) * 0.0266 > thr), q


def test_export_command_writes_everything_and_refuses_clearly(tiny_corpus, mask_path, tmp_path):
    import json

    from speechmask.cli import main
    from speechmask.errors import SpeechmaskError

    from firmware_export.pipeline import OUTPUTS, export
    from firmware_export.tflite_int8 import ExportError

    out = tmp_path / "fw"
    assert main(["export", "--mask", str(mask_path), "--calib", str(tiny_corpus),
                 "--out", str(out)]) == 0
    assert all((out / n).is_file() for n in OUTPUTS)
    report = json.loads((out / "report.json").read_text())
    for key in ("ops", "params", "macs_per_second", "flash_bytes", "arena_bytes", "parity"):
        assert key in report
    assert report["flash_bytes"] == (out / "mask.tflite").stat().st_size
    assert set(report["parity"]) >= {"litert_vs_tflm_max_lsb", "gate_agreement"}
    with pytest.raises(SpeechmaskError, match="already exists"):
        export(mask_path, tiny_corpus, out)
    with pytest.raises(ExportError, match="RAM budget"):
        export(mask_path, tiny_corpus, tmp_path / "small", ram_budget=1024)
    assert not (tmp_path / "small" / "mask.tflite").exists()  # nothing half-written
