"""The whole attack suite on the built-in corpus: wall time (target <= 15 min on 2 cores) and the
reference numbers (attackers on unprotected speech, our mask, the baselines).

Runs `speechmask attack` with default settings (those of `attacks.config.SuiteConfig` and the
registered baselines) into a fresh folder (no cached attackers), so the time includes every
training. Needs the models of bench_mask.py:
  python benchmarks/bench_attack.py --corpus build/bench_mask/corpus --runs build/bench_mask
Prints one JSON line and a table (rates in %). `--strength full` runs every attacker to
convergence on its dev loss (the record is then `bench_attack_full`; the 15-minute target is the
quick suite's); `--baselines all_offload` runs only the unprotected row beside the mask (a
full-strength run of every baseline takes many hours on 2 cores). `--record NAME` names the
record otherwise (the held-out split's run, `bench_attack_heldout`, on the models `bench_mask.py
--record bench_mask_heldout` trained). `--reuse-cache DIR` starts from the attacker cache of an
earlier run (DIR/cache): what was trained on the same data with the same settings is reused
(same weights, so the same figures), so only what changed (e.g. a new mask's rows) trains; the
record then says so and its time is not compared with the target.
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

from attacks.config import STRENGTHS, SuiteConfig  # noqa: E402
from attacks.report import COLUMNS  # noqa: E402
from speechmask.cli import main as speechmask  # noqa: E402

KEYS = tuple(key for key, _ in COLUMNS)  # the report's columns, in its order


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    corpus_and_runs(ap)
    ap.add_argument("--out", type=Path, default=None, help="default: build/bench_attack[_full]")
    ap.add_argument("--strength", choices=STRENGTHS, default=SuiteConfig().strength)
    ap.add_argument("--reuse-cache", type=Path, default=None,
                    help="an earlier run's output folder whose cache/ to start from")
    ap.add_argument("--baselines", nargs="+", default=None,
                    help="the baselines to run beside the mask (default: every registered one); "
                         "all_offload alone gives the unprotected row, e.g. for a full-strength "
                         "run of the default on 2 cores")
    ap.add_argument("--record", default=None,
                    help="record name (default: bench_attack[_full]; the held-out split's run: "
                         "bench_attack_heldout)")
    args = ap.parse_args()
    name = args.record or ("bench_attack" if args.strength == "quick"
                           else f"bench_attack_{args.strength}")
    args.out = args.out or Path("build") / name
    reused = None
    if args.reuse_cache is not None:
        if not (args.reuse_cache / "cache").is_dir():
            raise SystemExit(f"bench_attack: {args.reuse_cache}/cache: no such folder")
        reused = Path(shutil.copytree(args.reuse_cache / "cache", args.out.parent /
                                      f".{args.out.name}-cache", dirs_exist_ok=True))
    if args.out.exists():
        shutil.rmtree(args.out)  # time the whole suite, trainings included
    if reused is not None:
        args.out.mkdir(parents=True)
        reused.rename(args.out / "cache")
    t0 = time.perf_counter()
    speechmask(["attack", "--manifest", str(args.corpus / "manifest.jsonl"),
                "--slu", str(args.runs / "slu.pt"), "--mask", str(args.runs / "mask_40ms.pt"),
                "--slu-masked", str(args.runs / "slu_masked_40ms.pt"), "--out", str(args.out),
                "--strength", args.strength, "--quiet",
                *(["--baselines", *args.baselines] if args.baselines else [])])
    seconds = time.perf_counter() - t0
    result = json.loads((args.out / "report.json").read_text())
    record = {"seconds": round(seconds, 1), "strength": args.strength,
              "target_seconds": 900 if args.strength == "quick" and reused is None else None,
              "cache_reused_from": str(args.reuse_cache) if reused is not None else None,
              "baselines": args.baselines,  # None: every registered baseline
              "unprotected": result["unprotected"],
              # the mask's device-side send steps (None: it sends its gated features as they are)
              "mask_send": (result.get("mask_config") or {}).get("send"),
              "split_field": result["split_field"],
              "content_test_utterances": result["content_test_utterances"],
              "trials": result["trials"],
              "systems": {s["name"]: s["metrics"] for s in result["systems"]},
              "costs": {s["name"]: s["cost"] for s in result["systems"]},
              "per_system_seconds": {k: v.get("seconds") for k, v in result["details"].items()}}
    table = [("whole suite", f"{seconds / 60:.1f} min (target <= 15 min on 2 cores)")]
    for s in result["systems"]:
        m = s["metrics"]
        table.append((s["name"], "  ".join(
            f"{k}={'-' if m[k] is None else f'{100 * m[k]:.1f}'}" for k in KEYS)))
    report(name, record, table)


if __name__ == "__main__":
    main()
