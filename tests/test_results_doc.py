"""docs/results.md and the README's headline table are rendered from the benchmarks' JSON."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def _load(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


results = _load("speechmask_results_doc", REPO / "scripts" / "results.py")

MACHINE = {"python": "3.11.7", "cpu": "x86_64", "cores": 2}


def _metrics(intent, open_, ps, passive, informed, inpaint, enter, ign, lazy, semi, spk, gender):
    return {"intent_acc": intent, "open_fraction": open_, "wer_pocketsphinx": ps,
            "wer_passive": passive, "wer_informed": informed, "wer_inpainting": inpaint,
            "entity_error_rate": enter, "eer_ignorant": ign, "eer_lazy_informed": lazy,
            "eer_semi_informed": semi, "speaker_id_acc": spk, "gender_acc": gender}


def _cost(params, macs, weights, activations):
    return {"params": params, "macs_per_second": macs, "weight_bytes": weights,
            "activation_bytes": activations}


def fixture_records() -> dict:
    """One record per benchmark, in the shapes `benchmarks/*.py` write (`common.report`)."""
    stamp = {"machine": MACHINE, "date": "2026-01-02T03:04:05+00:00"}
    mask_run = {"segment_ms": 40.0, "open_fraction": 0.4891, "open_fraction_speech": 0.5021,
                "masked_acc_clean_model": 0.8944, "masked_acc_finetuned": 0.9333,
                "drop_points": -1.11, "mask_train_s": 61.0, "finetune_s": 60.7}
    systems = {
        "all_offload": _metrics(0.922, 1.0, 0.285, 0.425, 0.425, None, 0.579, 0.015, 0.015,
                                0.015, 0.993, 0.936),
        "random": _metrics(0.783, 0.508, 0.952, 1.159, 0.744, 0.733, 0.945, 0.257, 0.121, 0.06,
                           0.982, 1.0),
        "mcadams": _metrics(0.889, None, 0.614, 0.981, 0.535, None, 0.779, 0.48, 0.411, 0.096,
                            0.925, 0.889),
        "speechmask": _metrics(0.9333, 0.49, 1.0, 1.057, 0.52, 0.518, 0.841, 0.343, 0.243, 0.025,
                               0.982, 0.986),
    }
    costs = {"all_offload": _cost(0, 0, 0, 0), "random": _cost(0, 0, 0, 0),
             "mcadams": _cost(0, 10_200_000, 960, 5_850),
             "speechmask": _cost(5_091, 484_000, 5_770, 2_560)}
    speechmask_int8 = dict(systems["speechmask"], wer_informed=0.508, open_fraction=0.491)
    compared = ("intent_acc", "wer_pocketsphinx", "wer_passive", "wer_informed",
                "wer_inpainting", "entity_error_rate", "open_fraction")
    return {
        "bench_synth": {"benchmark": "bench_synth", **stamp, "speakers": 30, "utterances": 1200,
                        "jobs": 2, "engines": ["espeak-ng", "flite"], "repeats": 3,
                        "median_s": 14.91, "utterances_per_s": 80.5, "audio_hours": 1.092,
                        "realtime_factor": 263.7, "target_s": 60, "meets_target": True,
                        "baseline_1_job_median_s": 24.9, "speedup_vs_1_job": 1.67,
                        "command": "python benchmarks/bench_synth.py --repeats 3"},
        "bench_frontend": {"benchmark": "bench_frontend", **stamp, "utterances": 40,
                           "audio_s": 123.1, "config": {"sample_rate": 16000},
                           "snr_db_median": 77.07, "snr_db_min": 72.01, "snr_target_db": 30,
                           "ms_per_audio_second": {"int_numpy": 5.14, "float_numpy": 0.243,
                                                   "float_torch": 0.081},
                           "int_vs_float_numpy_time_ratio": 21.15,
                           "command": "python benchmarks/bench_frontend.py"},
        "bench_mask": {"benchmark": "bench_mask", **stamp, "corpus": "build/bench_mask/corpus",
                       "utterances": 1200, "temperature": 2 / 3, "split_field": "split",
                       "gamma": 0.15, "arch": "small", "slu_train_s": 292.4, "clean_acc": 0.9222,
                       "test_utterances": 180, "runs": [mask_run], "mask_200_clips_s": 67.2,
                       "command": "python benchmarks/bench_mask.py --work build/bench_mask"},
        "bench_mask_speaker_split": {
            "benchmark": "bench_mask", **stamp, "corpus": "c", "utterances": 1200,
            "temperature": 2 / 3, "split_field": "speaker_split", "gamma": 0.15, "arch": "small",
            "slu_train_s": 280.0, "clean_acc": 0.8844, "test_utterances": 320,
            "runs": [dict(mask_run, open_fraction=0.4877, masked_acc_finetuned=0.8844,
                          drop_points=0.0)], "mask_200_clips_s": 66.0,
            "command": "python benchmarks/bench_mask.py --split-field speaker_split"},
        "bench_patterns": {
            "benchmark": "bench_patterns", **stamp, "manifest": "m", "slu": "s", "part": "dev",
            "utterances": 180, "clean_acc": 0.9111,
            "patterns": [{"pattern": kind, "segment_ms": seg, "keep": 0.5, "open_fraction": 0.5,
                          "kl": kl, "intent_acc": acc}
                         for kind, seg, kl, acc in (("random", 40, 0.41, 0.74),
                                                    ("energy", 40, 0.86, 0.58),
                                                    ("comb", 40, 0.1012, 0.9278),
                                                    ("random", 80, 0.63, 0.68),
                                                    ("comb", 80, 0.24, 0.86))]
                        + [{"pattern": "build/bench_mask/mask_40ms.pt", "open_fraction": 0.4891,
                            "kl": 0.0951, "intent_acc": 0.9333}],
            "command": "python benchmarks/bench_patterns.py --manifest m --slu s"},
        "bench_adversary": {
            "benchmark": "bench_adversary", **stamp, "corpus": "c",
            "settings": [{"setting": "none", **systems["speechmask"], "seconds": 300.0},
                         {"setting": "speaker", "speaker_adversary": 1.0,
                          **dict(systems["speechmask"], intent_acc=0.9167), "seconds": 320.0},
                         {"setting": "asr", "asr_adversary": 1.0,
                          **dict(systems["speechmask"], intent_acc=0.8833, wer_informed=0.487),
                          "seconds": 330.0}],
            "command": "python benchmarks/bench_adversary.py --corpus c --slu s"},
        "bench_attack": {
            "benchmark": "bench_attack", **stamp, "seconds": 810.0, "target_seconds": 900,
            "split_field": "split", "content_test_utterances": 180,
            "trials": {"speakers": 8, "target": 280, "nontarget": 840},
            "systems": systems, "costs": costs,
            "per_system_seconds": {"all_offload": 200.0, "random": 150.0, "mcadams": 120.0,
                                   "speechmask": 170.0},
            "command": "python benchmarks/bench_attack.py --corpus c --runs r"},
        "bench_attack_full": {
            "benchmark": "bench_attack_full", **stamp, "seconds": 5400.0, "strength": "full",
            "target_seconds": None, "baselines": ["all_offload"], "split_field": "split",
            "content_test_utterances": 180,
            "systems": {"all_offload": dict(systems["all_offload"], wer_passive=0.262),
                        "speechmask": dict(systems["speechmask"], wer_informed=0.455)},
            "costs": costs, "command": "python benchmarks/bench_attack.py --strength full"},
        "bench_mask_heldout": {
            "benchmark": "bench_mask", **stamp, "corpus": "build/heldout", "utterances": 700,
            "temperature": 2 / 3, "split_field": "split", "gamma": 0.15, "arch": "small",
            "slu_train_s": 200.0, "clean_acc": 0.8125, "test_utterances": 96,
            "runs": [dict(mask_run, open_fraction=0.47, masked_acc_finetuned=0.7917)],
            "mask_200_clips_s": 60.0,
            "command": "python benchmarks/bench_mask.py --corpus build/heldout --record x"},
        "bench_attack_heldout": {
            "benchmark": "bench_attack_heldout", **stamp, "seconds": 700.0,
            "target_seconds": 900, "split_field": "split", "content_test_utterances": 96,
            "trials": {"speakers": 8, "target": 280, "nontarget": 840},
            "systems": {"all_offload": systems["all_offload"],
                        "speechmask": dict(systems["speechmask"], wer_informed=0.613)},
            "costs": costs, "command": "python benchmarks/bench_attack.py --record x"},
        "bench_attack_heldout_full": {
            "benchmark": "bench_attack_heldout_full", **stamp, "seconds": 7200.0,
            "strength": "full", "target_seconds": None, "baselines": ["all_offload"],
            "split_field": "split", "content_test_utterances": 96,
            "trials": {"speakers": 8, "target": 26, "nontarget": 78},
            "systems": {"all_offload": systems["all_offload"],
                        "speechmask": dict(systems["speechmask"], wer_informed=0.544)},
            "costs": costs, "command": "python benchmarks/bench_attack.py --record y"},
        "bench_export": {
            "benchmark": "bench_export", **stamp, "export_seconds": 12.3, "memory_bytes": 31_360,
            "flash_bytes": 22_112, "arena_bytes": 9_248, "target_memory_bytes": 49_152,
            "macs_per_second": 488_050, "macs_per_call": 19_522, "params": 5_091,
            "analytic": {"params": 5_091, "weight_bytes": 5_772, "activation_bytes": 1_640,
                         "memory_bytes": 7_412},
            "est_ms_per_call_480mhz": 0.138, "est_ms_per_second_480mhz": 3.45,
            "est_cpu_share": 0.003449, "target_cpu_share": 0.01,
            "parity": {"litert_vs_tflm_max_lsb": 1, "gate_agreement": 0.99856,
                       "closed_loop_gate_agreement": 0.956, "open_fraction_float": 0.494,
                       "open_fraction_int8": 0.496, "segments": 1388,
                       "calls_checked_in_both_runtimes": 4344, "onnx_float_max_abs": 4.8e-7,
                       "onnx_int8_vs_float_max_abs": 0.14},
            "baselines": [
                {"name": "vae", "params": 791_000, "macs_per_second": 79_600_000,
                 "weight_bytes": 797_000, "memory_bytes_offline": 1_000_000,
                 "memory_ratio_offline": 135.2, "method": "analytic, streamed", "streaming": True,
                 "state_bytes": 1_440, "activation_bytes": 4_000, "memory_bytes": 801_000,
                 "compute_ratio": 163.1, "memory_ratio": 108.3, "memory_ratio_vs_measured": 25.5,
                 "weight_ratio": 138.1},
                {"name": "ppslu", "params": 572_000, "macs_per_second": 16_400_000,
                 "weight_bytes": 586_000, "memory_bytes_offline": 683_000,
                 "memory_ratio_offline": 92.1, "method": "analytic, whole utterance",
                 "streaming": False, "state_bytes": 0, "activation_bytes": 97_000,
                 "memory_bytes": 683_000, "compute_ratio": 33.5, "memory_ratio": 92.1,
                 "memory_ratio_vs_measured": 21.8, "weight_ratio": 101.5}],
            "ops": ["ADD", "CONV_2D", "TANH"],
            "suite_seconds": 400.0, "float": systems["speechmask"], "int8": speechmask_int8,
            "int8_minus_float_points": {
                k: (None if systems["speechmask"][k] is None else
                    round(100 * (speechmask_int8[k] - systems["speechmask"][k]), 2))
                for k in compared},
            "command": "python benchmarks/bench_export.py --corpus c --runs r"},
        "bench_federated": {
            "benchmark": "bench_federated", **stamp, "command": "python benchmarks/bench_federated.py",
            "target_share": 0.95, "target_seconds_4x3": 180.0, "method": "simulated",
            "local_training_memory_bytes": {"backprop": 200 * 2 ** 20, "forward": 40 * 2 ** 20},
            "runs": {name: {"accuracy": [0.8, 0.9], "centralised_accuracy": 0.9,
                            "final_over_centralised": 1.0, "first_round_at_95pct": 1,
                            "bytes_per_round_each_way": 1000, "seconds": 20.0,
                            "client_peak_memory_bytes": 2 ** 30}
                     for name in ("speakers", "dirichlet_0.5", "forward", "timing_4x3")}},
        "bench_federated_runtimes": {
            "benchmark": "bench_federated", **stamp, "method": "4 clients x 3 rounds",
            "command": "python benchmarks/bench_federated.py --runtimes",
            "runs": {name: {"accuracy": [0.8, 0.85, 0.9, acc], "seconds": sec,
                            "bytes_per_round_each_way": 1000}
                     for name, acc, sec in (("simulation", 0.91, 40.0),
                                            ("deployment_secagg", 0.92, 75.0))}},
        "bench_firmware": {
            "benchmark": "bench_firmware", **stamp, "export": "e", "export_id": "ab",
            "audio_s": 2.0, "frames": 198, "method": "counted",
            "instructions_per_second_audio": {"total": 7_100_000, "frontend": 6_000_000,
                                              "send": 100_000, "mask": 1_000_000},
            "steps_measured": ["frontend", "send", "mask"],
            "steps_not_yet_in_firmware": ["gating"], "mask_instructions_per_call": 40_000,
            "mask_calls_measured": 16, "calls_per_second": 25.0,
            "est_cpu_share_480mhz": 0.0127, "est_ms_per_4s_clip": 50.8, "ram_bytes": 6_300,
            "ram_static_bytes": 6_150, "stack_high_water_bytes": 150, "flash_bytes": 9_500,
            "tflite_model_bytes": 22_000, "tflm_arena_bytes": 9_000,
            "export_est_ms_per_second_480mhz": 3.45, "silence_s": {},
            "command": "python benchmarks/bench_firmware.py --export e"},
        "bench_speaker_cues": {
            "benchmark": "bench_speaker_cues", **stamp, "corpus": "m", "speakers": 30,
            "train_utterances": 840, "test_utterances": 180, "chance": 1 / 30,
            "settings": [{"step": "none", "frames": None, "speaker_id_means": 0.95,
                          "speaker_id_statistics": 0.9944},
                         {"step": "band_norm_mean", "frames": 16, "speaker_id_means": 0.1111,
                          "speaker_id_statistics": 0.9056},
                         {"step": "band_norm_mean+lifter", "frames": 64, "keep": 13,
                          "speaker_id_means": 0.2, "speaker_id_statistics": 0.8}],
            "command": "python benchmarks/bench_speaker_cues.py --manifest m"},
        "bench_ablation_tuning": {
            "benchmark": "bench_ablation_tuning", **stamp, "strength": "quick", "max_drop": 3.0,
            "attacks": ["speaker"], "trials": 8, "chosen": "norm256+warp20", "seconds": 1.0,
            "seeds": [0, 1],
            "variants": {v: {"open_fraction": 0.48, "intent_acc": acc, "eer_semi_informed": eer}
                         for v, acc, eer in (("unprotected", 0.867, 0.008),
                                             ("gates", 0.911, 0.004),
                                             ("norm256+warp20", 0.883, 0.096))},
            "command": "python benchmarks/bench_ablation.py --manifest t"},
        "bench_sweep": {
            "benchmark": "bench_sweep", **stamp, "seconds": 900.0, "strength": "quick",
            "cache_reused_from": "build/bench_attack",
            "points": [{"label": lab, "mask_label": lab.split(" n")[0], "gamma": g,
                        "switch_cost": 0.0, "norm_frames": n, "warp_max": w, "default": d,
                        "metrics": dict(systems["speechmask"], intent_acc=acc,
                                        wer_informed=wer)}
                       for lab, g, n, w, d, acc, wer in (
                           ("γ=0.15 n0 w0", 0.15, 0, 0.0, False, 0.95, 0.5),
                           ("γ=0.15 n64 w10", 0.15, 64, 0.1, True, 0.92, 0.58),
                           ("γ=0.3 n64 w10", 0.3, 64, 0.1, False, 0.88, 0.66))],
            "baselines": [{"name": "random", "metrics": systems["random"]},
                          {"name": "mcadams", "metrics": dict(systems["mcadams"],
                                                              intent_acc=0.93)}],
            "command": "python benchmarks/bench_sweep.py --corpus c --runs r"},
        "bench_ablation": {
            "benchmark": "bench_ablation", **stamp, "strength": "quick", "max_drop": 3.0,
            "attacks": ["informed", "speaker"], "trials": 8, "chosen": "norm256", "seconds": 1.0,
            "variants": {v: {"open_fraction": 0.479, "intent_acc": acc, "wer_informed": wer,
                             "eer_lazy_informed": lazy, "eer_semi_informed": eer}
                         for v, acc, wer, lazy, eer in (
                             ("unprotected", 0.928, 0.409, 0.032, 0.032),
                             ("gates", 0.956, 0.498, 0.218, 0.043),
                             ("norm256", 0.928, 0.523, 0.452, 0.093),
                             ("norm256+warp20", 0.922, 0.583, 0.462, 0.125))},
            "command": "python benchmarks/bench_ablation.py --manifest m"},
    }


def _write(folder: Path, records: dict) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, record in records.items():
        (folder / f"{name}.json").write_text(json.dumps(record, indent=1))
    return folder


def _flat(text: str) -> str:
    """Prose with its line folds undone."""
    return " ".join(text.split())


def _row(text: str, first_cell: str) -> list[str]:
    """The cells of the table row whose first cell is `first_cell`."""
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("|") and cells[0] == first_cell:
            return cells
    raise AssertionError(f"no table row {first_cell!r}")


def test_tables_carry_the_records_numbers(tmp_path):
    records = results.load_records(_write(tmp_path / "results", fixture_records()))
    doc = results.render_doc(records)
    assert doc == results.render_doc(records)  # deterministic
    # provenance: every section names its command, machine and date
    for name, record in records.items():
        assert f"`{record['command']}`" in doc, name
    assert "x86_64, 2 cores, Python 3.11.7; run 2026-01-02T03:04:05+00:00" in _flat(doc)
    assert "not yet run" not in doc.lower()
    assert _row(doc, "4 clients x 3 rounds, wall time (Ray start included)")[1:] == [
        "20 s", "<= 180 s: met"]
    # bench_synth, bench_frontend
    assert _row(doc, "median time, 2 jobs (3 repeats)")[1:] == ["14.9 s", "< 60 s: met"]
    assert "1.67x" in _row(doc, "median time, 1 job (baseline, same run)")[1]
    assert _row(doc, "int16 vs float log-mel, SNR")[1:] == ["median 77.1 dB, min 72.0 dB",
                                                            ">= 30 dB: met"]
    assert _row(doc, "integer reference, numpy, 1 thread")[1] == "5.14 ms per second of audio"
    # bench_mask and its held-out note
    assert _row(doc, "40 ms: fine-tuned cloud model, masked input")[1:] == [
        "**0.933** (+1.1 points)", "within 3 points: met"]
    assert _row(doc, "40 ms: segments sent (open fraction)")[1] == "**0.489**"
    assert _row(doc, "mask training on 200 clips")[1] == "67 s"
    assert _row(doc, "frontend, instructions per second of audio")[1] == "6.00 M"
    assert _row(doc, "front-end + mask + gating")[1:] == ["7.00 M/s",
                                                         "<= 4.8 M/s: **not met**"]
    assert _row(doc, "the whole job (sm_device_push), send steps included")[2] == \
        "<= 1 % of the core: **not met**"
    assert _row(doc, "deployment runtime + SecAgg+")[1:] == ["92.0 % (from 80.0 %)", "75 s",
                                                             "1,000 B"]
    assert _row(doc, "mask network, one call")[1] == "40,000 instructions (16 real calls)"
    assert _row(doc, "RAM: static + stack high-water")[1] == "6,300 B (6.2 KiB) (6,150 + 150)"
    assert "fine-tuned **0.884** (+0.0 points" in _flat(doc) and "320 test utterances" in _flat(doc)
    # bench_patterns: pivot by segment length; the trained mask's own row
    assert _row(doc, "regular (alternate)")[1:] == ["0.10 / 0.93 (open 0.50)",
                                                    "0.24 / 0.86 (open 0.50)"]
    assert _row(doc, "`mask_40ms.pt`")[1:] == ["0.489", "0.095", "0.933"]
    # bench_speaker_cues: one row per device-side step, rates in %
    assert _row(doc, "none (the front-end's log-mel)")[1:] == ["95.0", "99.4"]
    assert _row(doc, "per-band normalisation, running mean of 16 frames")[1:] == ["11.1", "90.6"]
    assert _row(doc, "per-band normalisation, running mean of 64 frames + liftering, 13 "
                     "cepstral coefficients")[1:] == ["20.0", "80.0"]
    assert "chance 3.3 %" in _flat(doc)
    # bench_ablation(_tuning): one row per variant, the rule's pick bold, the default named
    assert _row(doc, "**gates + norm 256 frames + warp 20 % (default)**")[1:] == ["88.3", "9.6"]
    assert _row(doc, "**gates + norm 256 frames**")[1:] == ["92.8", "52.3", "45.2", "9.3"]
    assert _row(doc, "gates + norm 256 frames + warp 20 % (default)")[1:] == [
        "92.2", "58.3", "46.2", "12.5"]
    assert _row(doc, "gates only")[1:] == ["91.1", "0.4"]  # the first table: tuning
    assert "mean over seeds 0, 1" in _flat(doc)  # the tuning record's two seeds
    # bench_adversary: rates in %, intent against the no-adversary row
    asr = _row(doc, "asr (1)")[1:]
    assert asr[0] == "88.3" and asr[3] == "48.7" and asr[-2] == "-5.0"
    # bench_attack: every system, every metric, its cost; time against the target
    ours = _row(doc, "**speechmask**")
    # (this record predates the words-sent columns: they read "—")
    assert ours[1:10] == ["**93.3**", "49.0", "—", "—", "100.0", "105.7", "52.0", "51.8", "84.1"]
    assert ours[-4:] == ["5.09k", "484k", "5.77k", "2.56k"]
    assert _row(doc, "mcadams")[2] == "—" and _row(doc, "mcadams")[-3] == "10.2M"
    assert "whole suite 13.5 min** on 2 cores (target <= 15 min: met)" in _flat(doc)
    assert "280 target / 840 non-target" in _flat(doc)
    # the frontier: every point and baseline, the default marked, who beats it where
    sweep = doc[doc.index("## bench_sweep"):]
    assert _row(sweep, "γ=0.15 n64 w10 **(default)**")[1:5] == ["92.0", "49.0", "—", "58.0"]
    assert _row(sweep, "*mcadams*")[1] == "93.0"
    assert "bench_sweep.png" in sweep
    assert "mcadams is more useful and more private on eer_lazy_informed" in _flat(sweep)
    assert "random is more useful" not in _flat(sweep)  # less useful: not dominating
    # full strength: its own table, and quick -> full for the systems both ran
    full = doc[doc.index("## bench_attack_full"):doc.index("## bench_attack_heldout")]
    assert _row(full, "**speechmask**")[7] == "45.5"  # WER informed
    both = full[full.index("Quick → full strength"):]
    assert _row(both, "speechmask")[7] == "52.0 → 45.5"
    assert _row(both, "all_offload")[6] == "42.5 → 26.2"  # WER passive
    assert "**Time: 90 min** on 2 cores" in _flat(full)
    assert "trained ASR WER 26.2 % (<= 28: met" in _flat(full)
    assert "x-vector EER 1.5 % (<= 2: met)" in _flat(full)
    assert "informed WER 45.5 % (>= 70: **not met**)" in _flat(full)
    # the held-out split: its own pipeline figures and suite table
    held = doc[doc.index("## bench_attack_heldout"):doc.index("## bench_export")]
    assert "fine-tuned **0.792**" in _flat(held) and "open fraction **0.470**" in _flat(held)
    assert _row(held, "**speechmask**")[7] == "61.3"  # WER informed
    # ... and at full strength: its table, and quick -> full on the same split
    held_full = held[held.index("### At full strength"):]
    assert _row(held_full, "**speechmask**")[7] == "54.4"
    assert _row(held_full[held_full.index("Quick → full"):], "speechmask")[7] == "61.3 → 54.4"
    assert "**Time: 120 min** on 2 cores" in _flat(held_full)
    # bench_export: targets, baselines with ratios, int8 against float
    assert _row(doc, "flash + arena")[1:] == [
        "31,360 B (30.6 KiB): 22,112 B model + 9,248 B arena", "<= 49,152 B (48.0 KiB): met"]
    assert "0.34 % of the core" in _row(doc, "time at 480 MHz (estimate)")[1]
    assert _row(doc, "int8 gates == float gates, same inputs")[1] == "99.86 % of 1,388 test segments"
    vae = _row(doc, "vae (analytic, streamed)")
    assert vae[3:] == ["163.1x", "108.3x", "138.1x", "135.2x", "25.5x"]
    assert "108.3x, **not met**" in _flat(doc)
    assert _row(doc, "WER informed")[1:] == ["52.0", "50.8", "-1.2", "**not met**"]
    assert "Outside the target: WER informed (-1.2)" in _flat(doc)


def test_headline_block_from_the_same_records(tmp_path):
    records = results.load_records(_write(tmp_path / "results", fixture_records()))
    block = results.render_headline(records)
    assert block.startswith(results.BEGIN) and block.endswith(results.END)
    assert "93.3 % vs 92.2 % (+1.1 points)" in block
    assert _row(block, "segments sent (open fraction)")[1] == "48.9 %"
    assert _row(block, "exported int8 mask: flash + arena")[1] == "31,360 B (30.6 KiB)"
    assert _row(block, "memory, VAE baseline / ours, like for like")[1:3] == ["108.3x", ">= 134.1x"]
    assert _row(block, "intent accuracy")[1:] == ["93.3", "92.2", "78.3", "88.9"]
    assert _row(block, "speaker EER, retrained attacker (semi-informed)")[1] == "2.5"
    readme = "# x\n\nbefore\n" + results.BEGIN + "\nold figures\n" + results.END + "\nafter\n"
    spliced = results.splice(readme, block)
    assert spliced == "# x\n\nbefore\n" + block + "\nafter\n"
    assert results.splice(spliced, block) == spliced
    with pytest.raises(ValueError, match="markers"):
        results.splice("# no markers\n", block)
    assert "semi-informed speaker EER 12.5 % (gates alone 4.3 %)" in _flat(block)
    # an ablation record without the default's steps: the line quotes the tuning record instead
    older = fixture_records()
    older["bench_ablation"]["variants"].pop("norm256+warp20")
    line = _flat(results.render_headline(results.load_records(_write(tmp_path / "old", older))))
    assert "not in bench_ablation's record yet" in line
    assert "semi-informed speaker EER 9.6 % (gates alone 0.4 %), intent accuracy 88.3 %" in line


def test_missing_record_says_not_yet_run_with_its_command(tmp_path):
    records = fixture_records()
    del records["bench_attack"], records["bench_mask_speaker_split"]
    doc = results.render_doc(results.load_records(_write(tmp_path / "results", records)))
    attack = doc.split("## bench_attack")[1].split("\n## ")[0]
    assert "**Not yet run.**" in attack and results.COMMANDS["bench_attack"] in attack
    assert "| **speechmask** |" not in attack
    assert results.COMMANDS["bench_mask_speaker_split"] in doc
    block = results.render_headline(results.load_records(tmp_path / "results"))
    assert "not yet run" in block and results.COMMANDS["bench_attack"] in block
    empty = results.render_doc({})
    for name in results.TITLES:
        assert results.COMMANDS[name] in empty
    assert empty.count("**Not yet run.**") == len(results.COMMANDS)


def test_committed_documents_are_what_the_committed_records_render():
    """Nobody edits figures by hand: rerun a benchmark, then `make results`."""
    records = results.load_records(REPO / "benchmarks" / "results")
    assert (REPO / "docs" / "results.md").read_text() == results.render_doc(records)
    readme = (REPO / "README.md").read_text()
    assert results.splice(readme, results.render_headline(records)) == readme
    assert "make demo" in "".join(readme.splitlines(True)[:40])
    assert "make test" in "".join(readme.splitlines(True)[:40])
    assert results.main(["--check"]) == 0


def test_check_reports_a_stale_document(tmp_path, capsys):
    folder = _write(tmp_path / "results", fixture_records())
    doc, readme = tmp_path / "results.md", tmp_path / "README.md"
    readme.write_text(f"# r\n{results.BEGIN}\n{results.END}\n")
    args = ["--results", str(folder), "--doc", str(doc), "--readme", str(readme)]
    assert results.main(args + ["--check"]) == 1
    assert results.main(args) == 0
    assert results.main(args + ["--check"]) == 0
    first = doc.read_bytes()
    assert results.main(args) == 0 and doc.read_bytes() == first  # same JSON, same bytes
    assert "93.3 % vs 92.2 %" in readme.read_text()


def test_benchmarks_write_their_record_with_command_and_date(tmp_path, monkeypatch, capsys):
    common = _load("speechmask_bench_common", REPO / "benchmarks" / "common.py")
    monkeypatch.setenv(common.RESULTS_ENV, str(tmp_path / "out"))
    monkeypatch.setattr(sys, "argv", [str(REPO / "benchmarks" / "bench_x.py"), "--work", "a b"])
    path = common.report("bench_x", {"value": 1.5}, [("value", "1.5")])
    printed = capsys.readouterr().out.splitlines()
    assert json.loads(printed[0]) == {"benchmark": "bench_x", "machine": common.machine(),
                                      "value": 1.5}
    assert printed[2:] == ["bench_x", "  value  1.5"]
    record = json.loads(path.read_text())
    assert path == tmp_path / "out" / "bench_x.json"
    assert record["command"] == "python benchmarks/bench_x.py --work 'a b'"
    assert record["date"].endswith("+00:00") and record["value"] == 1.5
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["bench_x.json"]  # no temporaries
    common.report("bench_x", {"value": 2}, [("value", "2")], results_name="bench_x_other")
    assert json.loads((tmp_path / "out" / "bench_x_other.json").read_text())["value"] == 2
