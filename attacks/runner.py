"""Runs a configured `Suite` in worker processes: the shared attackers and encoders first, then
one system per task, handing trained networks over through the suite's cache."""

from __future__ import annotations

import torch

from speechmask.parallel import default_jobs

from .suite import Suite


def run_suite(suite: Suite, jobs: int | None = None) -> list[dict]:
    """Every configured system's row, in the configured order.

    With `jobs` > 1 (default: 2 where there are 2 cores and a cache folder) the work runs in
    `jobs` processes of one torch thread each: first what several systems share or what takes
    long to build (`Suite.shared_tasks`), then one system per task, the longest first
    (`System.expected_cost`); systems with nothing to attack run in this process afterwards.
    Workers hand their trained networks over through the cache. Small networks use a second
    thread poorly, so single-threaded trainings side by side finish sooner (CHANGELOG.md
    records the measurement; benchmarks/bench_attack.py times the whole suite)."""
    suite.check()
    names = list(suite.cfg.systems)
    if jobs is None:
        jobs = min(2, default_jobs()) if suite.cache.folder is not None else 1
    remote = [n for n in names if suite.system(n).expected_cost > 0]
    if jobs <= 1 or len(remote) <= 1 or suite.cache.folder is None:
        return [suite.run_system(name) for name in names]
    import multiprocessing as mp

    from tqdm.auto import tqdm

    global _SUITE
    _SUITE = suite
    ctx = mp.get_context("fork")
    rows: dict[str, dict] = {}
    try:
        with ctx.Pool(jobs, initializer=_worker_init) as pool:
            shared = suite.shared_tasks()
            for _ in tqdm(pool.imap_unordered(_shared_task, shared), total=len(shared),
                          desc="attack suite: shared attackers and encoders",
                          disable=not suite.progress, dynamic_ncols=True):
                pass
            order = sorted(remote, key=lambda n: -suite.system(n).expected_cost)
            for name, row, details, examples in tqdm(
                    pool.imap_unordered(_system_task, order), total=len(order),
                    desc="attack suite: systems", disable=not suite.progress, dynamic_ncols=True):
                rows[name] = row
                suite.details[name] = details
                suite.examples[name] = examples
    finally:
        _SUITE = None
    for name in names:
        if name not in rows:
            rows[name] = suite.run_system(name)
    return [rows[name] for name in names]


_SUITE: Suite | None = None


def _worker_init() -> None:
    torch.set_num_threads(1)
    _SUITE.progress = False
    _SUITE.inner_jobs = 1  # a pool worker may not start processes of its own


def _shared_task(task: str) -> None:
    _SUITE.shared(task)


def _system_task(name: str) -> tuple[str, dict, dict, dict]:
    row = _SUITE.run_system(name)
    return name, row, _SUITE.details.get(name, {}), _SUITE.examples.get(name, {})
