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
