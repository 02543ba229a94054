"""Shared by the benchmark scripts: timing medians and printing a JSON record plus a table."""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path
from typing import Callable


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
    import os

    return {"python": platform.python_version(), "cpu": platform.processor() or platform.machine(),
            "cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()}


def report(name: str, record: dict, table: list[tuple[str, str]]) -> None:
    """Print the JSON record (one line, machine-readable) and a two-column table."""
    print(json.dumps({"benchmark": name, "machine": machine(), **record}))
    width = max(len(k) for k, _ in table)
    print(f"\n{name}")
    for key, value in table:
        print(f"  {key:<{width}}  {value}")
