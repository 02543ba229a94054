"""Export of the trained mask (issue 5): memory and compute against the targets, parity of the
int8 model on the real runtimes, the baselines side by side, and the attack suite's utility and
content-attack numbers with the int8 gates beside the float ones (target: within 1 point).

Needs the models of bench_mask.py:
  python benchmarks/bench_export.py --corpus build/bench_mask/corpus --runs build/bench_mask
Prints one JSON line and a table. `--no-suite` skips the attack suite (a few minutes).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import corpus_and_runs, report  # noqa: E402

from speechmask.cli import main as speechmask  # noqa: E402

# utility and content-attack metrics (the "within 1 point" set)
COMPARED = ("intent_acc", "wer_pocketsphinx", "wer_passive", "wer_informed", "wer_inpainting",
            "entity_error_rate", "open_fraction")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    corpus_and_runs(ap)
    ap.add_argument("--out", type=Path, default=Path("build/bench_export"))
    ap.add_argument("--no-suite", dest="suite", action="store_false")
    args = ap.parse_args()
    if args.out.exists():
        shutil.rmtree(args.out)
    manifest = args.corpus / "manifest.jsonl"
    t0 = time.perf_counter()
    speechmask(["export", "--mask", str(args.runs / "mask_40ms.pt"), "--calib", str(manifest),
                "--out", str(args.out / "fw")])
    export_s = time.perf_counter() - t0
    r = json.loads((args.out / "fw" / "report.json").read_text())
    p = r["parity"]
    record = {"export_seconds": round(export_s, 1), "memory_bytes": r["memory_bytes"],
              "flash_bytes": r["flash_bytes"], "arena_bytes": r["arena_bytes"],
              "target_memory_bytes": 48 * 1024, "macs_per_second": r["macs_per_second"],
              "macs_per_call": r["macs_per_call"], "params": r["params"],
              "analytic": r["analytic"], "est_ms_per_call_480mhz": r["est_ms_per_call_480mhz"],
              "est_ms_per_second_480mhz": r["est_ms_per_second_480mhz"],
              "est_cpu_share": r["est_cpu_share"], "target_cpu_share": 0.01,
              "parity": p, "baselines": r["baselines"], "ops": r["ops"]}
    table = [
        ("export", f"{export_s:.0f} s"),
        ("flash + arena", f"{r['memory_bytes']} B = {r['flash_bytes']} + {r['arena_bytes']} "
                          f"(target <= {48 * 1024})"),
        ("MACs / s of audio", f"{r['macs_per_second']}"),
        ("est. 480 MHz M7", f"{r['est_ms_per_second_480mhz']:.2f} ms per s of audio = "
                            f"{100 * r['est_cpu_share']:.2f} % (target <= 1 %; estimate)"),
        ("LiteRT vs TFLite Micro", f"{p['litert_vs_tflm_max_lsb']} LSB (target <= 1) on "
                                   f"{p['calls_checked_in_both_runtimes']} calls"),
        ("int8 == float gates", f"{100 * p['gate_agreement']:.2f} % same inputs (target >= 98); "
                                f"{100 * p['closed_loop_gate_agreement']:.2f} % closed loop"),
    ]
    for b in r["baselines"]:
        table.append((f"{b['name']} / ours", f"compute {b['compute_ratio']:.1f}x (target >= "
                                             f"53.3), memory {b['memory_ratio']:.1f}x like for "
                                             f"like (target >= 134.1; weights only "
                                             f"{b['weight_ratio']:.1f}x, offline "
                                             f"{b['memory_ratio_offline']:.1f}x, vs measured "
                                             f"{b['memory_ratio_vs_measured']:.1f}x)"))
    if args.suite:
        t0 = time.perf_counter()
        speechmask(["attack", "--manifest", str(manifest), "--slu", str(args.runs / "slu.pt"),
                    "--mask", str(args.runs / "mask_40ms.pt"), "--int8",
                    str(args.out / "fw" / "mask.tflite"), "--slu-masked",
                    str(args.runs / "slu_masked_40ms.pt"), "--baselines", "none",
                    "--out", str(args.out / "attack"), "--quiet"])
        suite = json.loads((args.out / "attack" / "report.json").read_text())
        rows = {s["name"]: s["metrics"] for s in suite["systems"]}
        f, q = rows["speechmask"], rows["speechmask_int8"]
        diff = {k: None if f[k] is None or q[k] is None else round(100 * (q[k] - f[k]), 2)
                for k in COMPARED}
        record.update({"suite_seconds": round(time.perf_counter() - t0, 1), "float": f,
                       "int8": q, "int8_minus_float_points": diff})
        for k in COMPARED:
            if diff[k] is not None:
                table.append((k, f"float {100 * f[k]:.1f}  int8 {100 * q[k]:.1f}  "
                                 f"diff {diff[k]:+.1f} points (target |diff| <= 1)"))
    report("bench_export", record, table)


if __name__ == "__main__":
    main()
