"""Shared by the benchmark scripts: timing medians, and a JSON record printed with a table and
written to `benchmarks/results/<name>.json`, from which `scripts/results.py` renders the docs.

The results folder is `benchmarks/results/` of this checkout unless the environment variable
`SPEECHMASK_RESULTS_DIR` names another (e.g. `SPEECHMASK_RESULTS_DIR=build/results` for a trial
run that must not replace the committed records).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shlex
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

REPO = Path(__file__).resolve().parent.parent
RESULTS_ENV = "SPEECHMASK_RESULTS_DIR"


def corpus_and_runs(ap: argparse.ArgumentParser) -> None:
    """The arguments of the benchmarks that reuse bench_mask.py's corpus and models."""
    ap.add_argument("--corpus", type=Path, required=True, help="built-in corpus folder")
    ap.add_argument("--runs", type=Path, required=True,
                    help="folder with slu.pt, mask_40ms.pt, slu_masked_40ms.pt (bench_mask.py)")


def median_seconds(fn: Callable[[], object], repeats: int) -> tuple[float, list[float]]:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), times


def machine() -> dict:
    """The machine, and how busy it was: the 15-minute load average when the record is written
    (about the number of cores in use by this benchmark alone; more means other work shared
    them and timings overstate)."""
    out = {"python": platform.python_version(), "cpu": platform.processor() or platform.machine(),
           "cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
           else os.cpu_count()}
    if hasattr(os, "getloadavg"):
        out["load_15min"] = round(os.getloadavg()[2], 2)
    return out


def command_line(argv: list[str] | None = None) -> str:
    """The command that ran this benchmark, as a reader would type it from the repository root:
    `python benchmarks/bench_mask.py --work build/bench_mask`."""
    argv = list(sys.argv if argv is None else argv)
    script = Path(argv[0])
    try:
        script = script.resolve().relative_to(REPO)
    except ValueError:
        pass
    return " ".join(["python", shlex.quote(script.as_posix())] + [shlex.quote(a) for a in argv[1:]])


def results_dir() -> Path:
    """Where records are written: `$SPEECHMASK_RESULTS_DIR`, else `benchmarks/results/`."""
    return Path(os.environ.get(RESULTS_ENV) or REPO / "benchmarks" / "results")


def write_record(path: Path, record: dict) -> None:
    """Write `record` as indented JSON to a temporary file beside `path`, then rename it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(json.dumps(record, indent=1) + "\n")
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def report(name: str, record: dict, table: list[tuple[str, str]],
           results_name: str | None = None) -> Path:
    """Print the JSON record (one line, machine-readable) and a two-column table, and write the
    record with the command line, the UTC date and the machine to `<results dir>/<results_name
    or name>.json`. Returns that path."""
    full = {"benchmark": name, "machine": machine(), **record}
    print(json.dumps(full))
    width = max(len(k) for k, _ in table)
    print(f"\n{name}")
    for key, value in table:
        print(f"  {key:<{width}}  {value}")
    date = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0).isoformat()
    path = results_dir() / f"{results_name or name}.json"
    write_record(path, {**full, "command": command_line(), "date": date})
    print(f"wrote {path}", file=sys.stderr)
    return path
