"""The privacy-utility frontier on the built-in corpus: `speechmask attack sweep` over gamma, the
switch cost and the device-side send steps, every baseline beside them, the default marked.

Needs the models of bench_mask.py; starts from bench_attack.py's attacker cache when given
(`--reuse-cache`: the clean attackers and the baselines are the same networks, so only the
sweep's masks train anew):
  python benchmarks/bench_sweep.py --corpus build/bench_mask/corpus --runs build/bench_mask \
      --reuse-cache build/bench_attack
Writes the record `bench_sweep` (every point and baseline row) and its plot beside it
(`bench_sweep.png`, one panel per privacy metric); prints one JSON line and a table.
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
from speechmask.cli import main as speechmask  # noqa: E402

# the knobs that matter, around the default (gamma 0.15, no switch cost, norm 256, warp 20 %)
GAMMAS = ("0.15", "0.3")
SWITCH_COSTS = ("0",)
NORM_FRAMES = ("0", "256")
WARPS = ("0", "0.2")
KEYS = ("intent_acc", "open_fraction", "entity_words_sent", "wer_informed", "wer_inpainting",
        "entity_error_rate", "eer_lazy_informed", "eer_semi_informed")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    corpus_and_runs(ap)
    ap.add_argument("--out", type=Path, default=Path("build/bench_sweep"))
    ap.add_argument("--reuse-cache", type=Path, default=None,
                    help="an earlier attack run's output folder whose cache/ to start from")
    ap.add_argument("--gammas", nargs="+", default=list(GAMMAS))
    ap.add_argument("--switch-costs", nargs="+", default=list(SWITCH_COSTS))
    ap.add_argument("--norm-frames", nargs="+", default=list(NORM_FRAMES))
    ap.add_argument("--warps", nargs="+", default=list(WARPS))
    ap.add_argument("--strength", choices=STRENGTHS, default=SuiteConfig().strength)
    args = ap.parse_args()
    if args.reuse_cache is not None:
        if not (args.reuse_cache / "cache").is_dir():
            raise SystemExit(f"bench_sweep: {args.reuse_cache}/cache: no such folder")
        shutil.copytree(args.reuse_cache / "cache", args.out / "cache", dirs_exist_ok=True)
    t0 = time.perf_counter()
    speechmask(["attack", "sweep", "--manifest", str(args.corpus / "manifest.jsonl"),
                "--slu", str(args.runs / "slu.pt"), "--out", str(args.out), "--force",
                "--gammas", *args.gammas, "--switch-costs", *args.switch_costs,
                "--norm-frames", *args.norm_frames, "--warps", *args.warps,
                "--attacks", "informed", "inpainting", "speaker",
                "--strength", args.strength, "--quiet"])
    seconds = time.perf_counter() - t0
    result = json.loads((args.out / "sweep.json").read_text())
    points = [{k: p[k] for k in ("label", "mask_label", "gamma", "switch_cost", "norm_frames",
                                 "warp_max", "default")} | {"metrics": p["metrics"]}
              for p in result["points"]]
    baselines = [{"name": b["name"], "metrics": b["metrics"]} for b in result["baselines"]]
    record = {"seconds": round(seconds, 1), "strength": args.strength,
              "cache_reused_from": str(args.reuse_cache) if args.reuse_cache else None,
              "points": points, "baselines": baselines}
    def cells(metrics: dict) -> str:
        return "  ".join(f"{k}={'-' if metrics.get(k) is None else f'{100 * metrics[k]:.1f}'}"
                         for k in KEYS)

    table = [(p["label"] + (" (default)" if p["default"] else ""), cells(p["metrics"]))
             for p in points] + [(b["name"], cells(b["metrics"])) for b in baselines]
    path = report("bench_sweep", record, table)
    shutil.copyfile(args.out / "sweep.png", path.with_suffix(".png"))
    print(f"wrote {path.with_suffix('.png')}", file=sys.stderr)


if __name__ == "__main__":
    main()
