"""`speechmask export`: the trained mask -> int8 TFLite, ONNX (float and QDQ), C sources, and a
report of what the device will carry and compute, each output checked on the real runtimes and
set beside the disentangling baselines of the attack suite."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from speechmask.atomic import atomic_output
from speechmask.device.send import utterance_level
from speechmask.features_int import log_mel_int
from speechmask.device import (StreamingCall, float_calls, history_values, mask_cost, stamp)
from speechmask.device.int8 import (LiteRT, gate_open_above, int8_gates, model_layout,
                                    stamp_tflite)
from speechmask.outputs import OutputFolder

from .codegen import Generator
from .config import ExportConfig
from .csources import CORE_FILES, core_sources
from .graph_cost import estimate, graph_cost
from .headers import frontend_header, gates_header, model_data
from .keras_mask import build_keras
from .onnx_export import export_onnx, quantize_onnx, run_onnx
from .quiet import native_output_captured
from .tflite_int8 import TFLM, ExportError, arena_bytes, check_histories, convert_int8, operators
from .vectors import device_reference, frontend_vectors

OUTPUTS = ("mask.tflite", "mask.onnx", "mask_int8.onnx", "model_data.h", "model_data.c",
           "speechmask_frontend.h", "speechmask_gates.h", *CORE_FILES, "sm_model.h",
           "sm_model.c", "model.blob", "test_vectors.h", "mask_config.json", "report.json",
           "report.md")
VECTOR_CALLS = 16  # real calls of the int8 model in the firmware's test vectors
BASELINE_CLIP_S = 4.0  # the baselines encode whole clips; SILENCE quotes 4 s clips


def export(mask_path: Path, calib_manifest: Path, out: Path,
           settings: ExportConfig | None = None, *, force: bool = False,
           progress: bool = True) -> dict:
    """Write every output into the folder `out` as one set and return the report. Every check
    that can fail fast runs first (the folder, the checkpoint, the manifest); a failure later
    (over budget, a runtime mismatch) writes nothing."""
    from speechmask.api import load_mask
    from speechmask.train.data import load_features

    settings = ExportConfig() if settings is None else settings
    ram_budget = settings.ram_budget
    folder = OutputFolder(out, force, owned=OUTPUTS)
    folder.check()
    mask = load_mask(mask_path)  # CheckpointError: missing, corrupt, other kind or version
    cfg = mask.cfg
    contract = stamp(mask)
    fs = load_features(calib_manifest, cfg.frontend, progress=progress)
    train = [i for i, r in enumerate(fs.rows)
             if r.get("split") == "train"][:settings.calib_utterances]
    test = [i for i, r in enumerate(fs.rows)
            if r.get("split") == "test"][:settings.test_utterances]
    if not train or not test:
        raise ExportError(f"{calib_manifest}: needs utterances with split 'train' (calibration) "
                          "and 'test' (parity checks)")
    calib = [c for i in train for c in float_calls(mask, fs.features[i])[0]]
    with native_output_captured():  # TensorFlow's C++ logs, shown only if conversion fails
        keras_model = build_keras(mask)
        _check_twin(keras_model, mask, calib[:: max(1, len(calib) // 50)])
        model = stamp_tflite(convert_int8(keras_model, cfg, calib), contract)
    ops = operators(model)
    arena = arena_bytes(model)  # refuses, by name, an operator TFLite Micro lacks
    generated = Generator(model)  # CodegenError names an operator it cannot write
    model_h, model_c, plan = generated.generate(contract)
    if arena > ram_budget:
        peak = plan["peak"]
        raise ExportError(f"{mask_path}: the TFLite Micro arena needs {arena} bytes, over the RAM "
                          f"budget of {ram_budget} bytes (--ram-budget); the largest live set of "
                          f"activations is at operator {peak['operator']} ({peak['name']}, "
                          f"{peak['live_bytes']} bytes)")
    litert = LiteRT(model, cfg)
    check_histories(litert)
    micro = TFLM(model, arena + 4096, litert)
    open_above = gate_open_above(cfg, litert.quant_out[0])

    lsb = 0
    for call in calib:  # the two runtimes on every calibration call ...
        lsb = max(lsb, _lsb(litert, micro, call)[0])
    agree = total = loop_agree = 0
    float_open = int8_open = 0.0
    test_calls, test_logits = [], []
    for i in test:  # ... and every test call
        calls, logits, gates = float_calls(mask, fs.features[i])
        test_calls += calls
        test_logits += list(logits)
        for call, z in zip(calls, gates):
            diff, q = _lsb(litert, micro, call)  # q: LiteRT's outputs, the float call's inputs
            lsb = max(lsb, diff)
            agree += int(((q[0].astype(np.int32) > open_above) == (z > 0)).sum())
        loop = int8_gates(litert, fs.features[i])[1]  # the int8 model's own closed loop
        loop_agree += int((loop == gates).sum())
        total += gates.size
        float_open += float(gates.sum())
        int8_open += float(loop.sum())

    parity = {"litert_vs_tflm_max_lsb": lsb, "gate_agreement": agree / max(1, total),
              "closed_loop_gate_agreement": loop_agree / max(1, total),
              "open_fraction_float": float_open / max(1, total),
              "open_fraction_int8": int8_open / max(1, total), "segments": total,
              "calls_checked_in_both_runtimes": len(calib) + len(test_calls)}
    pcm = vector_utterance(calib_manifest, [fs.rows[i] for i in test], cfg)
    level = utterance_level(log_mel_int(pcm, cfg.frontend), cfg)
    vectors = frontend_vectors(pcm, cfg, contract,
                               _model_calls(litert, micro, test_calls[:VECTOR_CALLS]),
                               device_reference(pcm, cfg, micro, litert, level))
    parity["generated_arena_bytes"] = plan["arena_bytes"]
    parity["generated_constant_bytes"] = plan["constant_bytes"]
    with folder.staged() as staging:
        parity.update(_write_sources(staging, mask, model, litert, calib, test_calls,
                                     test_logits, contract))
        _write(staging / "test_vectors.h", vectors.encode())
        _write(staging / "sm_model.h", model_h.encode())
        _write(staging / "sm_model.c", model_c.encode())
        _write(staging / "model.blob", plan["blob"])  # the same constants, for MODEL upload
        # the mask's configuration, so the export folder alone rebuilds the device's reference
        # (`speechmask board`: what the firmware must send)
        _write(staging / "mask_config.json",
               (json.dumps(cfg.to_dict(), indent=1) + "\n").encode())
        report = _report(mask, model, arena, ops, parity, contract,
                         {"mask": str(mask_path), "calibration_manifest": str(calib_manifest)},
                         ram_budget)
        _write(staging / "report.json", (json.dumps(report, indent=1) + "\n").encode())
        _write(staging / "report.md", markdown(report).encode())
    return report


def _model_calls(litert: LiteRT, micro: TFLM, calls: list) -> list:
    """(int8 inputs, TFLite Micro's int8 outputs) of float `calls`, flat NHWC, in the `.tflite`
    model's own input and output order (the generated C's)."""
    out = []
    for call in calls:
        q = litert.quantized(call)
        ref = micro.run_int8(q)
        ins, outs = [None] * len(q), [None] * len(ref)
        for a, pos in zip(q, litert.in_pos):
            ins[pos] = model_layout(a).reshape(-1).astype(np.int8)
        for a, pos in zip(ref, litert.out_pos):
            outs[pos] = model_layout(a).reshape(-1).astype(np.int8)
        out.append((ins, outs))
    return out


def vector_utterance(manifest: Path, rows: list[dict], cfg) -> np.ndarray:
    """The int16 PCM of the firmware's test vectors: the first of `rows` (test utterances) for
    which the reference draws a warp level other than 0, so that the self-test exercises every
    send step (the first row when the warp is off or no row draws one)."""
    from speechmask.audio import read_adc, to_pcm16
    from speechmask.corpus.manifest import resolve_audio
    first = None
    for row in rows:
        pcm = to_pcm16(read_adc(resolve_audio(manifest, row)))  # AudioError names the file
        if pcm.size < cfg.frontend.win_length:
            continue
        first = pcm if first is None else first
        if utterance_level(log_mel_int(pcm, cfg.frontend), cfg) != 0:
            return pcm
    if first is None:
        raise ExportError(f"{manifest}: no 'test' utterance is long enough for the firmware's "
                          "test vectors")
    return first


def _write_sources(out: Path, mask, model: bytes, litert: LiteRT, calib: list, test_calls: list,
                   test_logits: list, contract: dict) -> dict:
    """The model files and C sources into `out`; returns ONNX's parity figures."""
    cfg = mask.cfg
    _write(out / "mask.tflite", model)
    fp = export_onnx(mask, out / "mask.onnx")
    qp = quantize_onnx(fp, out / "mask_int8.onnx", calib[:: max(1, len(calib) // 500)])
    onnx_float = cfg.logit_bound * run_onnx(fp, test_calls[:200])  # tanh_logit -> log_alpha
    onnx_err = float(np.abs(onnx_float - np.array(test_logits[:200])).max())
    onnx_int8_err = float(np.abs(cfg.logit_bound * run_onnx(qp, test_calls[:200])
                                 - onnx_float).max())
    h, c = model_data(model, contract)
    _write(out / "model_data.h", h.encode())
    _write(out / "model_data.c", c.encode())
    _write(out / "speechmask_frontend.h", frontend_header(cfg.frontend, contract).encode())
    _write(out / "speechmask_gates.h", gates_header(cfg, litert, contract).encode())
    for name, data in core_sources().items():  # the C that reads those headers
        _write(out / name, data)
    return {"onnx_float_max_abs": onnx_err, "onnx_int8_vs_float_max_abs": onnx_int8_err}


def _report(mask, model: bytes, arena: int, ops: list[str], parity: dict, contract: dict,
            sources: dict, ram_budget: int) -> dict:
    cfg = mask.cfg
    calls_per_second = cfg.frontend.frames_per_second / cfg.frames_per_segment
    graph = graph_cost(model)
    est = estimate(graph, calls_per_second)
    ours = mask_cost(mask)
    macs = int(round(graph["macs"] * calls_per_second))
    return {
        **contract, **sources,
        "ops": ops, "params": ours["params"], "macs_per_second": macs,
        "macs_per_call": graph["macs"], "flash_bytes": len(model), "arena_bytes": arena,
        "memory_bytes": len(model) + arena, "ram_budget_bytes": ram_budget,
        "calls_per_second": calls_per_second, "frames_per_call": cfg.frames_per_segment,
        "samples_per_call": cfg.frames_per_segment * cfg.frontend.hop_length,
        "call_budget_ms": 1000 / calls_per_second,
        "history_bytes": history_values(cfg),
        "est_ms_per_call_480mhz": est["ms_per_call"],
        "est_ms_per_second_480mhz": est["ms_per_second"],
        "est_cpu_share": est["cpu_share"], "est_method": est["method"],
        "parity": parity,
        "analytic": ours,
        "baselines": baseline_costs(cfg.frontend, cfg.frames_per_segment, macs, ours,
                                    len(model) + arena),
    }


def _lsb(litert: LiteRT, micro: TFLM, call: list[np.ndarray]) -> tuple[int, list[np.ndarray]]:
    """Largest difference, in int8 steps, between the two runtimes' outputs on one call, and
    LiteRT's outputs."""
    q = litert.quantized(call)
    ours = litert.run_int8(q)
    return max(int(np.abs(a.astype(np.int32) - b.astype(np.int32)).max())
               for a, b in zip(ours, micro.run_int8(q))), ours


def _check_twin(keras_model, mask, calls: list[list[np.ndarray]]) -> None:
    """The float Keras twin must compute what PyTorch computes before anything is quantized."""
    ref = StreamingCall(mask)
    for call in calls:
        with torch.no_grad():
            want = ref(*(torch.from_numpy(a)[None] for a in call))[0][0].numpy()
        got = np.asarray(keras_model([model_layout(a) for a in call])[0])[0]
        if np.abs(got - want).max() > 1e-3:
            raise ExportError(f"the Keras twin of the {mask.cfg.arch!r} mask differs from PyTorch "
                              f"by {np.abs(got - want).max():.3g}: a builder bug, please report")


def baseline_costs(frontend, frames_per_call: int, ours_macs: int, ours_analytic: dict,
                   ours_measured: int) -> list[dict]:
    """The attack suite's disentangling baselines, counted analytically (their device parts hold
    GRU and attention layers that would each need a Keras twin to convert): MACs, int8 weights
    and peak int8 activations by forward hooks (`models.cost`) on a 4 s clip. Their size does
    not depend on training, so untrained ones of the suite's shape are counted. `ours_analytic`
    is `speechmask.device.mask_cost` of our mask, `ours_measured` our flash + arena.

    Memory is compared like for like. The VAE's encoder is causal (convolutions and a
    one-way GRU), so a device would stream it as it streams our mask: its `memory_bytes` are
    weights + state + one call's activations (`DisentanglingVAE.streaming_memory`, for a network
    `encode_stream` runs), with the whole-clip count kept as `memory_bytes_offline`. PPSLU's
    self-attention reads the whole utterance, so its whole-clip count is what a device needs."""
    from speechmask.models.baselines import DisentanglingVAE, PPSLUEncoder
    from speechmask.models.cost import count_cost

    n_mels = frontend.n_mels
    example = torch.zeros(1, int(frontend.frames_per_second * BASELINE_CLIP_S), n_mels)
    ours_memory, ours_weights = ours_analytic["memory_bytes"], ours_analytic["weight_bytes"]
    out = []
    for name, model in (("vae", DisentanglingVAE(n_mels, 2)), ("ppslu", PPSLUEncoder(n_mels, 2, 2))):
        c = count_cost(model.device_part(), example, BASELINE_CLIP_S)
        offline = c["weight_bytes"] + c["activation_bytes"]
        row = {"name": name, "params": c["params"], "macs_per_second": c["macs_per_second"],
               "weight_bytes": c["weight_bytes"], "memory_bytes_offline": offline,
               "memory_ratio_offline": offline / max(1, ours_memory)}
        if hasattr(model, "streaming_memory"):  # a causal encoder a device would stream
            stream = model.streaming_memory(frames_per_call)
            memory = c["weight_bytes"] + stream["state_bytes"] + stream["activation_bytes"]
            row.update(method=f"analytic (forward hooks), not converted; streamed "
                              f"{frames_per_call} frames per call like ours",
                       streaming=True, state_bytes=stream["state_bytes"],
                       activation_bytes=stream["activation_bytes"])
        else:
            memory = offline
            row.update(method=f"analytic (forward hooks, {BASELINE_CLIP_S:g} s clip), not "
                              "converted; whole utterance (self-attention)",
                       streaming=False, state_bytes=0, activation_bytes=c["activation_bytes"])
        row.update(memory_bytes=memory, compute_ratio=c["macs_per_second"] / max(1, ours_macs),
                   memory_ratio=memory / max(1, ours_memory),
                   memory_ratio_vs_measured=memory / max(1, ours_measured),
                   weight_ratio=c["weight_bytes"] / max(1, ours_weights))
        out.append(row)
    return out


def markdown(r: dict) -> str:
    p, a = r["parity"], r["analytic"]
    rows = [("device contract version / export id", f"{r['contract_version']} / "
                                                     f"{r['export_id']}"),
            ("operators (all in TFLite Micro)", ", ".join(r["ops"])),
            ("parameters", r["params"]),
            ("calls per second / budget per call", f"{r['calls_per_second']:g} / "
                                                   f"{r['call_budget_ms']:g} ms "
                                                   f"({r['samples_per_call']} samples at 16 kHz)"),
            ("new frames per call; history kept between calls",
             f"{r['frames_per_call']}; {r['history_bytes']} int8 values"),
            ("MACs per call / per second of audio (int8 graph)",
             f"{r['macs_per_call']} / {r['macs_per_second']}"),
            ("flash (model bytes)", r["flash_bytes"]),
            ("TFLite Micro arena (measured, host interpreter)", r["arena_bytes"]),
            ("flash + arena", r["memory_bytes"]),
            ("generated C (sm_model.c): arena / constants",
             f"{p.get('generated_arena_bytes', '-')} / {p.get('generated_constant_bytes', '-')} "
             "bytes"),
            ("analytic: int8 weights + activations + histories", a["memory_bytes"]),
            ("est. time per call / per second of audio at 480 MHz",
             f"{r['est_ms_per_call_480mhz']:.3f} ms / {r['est_ms_per_second_480mhz']:.2f} ms "
             f"({100 * r['est_cpu_share']:.2f} % of the core)"),
            ("LiteRT vs TFLite Micro, max difference",
             f"{p['litert_vs_tflm_max_lsb']} LSB on {p['calls_checked_in_both_runtimes']} calls"),
            ("int8 gates == float gates (same inputs)",
             f"{100 * p['gate_agreement']:.2f} % of {p['segments']} segments"),
            ("closed loop (each model's own gates fed back)",
             f"{100 * p['closed_loop_gate_agreement']:.2f} %; open fraction float "
             f"{100 * p['open_fraction_float']:.1f} %, int8 {100 * p['open_fraction_int8']:.1f} %"),
            ("ONNX float vs PyTorch, max |diff|", f"{p['onnx_float_max_abs']:.2g}"),
            ("ONNX QDQ int8 vs float, max |diff|", f"{p['onnx_int8_vs_float_max_abs']:.2g}")]
    text = ("# Export report\n\n| | |\n|---|---|\n"
            + "".join(f"| {k} | {v} |\n" for k, v in rows)
            + f"\nTime: {r['est_method']}.\n\n## Side by side: the disentangling baselines\n\n"
            "| device part | MACs / s | memory (bytes) | compute: baseline / ours | "
            "memory: baseline / ours (analytic, like for like) | weights only | "
            "offline (whole 4 s clip) | vs our measured flash + arena |\n"
            "|---|---|---|---|---|---|---|---|\n"
            f"| speechmask (int8 graph; analytic memory, streamed) | {r['macs_per_second']} | "
            f"{a['memory_bytes']} | 1 | 1 | 1 | - | - |\n")
    for b in r["baselines"]:
        text += (f"| {b['name']} ({b['method']}) | {b['macs_per_second']} | {b['memory_bytes']} | "
                 f"{b['compute_ratio']:.1f}x | {b['memory_ratio']:.1f}x | "
                 f"{b['weight_ratio']:.1f}x | {b['memory_ratio_offline']:.1f}x | "
                 f"{b['memory_ratio_vs_measured']:.1f}x |\n")
    return text + ("\nMemory, analytic: int8 weights + state + peak int8 activations of one call, "
                   "counted alike for ours and for a baseline that streams; offline: the baseline "
                   "run on a whole 4 s clip; measured: our flash + arena, which add TFLite's "
                   "flatbuffer and TFLite Micro's bookkeeping that the analytic counts lack. "
                   "SILENCE's anchors: 53.3x less compute, 134.1x less memory.\n")


def _write(path: Path, data: bytes) -> None:
    with atomic_output(path) as tmp:
        Path(tmp).write_bytes(data)
