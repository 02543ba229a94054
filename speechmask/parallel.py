"""Process-parallel map with a progress bar, shared by corpus synthesis and manifest building."""

from __future__ import annotations

import multiprocessing as mp
import os
from typing import Callable, Iterable, Iterator, TypeVar

from tqdm.auto import tqdm

T = TypeVar("T")
R = TypeVar("R")


def default_jobs() -> int:
    """Cores this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def progress_map(fn: Callable[[T], R], items: Iterable[T], *, jobs: int = 1, desc: str = "",
                 total: int | None = None, disable: bool | None = None) -> Iterator[R]:
    """Yield `fn(item)` for every item, in completion order, over `jobs` processes.

    `fn` must be a module-level function (it is pickled to the workers). With `jobs <= 1` it
    runs in this process, which keeps tracebacks simple and is what tests use.
    """
    items = list(items)
    total = len(items) if total is None else total
    bar = tqdm(total=total, desc=desc, unit="file", disable=disable, dynamic_ncols=True)
    try:
        if jobs <= 1 or len(items) <= 1:
            for item in items:
                yield fn(item)
                bar.update(1)
            return
        ctx = mp.get_context("fork" if hasattr(os, "fork") else "spawn")
        with ctx.Pool(processes=jobs) as pool:
            for result in pool.imap_unordered(fn, items, chunksize=max(1, min(16, len(items) //
                                                                            (jobs * 8) or 1))):
                yield result
                bar.update(1)
    finally:
        bar.close()
