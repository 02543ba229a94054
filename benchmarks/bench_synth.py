"""Built-in corpus generation speed: N speakers x M utterances, `--jobs` workers against 1 worker.

Target (issue 2): 30 speakers x 40 utterances in under 60 s on 2 cores.
Usage: python benchmarks/bench_synth.py [--speakers 30] [--utterances 40] [--jobs 2] [--repeats 1]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import report  # noqa: E402

from speechmask.corpus.synth import SynthConfig, synthesize  # noqa: E402
from speechmask.corpus.voices import resolve_engines  # noqa: E402


def one_run(cfg: SynthConfig, jobs: int) -> tuple[float, float]:
    out = Path(tempfile.mkdtemp(prefix="bench-synth-"))
    try:
        t0 = time.perf_counter()
        synthesize(out, cfg, jobs=jobs, progress=False)
        seconds = time.perf_counter() - t0
        audio = sum(p.stat().st_size - 44 for p in out.rglob("*.wav")) / 2 / 16000
        return seconds, audio
    finally:
        shutil.rmtree(out, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--speakers", type=int, default=30)
    ap.add_argument("--utterances", type=int, default=40)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--no-baseline", action="store_true", help="skip the 1-worker baseline")
    args = ap.parse_args()
    cfg = SynthConfig(args.speakers, args.utterances, seed=0, engines=resolve_engines(None))
    runs = {"jobs": [one_run(cfg, args.jobs) for _ in range(args.repeats)]}
    if not args.no_baseline:
        runs["baseline_1_job"] = [one_run(cfg, 1) for _ in range(args.repeats)]
    med = {k: statistics.median(s for s, _ in v) for k, v in runs.items()}
    audio_s = runs["jobs"][0][1]
    n = args.speakers * args.utterances
    record = {"speakers": args.speakers, "utterances": n, "jobs": args.jobs,
              "engines": list(cfg.engines), "repeats": args.repeats,
              "median_s": round(med["jobs"], 2), "utterances_per_s": round(n / med["jobs"], 1),
              "audio_hours": round(audio_s / 3600, 3),
              "realtime_factor": round(audio_s / med["jobs"], 1), "target_s": 60,
              "meets_target": med["jobs"] < 60}
    table = [("utterances", f"{n} ({args.speakers} speakers x {args.utterances})"),
             ("audio", f"{audio_s / 60:.1f} min"),
             (f"median time, {args.jobs} jobs", f"{med['jobs']:.1f} s (target < 60 s)"),
             ("throughput", f"{n / med['jobs']:.1f} utterances/s, "
                            f"{audio_s / med['jobs']:.0f}x real time")]
    if "baseline_1_job" in med:
        record["baseline_1_job_median_s"] = round(med["baseline_1_job"], 2)
        record["speedup_vs_1_job"] = round(med["baseline_1_job"] / med["jobs"], 2)
        table.append(("baseline, 1 job", f"{med['baseline_1_job']:.1f} s "
                                         f"(speed-up {record['speedup_vs_1_job']}x)"))
    report("bench_synth", record, table)


if __name__ == "__main__":
    main()
