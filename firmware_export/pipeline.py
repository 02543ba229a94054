"""`speechmask export`: the trained mask -> int8 TFLite, ONNX (float and QDQ), C sources, and a
report of what the device will carry, each output checked on the real runtimes.

Work in progress (issue 5): the report does not yet hold the baselines' side-by-side cost."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from speechmask.atomic import atomic_output
from speechmask.errors import SpeechmaskError

from .headers import frontend_header, gates_header, model_data
from .keras_mask import INPUTS, build_keras
from .onnx_export import export_onnx, quantize_onnx, run_onnx
from .streaming import windows
from .tflite_int8 import (TFLM, ExportError, LiteRT, arena_bytes, convert_int8, int8_gates,
                          operators)

OUTPUTS = ("mask.tflite", "mask.onnx", "mask_int8.onnx", "model_data.h", "model_data.c",
           "speechmask_frontend.h", "speechmask_gates.h", "report.json", "report.md")


def export(mask_path: Path, calib_manifest: Path, out: Path, *, ram_budget: int = 128 * 1024,
           calib_utterances: int = 40, test_utterances: int = 20, force: bool = False) -> dict:
    """Write every output under `out` and return the report."""
    from speechmask.api import load_mask
    from speechmask.train.data import load_features

    if not force:
        existing = [n for n in OUTPUTS if (out / n).exists()]
        if existing:
            raise SpeechmaskError(f"{out / existing[0]}: already exists (use --force to replace)")
    mask = load_mask(mask_path)
    fs = load_features(calib_manifest, mask.cfg.frontend, progress=False)
    train = [i for i, r in enumerate(fs.rows) if r.get("split") == "train"][:calib_utterances]
    test = [i for i, r in enumerate(fs.rows) if r.get("split") == "test"][:test_utterances]
    if not train or not test:
        raise ExportError(f"{calib_manifest}: needs utterances with split 'train' (calibration) "
                          "and 'test' (parity checks)")
    calib = []
    for i in train:
        f, v, s, _, _ = windows(mask, fs.features[i])
        calib += [(f[k], v[k], s[k]) for k in range(len(f))]
    model = convert_int8(build_keras(mask), calib)
    ops = operators(model)
    arena = arena_bytes(model)  # fails with TFLite Micro's own message on an unsupported op
    if arena > ram_budget:
        raise ExportError(f"{mask_path}: the TFLite Micro arena needs {arena} bytes, over the RAM "
                          f"budget of {ram_budget} bytes")
    litert, micro = LiteRT(model), TFLM(model, arena + 4096)
    lsb, agree, total, calls, float_logits = 0, 0, 0, [], []
    for i in test:
        f, v, s, logits, float_gates = windows(mask, fs.features[i])
        test_calls = [(f[k], v[k], s[k]) for k in range(len(f))]
        calls += test_calls
        float_logits += list(logits)
        for c in test_calls:
            q = litert.quantized_inputs(c)
            lsb = max(lsb, int(np.abs(litert.run(c).astype(int) - micro.run(q).astype(int)).max()))
        gates = int8_gates(litert, mask, fs.features[i])[1]
        agree += int((gates == float_gates).sum())
        total += gates.size
    out.mkdir(parents=True, exist_ok=True)
    _write(out / "mask.tflite", model)
    fp = export_onnx(mask, out / "mask.onnx")
    qp = quantize_onnx(fp, out / "mask_int8.onnx", calib[:: max(1, len(calib) // 500)])
    onnx_float = run_onnx(fp, calls[:200])
    onnx_err = float(np.abs(onnx_float - np.array(float_logits[:200])).max())
    onnx_int8_err = float(np.abs(run_onnx(qp, calls[:200]) - onnx_float).max())
    h, c = model_data(model)
    _write(out / "model_data.h", h.encode())
    _write(out / "model_data.c", c.encode())
    _write(out / "speechmask_frontend.h", frontend_header(mask.cfg.frontend).encode())
    inputs = {n: litert.inputs[pos]["quantization"] for n, pos in zip(INPUTS, litert.order)}
    _write(out / "speechmask_gates.h",
           gates_header(mask.cfg, inputs, litert.output["quantization"]).encode())
    cost = mask.cost()
    report = {
        "mask": str(mask_path), "calibration_manifest": str(calib_manifest),
        "ops": ops, "params": cost["params"], "macs_per_second": cost["macs_per_second"],
        "flash_bytes": len(model), "arena_bytes": arena,
        "memory_bytes": len(model) + arena, "ram_budget_bytes": ram_budget,
        "window_frames": mask.cfg.window_frames,
        "calls_per_second": cost["segments_per_second"],
        "parity": {"litert_vs_tflm_max_lsb": lsb, "gate_agreement": agree / max(1, total),
                   "segments": total, "onnx_float_max_abs": onnx_err,
                   "onnx_int8_vs_float_max_abs": onnx_int8_err},
        "baselines": None,  # issue 5, not yet: side-by-side cost of the disentangling baselines
    }
    _write(out / "report.json", (json.dumps(report, indent=1) + "\n").encode())
    _write(out / "report.md", markdown(report).encode())
    return report


def markdown(r: dict) -> str:
    p = r["parity"]
    rows = [("operators", ", ".join(r["ops"])), ("parameters", r["params"]),
            ("MACs per second of audio (offline count)", r["macs_per_second"]),
            ("flash (model bytes)", r["flash_bytes"]),
            ("TFLite Micro arena (measured)", r["arena_bytes"]),
            ("flash + arena", r["memory_bytes"]),
            ("calls per second (one per segment)", f"{r['calls_per_second']:g}"),
            ("frames per call (window)", r["window_frames"]),
            ("LiteRT vs TFLite Micro, max difference", f"{p['litert_vs_tflm_max_lsb']} LSB"),
            ("int8 gates == float gates", f"{100 * p['gate_agreement']:.2f} % of "
                                         f"{p['segments']} segments"),
            ("ONNX float vs PyTorch, max |diff|", f"{p['onnx_float_max_abs']:.2g}"),
            ("ONNX QDQ int8 vs float, max |diff|", f"{p['onnx_int8_vs_float_max_abs']:.2g}")]
    return ("# Export report\n\n| | |\n|---|---|\n" +
            "".join(f"| {k} | {v} |\n" for k, v in rows))


def _write(path: Path, data: bytes) -> None:
    with atomic_output(path) as tmp:
        Path(tmp).write_bytes(data)
