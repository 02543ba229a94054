"""Export: the streaming call the firmware makes reproduces the offline
mask exactly, its Keras twin matches it in float, and the int8 TFLite model gives the same
outputs in ai-edge-litert and in TFLite Micro's host interpreter."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from speechmask.api import load_mask
from speechmask.device import mask_cost
from speechmask.masking import gate_logits
from speechmask.models.mask import MaskConfig, MaskGenerator

from speechmask.device import float_calls, input_shapes

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


def _calls(mask, frames, seeds):
    return [c for s in seeds for c in float_calls(mask, _features(mask, frames, s))[0]]


@pytest.mark.parametrize("arch", ["trained", "small", "tiny"])
def test_streaming_calls_reproduce_the_offline_mask(masks, arch):
    mask = masks[arch]
    feats = _features(mask, 203, 1)
    calls, logits, gates = float_calls(mask, feats)
    offline = gate_logits(mask, feats)
    n = mask.cfg.frames_per_segment
    assert logits.shape == offline.shape == (203 // n, mask.cfg.gate.band_groups)
    np.testing.assert_allclose(logits, offline, atol=1e-4)
    # each call sees only its segment's new frames and the layers' histories
    assert [c.shape for c in calls[0]] == input_shapes(mask.cfg)
    np.testing.assert_array_equal(calls[3][0], feats[3 * n: 4 * n])
    assert all(not h.any() for h in calls[0][1:-1])  # zero histories at the utterance start
    if arch != "trained":
        assert 0 < gates.mean() < 1  # both decisions occur: the feedback path is exercised


@pytest.mark.parametrize("arch", ["trained", "small", "tiny"])
def test_keras_twin_matches_pytorch_in_float(masks, arch):
    from firmware_export.keras_mask import build_keras
    from speechmask.device import StreamingCall
    from speechmask.device.int8 import model_layout

    mask = masks[arch]
    model = build_keras(mask)
    ref = StreamingCall(mask)
    for call in _calls(mask, 60, [2]):
        got = model([model_layout(a) for a in call])
        with torch.no_grad():
            want = ref(*(torch.from_numpy(a)[None] for a in call))
        for g, w in zip(got, want):  # tanh_logit and every new history frame
            np.testing.assert_allclose(np.asarray(g).reshape(w.shape), w.numpy(), atol=1e-4)


@pytest.mark.parametrize("arch", ["trained", "tiny"])
def test_int8_model_agrees_in_litert_and_tflite_micro(masks, arch):
    """On random features (`speechmask export` checks real ones)."""
    from firmware_export.keras_mask import build_keras
    from speechmask.device.int8 import LiteRT, dequantize, gate_open_above, int8_gates

    from firmware_export.tflite_int8 import (TFLM, arena_bytes, check_histories, convert_int8,
                                             operators)

    mask = masks[arch]
    cfg = mask.cfg
    model = convert_int8(build_keras(mask), cfg, _calls(mask, 160, range(4)))
    litert = LiteRT(model, cfg)
    assert all(d["dtype"] == np.int8 for d in litert.inputs + litert.outputs)
    check_histories(litert)  # the firmware copies new frames into its histories byte for byte
    arena = arena_bytes(model)
    assert 500 < arena < 64 * 1024
    micro = TFLM(model, arena + 4096, litert)
    feats = _features(mask, 200, 9)
    calls, logits, gates = float_calls(mask, feats)
    open_above = gate_open_above(cfg, litert.quant_out[0])
    agree, err = [], []
    for call, la, z in zip(calls, logits, gates):
        q = litert.quantized(call)
        a, b = litert.run_int8(q), micro.run_int8(q)
        for x, y in zip(a, b):  # every output, histories included
            assert np.abs(x.astype(int) - y.astype(int)).max() <= 1
        err.append(np.abs(cfg.logit_bound * dequantize(a[0], litert.quant_out[0]) - la).max())
        agree.append((a[0].astype(int) > open_above) == (z > 0))
    # the int8 logits are the float ones up to quantization noise (random weights: wide sums)
    assert np.median(err) < 0.1 and max(err) < 0.25 * cfg.logit_bound
    assert np.mean(agree) >= 0.95  # the same inputs: the same gates
    out, loop = int8_gates(litert, feats)  # the device's own closed loop runs end to end
    assert out.dtype == np.int8 and loop.shape == gates.shape and set(np.unique(loop)) <= {0, 1}
    assert (loop == gates).mean() >= 0.9
    ops = operators(model)
    assert "FULLY_CONNECTED" in ops and "TANH" in ops and not any("FLEX" in o for o in ops)
    assert "PAD" not in ops  # no window recomputed: histories replace padding


def test_contract_stamp_in_the_tflite_metadata_changes_nothing_else(masks):
    """The stamp is read back from the model's metadata; both runtimes give the same outputs
    and TFLite Micro the same arena as on the converter's model; buffers stay 16-byte aligned."""
    from ai_edge_litert import schema_py_generated as schema

    from speechmask.device import stamp
    from speechmask.device.int8 import LiteRT, read_tflite_stamp, stamp_tflite

    from firmware_export.keras_mask import build_keras
    from firmware_export.tflite_int8 import TFLM, arena_bytes, convert_int8

    mask = masks["tiny"]
    plain = convert_int8(build_keras(mask), mask.cfg, _calls(mask, 80, [0]))
    assert read_tflite_stamp(plain) is None
    stamped = stamp_tflite(plain, stamp(mask))
    assert read_tflite_stamp(stamped) == stamp(mask)
    assert read_tflite_stamp(stamp_tflite(stamped, stamp(mask))) == stamp(mask)  # replaced
    arena = arena_bytes(plain)
    assert arena_bytes(stamped) == arena
    runtimes = []
    for model in (plain, stamped):
        litert = LiteRT(model, mask.cfg)
        runtimes.append((litert, TFLM(model, arena + 4096, litert)))
    for call in _calls(mask, 40, [5]):
        outs = [rt.run(call) if isinstance(rt, LiteRT) else rt.run_int8(lit.quantized(call))
                for lit, micro in runtimes for rt in (lit, micro)]
        for a, b in zip(outs[0], outs[2]):  # LiteRT, plain vs stamped
            np.testing.assert_array_equal(a, b)
        for a, b in zip(outs[1], outs[3]):  # TFLite Micro, plain vs stamped
            np.testing.assert_array_equal(a, b)
    root = schema.Model.GetRootAs(stamped, 0)
    for i in range(root.BuffersLength()):
        buf = root.Buffers(i)
        if buf.DataLength():
            assert buf.DataAsNumpy().ctypes.data % 16 == \
                np.frombuffer(stamped, np.uint8).ctypes.data % 16
    with pytest.raises(Exception, match="not a TFLite model"):
        read_tflite_stamp(b"not a model at all")


def test_graph_count_matches_the_offline_count(masks):
    """MACs read from the int8 graph per call x calls per second == the PyTorch forward-hook
    count per second (+ the normaliser and feedback, which the hooks do not see)."""
    from firmware_export.graph_cost import estimate, graph_cost
    from firmware_export.keras_mask import build_keras
    from firmware_export.tflite_int8 import convert_int8

    mask = masks["trained"]
    model = convert_int8(build_keras(mask), mask.cfg, _calls(mask, 80, [0]))
    graph = graph_cost(model)
    per_second = mask.cfg.frontend.frames_per_second / mask.cfg.frames_per_segment
    offline = mask_cost(mask)["macs_per_second"]
    extra = per_second * (mask.cfg.frames_per_segment * mask.cfg.frontend.n_mels + mask.cfg.feedback)
    assert graph["macs"] * per_second == pytest.approx(offline + extra, rel=1e-6)
    est = estimate(graph, per_second)
    assert est["ms_per_second"] == pytest.approx(est["ms_per_call"] * per_second)
    assert "estimate" in est["method"]


@pytest.mark.parametrize("arch", ["trained", "tiny"])
def test_onnx_float_and_qdq_int8_run_in_onnxruntime(masks, arch, tmp_path):
    pytest.importorskip("onnxruntime")
    from firmware_export.onnx_export import export_onnx, quantize_onnx, run_onnx

    mask = masks[arch]
    fp = export_onnx(mask, tmp_path / "mask.onnx")
    q = quantize_onnx(fp, tmp_path / "mask_int8.onnx", _calls(mask, 160, range(3)))
    calls, logits, _ = float_calls(mask, _features(mask, 160, 9))
    bound = mask.cfg.logit_bound
    np.testing.assert_allclose(bound * run_onnx(fp, calls), logits, atol=1e-4)
    int8 = bound * run_onnx(q, calls)
    import onnx

    ops = {n.op_type for n in onnx.load(q).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    assert np.abs(int8 - logits).max() < 0.25 * bound


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
    contract = {"contract_version": 7, "export_id": "0123456789abcdef"}
    h, c = model_data(model, contract)
    (tmp_path / "model_data.h").write_text(h)
    (tmp_path / "model_data.c").write_text(c)
    (tmp_path / "speechmask_frontend.h").write_text(frontend_header(cfg.frontend, contract))
    from types import SimpleNamespace

    from speechmask.device import input_names, output_names

    n_in, n_out = len(input_names(cfg)), len(output_names(cfg))
    fake = SimpleNamespace(quant_in=[(0.08, 19)] + [(0.03, -128)] * (n_in - 2) + [(1 / 255, -128)],
                           quant_out=[(1 / 128, 0)] + [(0.03, -128)] * (n_out - 1),
                           in_pos=list(range(n_in))[::-1], out_pos=list(range(n_out)))
    gates = gates_header(cfg, fake, contract)
    (tmp_path / "speechmask_gates.h").write_text(gates)
    t = tables(cfg.frontend)
    k5 = int(np.flatnonzero(t["mel_q15"][5])[0])  # band 5's first bin (the runs' layout)
    (tmp_path / "main.c").write_text(f"""
#include <stdio.h>
#include <stdint.h>
#include <string.h>
#include "model_data.h"
#include "speechmask_frontend.h"
#include "speechmask_gates.h"
int main(void) {{
  if (g_speechmask_model_len != {len(model)}u || g_speechmask_model[{len(model) - 1}] != 1) return 1;
  if (((uintptr_t)g_speechmask_model) % 16 != 0) return 2;
  if (sm_window_q15[100] != {int(t['window_q15'][100])}) return 3;
  if (sm_mel_first[5] != {k5} || sm_mel_count[5] < 2 ||
      sm_mel_weights[sm_mel_offset[5] + 1] != {int(t['mel_q15'][5, k5 + 1])}) return 4;
  if (SM_N_MELS != {cfg.frontend.n_mels} || SM_HISTORY2_FRAMES != {(cfg.kernel - 1) * 4}) return 5;
  if (SM_FRAMES_INPUT_INDEX != {n_in - 1} || SM_STATE_INPUT_INDEX != 0) return 8;
  if (SM_FRAMES_PER_SEGMENT != {cfg.frames_per_segment} || SM_FRAMES_ZERO_POINT != 19) return 6;
  if (sm_twiddle_im_q31[1] != {int(t['twiddle_im_q31'][1])}) return 7;
  if (SM_CONTRACT_VERSION != 7 || SM_EXPORT_ID_U64 != 0x0123456789abcdefULL) return 9;
  if (strcmp(SM_EXPORT_ID, "0123456789abcdef") != 0) return 10;
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
        assert (q > open_above) == (q / 128 * cfg.logit_bound > thr), q


def test_export_command_writes_everything_and_refuses_clearly(tiny_corpus, mask_path, tmp_path,
                                                             capsys):
    """The freshly trained mask exports end to end (both TFLite runtimes, onnxruntime); bad
    inputs are refused with errors naming the file and the problem, and nothing is written."""
    import json

    import torch

    from speechmask.cli import main
    from speechmask.errors import SpeechmaskError
    from speechmask.train.checkpoint import CheckpointError

    from firmware_export.config import ExportConfig
    from firmware_export.pipeline import OUTPUTS, export

    out = tmp_path / "fw"
    assert main(["export", "--mask", str(mask_path), "--calib", str(tiny_corpus),
                 "--out", str(out)]) == 0
    assert all((out / n).is_file() for n in OUTPUTS)
    report = json.loads((out / "report.json").read_text())
    for key in ("ops", "params", "macs_per_second", "flash_bytes", "arena_bytes",
                "est_ms_per_second_480mhz", "parity", "baselines"):
        assert key in report
    assert report["flash_bytes"] == (out / "mask.tflite").stat().st_size
    p = report["parity"]
    assert p["litert_vs_tflm_max_lsb"] <= 1 and p["gate_agreement"] >= 0.98
    assert report["call_budget_ms"] == 40 and report["est_ms_per_second_480mhz"] < 4.8
    assert {b["name"] for b in report["baselines"]} == {"vae", "ppslu"}
    ours = report["analytic"]["memory_bytes"]
    for b in report["baselines"]:
        assert {"macs_per_second", "memory_bytes", "compute_ratio", "memory_ratio"} <= set(b)
        assert b["compute_ratio"] == pytest.approx(b["macs_per_second"] / report["macs_per_second"])
        assert b["memory_ratio"] == pytest.approx(b["memory_bytes"] / ours)
        assert b["memory_bytes"] == b["weight_bytes"] + b["state_bytes"] + b["activation_bytes"]
    vae = next(b for b in report["baselines"] if b["name"] == "vae")
    assert vae["streaming"] and vae["memory_bytes"] < vae["memory_bytes_offline"]
    assert "Side by side" in (out / "report.md").read_text()
    # the contract stamp in the report, the model's metadata and every C header; the analytic
    # cost is the one the attack suite quotes (one definition)
    from speechmask.device import mask_cost, stamp
    from speechmask.device.int8 import read_tflite_stamp

    mask = load_mask(mask_path)
    want = stamp(mask)
    assert {k: report[k] for k in want} == want
    assert read_tflite_stamp((out / "mask.tflite").read_bytes()) == want
    for header in ("model_data.h", "speechmask_frontend.h", "speechmask_gates.h",
                   "test_vectors.h"):
        text = (out / header).read_text()
        assert f'#define SM_EXPORT_ID "{want["export_id"]}"' in text
        assert f"#define SM_CONTRACT_VERSION {want['contract_version']}" in text
    assert report["analytic"] == mask_cost(mask)
    # the export's own C, headers and test vectors: the self-test passes on the host
    assert main(["firmware", "build", "--export", str(out), "--board", "host",
                 "--out", str(tmp_path / "host"), "--run"]) == 0

    with pytest.raises(SpeechmaskError, match="already exists"):
        export(mask_path, tiny_corpus, out)
    from firmware_export.tflite_int8 import ExportError

    with pytest.raises(ExportError, match=r"RAM budget.*at operator \d+ \([A-Z_0-9]+, \d+ bytes"):
        export(mask_path, tiny_corpus, tmp_path / "small", ExportConfig(ram_budget=1024))
    assert not (tmp_path / "small").exists()  # nothing half-written
    bad = tmp_path / "bad"
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        export(tmp_path / "none.pt", tiny_corpus, bad)
    (tmp_path / "corrupt.pt").write_bytes(mask_path.read_bytes()[:500])
    with pytest.raises(CheckpointError, match="corrupt"):
        export(tmp_path / "corrupt.pt", tiny_corpus, bad)
    blob = torch.load(mask_path, weights_only=True)
    torch.save({**blob, "version": 999}, tmp_path / "future.pt")
    with pytest.raises(CheckpointError, match="version 999 is not supported"):
        export(tmp_path / "future.pt", tiny_corpus, bad)
    with pytest.raises(SystemExit) as exit_:  # the CLI: one line naming the file, exit 1
        main(["export", "--mask", str(tmp_path / "future.pt"), "--calib", str(tiny_corpus),
              "--out", str(bad)])
    assert exit_.value.code == 1
    assert "future.pt: mask checkpoint version 999" in capsys.readouterr().err
    assert not bad.exists()


def test_an_operator_tflite_micro_lacks_is_refused_by_name():
    """TOPK_V2 converts for TFLite but has no TFLite Micro kernel."""
    import tensorflow as tf

    from firmware_export.tflite_int8 import ExportError, arena_bytes

    @tf.function(input_signature=[tf.TensorSpec([1, 16], tf.float32)])
    def top3(x):
        return tf.math.top_k(x, 3).values

    model = tf.lite.TFLiteConverter.from_concrete_functions([top3.get_concrete_function()]).convert()
    with pytest.raises(ExportError, match="no kernel for operator.*TOPK_V2"):
        arena_bytes(model)


def test_the_vae_baseline_streams_like_the_device_would():
    """The VAE's like-for-like memory counts `encode_stream`: chunk by chunk it equals the
    offline encoder, and its state is the convolution histories and the GRU's hidden state."""
    from speechmask.models.baselines import DisentanglingVAE

    torch.manual_seed(0)
    vae = DisentanglingVAE(40, 2).eval()
    x = torch.randn(2, 37, 40)
    with torch.no_grad():
        offline, _ = vae.encode(x)
        state, parts = None, []
        for s in range(0, x.shape[1], 4):
            out, state = vae.encode_stream(x[:, s:s + 4], state)
            parts.append(out)
    assert torch.allclose(torch.cat(parts, 1), offline, atol=1e-5)
    assert [tuple(t.shape) for t in state] == [(2, 40, 4), (2, 256, 4), (1, 2, 256)]
    m = vae.streaming_memory(4)
    assert m["state_bytes"] == 4 * 40 + 4 * 256 + 256
    # the widest layer: the second convolution, (4 history + 4 new) x 256 in, 4 x 256 out
    assert m["activation_bytes"] == 8 * 256 + 4 * 256


def test_tensorflows_native_output_is_kept_from_the_terminal_unless_something_fails(capfd):
    import os

    from firmware_export.quiet import native_output_captured
    from speechmask.errors import SpeechmaskError

    with native_output_captured():
        os.write(2, b"absl noise\n")
        os.write(1, b"SavedModel signature\n")
    out, err = capfd.readouterr()
    assert "noise" not in err and "signature" not in out
    with pytest.raises(RuntimeError), native_output_captured():
        os.write(2, b"converter crashed here\n")
        raise RuntimeError("boom")
    assert "converter crashed here" in capfd.readouterr().err
    with pytest.raises(SpeechmaskError), native_output_captured():
        os.write(2, b"absl noise\n")
        raise SpeechmaskError("a clear refusal")
    assert "noise" not in capfd.readouterr().err  # a refusal speaks for itself
