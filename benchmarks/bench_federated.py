"""Federated adaptation on masked features (issue 18): the cloud model adapted by 4 devices in
Flower's simulation runtime, each holding only what its mask sent for its own speakers, against
centralised training on the same masked data; speaker-partitioned (IID-ish) and non-IID
(Dirichlet 0.5 over intents) clients; traffic per round, clients' peak memory, and the wall time
of a 4-client, 3-round simulation on this machine.

Usage: python benchmarks/bench_federated.py --manifest build/bench_mask/corpus/manifest.jsonl \
         --mask build/bench_mask/mask_40ms.pt --slu build/bench_mask/slu.pt --out build/bench_federated
Prints one JSON line and a table; writes bench_federated.json.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import report  # noqa: E402

from speechmask.federated.config import FederateConfig  # noqa: E402
from speechmask.federated.runner import centralised, prepare, run_federation  # noqa: E402

TARGET_SHARE = 0.95  # of centralised masked accuracy, within 20 rounds
TARGET_SECONDS = 180.0  # a 4-client, 3-round simulation on 2 cores


def one(name: str, args, cfg: FederateConfig) -> dict:
    out = args.out / name
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    settings = prepare(args.manifest, args.mask, args.slu, out, cfg, progress=False)
    settings["config"] = cfg.to_dict()
    started = time.monotonic()
    history = run_federation(settings, out, cfg.rounds)
    seconds = time.monotonic() - started
    central = centralised(settings, cfg)
    rounds = sorted(int(r) for r in history["accuracy"])
    acc = [history["accuracy"][str(r)] for r in rounds]
    reached = next((r for r, a in zip(rounds, acc) if r > 0 and a >= TARGET_SHARE * central),
                   None)
    return {"config": cfg.to_dict(), "partition_sizes": settings["partition_sizes"],
            "accuracy": acc, "centralised_accuracy": central,
            "final_over_centralised": acc[-1] / central if central else None,
            "best_over_centralised": max(acc[1:]) / central if central else None,
            "first_round_at_95pct": reached, "seconds": seconds,
            "bytes_per_round_each_way": history["bytes_up"].get("1"),
            "client_peak_memory_bytes": max(history["client_peak_memory_bytes"].values(),
                                            default=None)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--manifest", type=Path, default=Path("build/bench_mask/corpus/manifest.jsonl"))
    ap.add_argument("--mask", type=Path, default=Path("build/bench_mask/mask_40ms.pt"))
    ap.add_argument("--slu", type=Path, default=Path("build/bench_mask/slu.pt"))
    ap.add_argument("--out", type=Path, default=Path("build/bench_federated"))
    ap.add_argument("--rounds", type=int, default=20)
    args = ap.parse_args()
    base = FederateConfig(clients=4, rounds=args.rounds)
    runs = {"speakers": one("speakers", args, base),
            "dirichlet_0.5": one("dirichlet", args, FederateConfig(clients=4, rounds=args.rounds,
                                                                   dirichlet_alpha=0.5)),
            "timing_4x3": one("timing", args, FederateConfig(clients=4, rounds=3))}
    rec = {"runs": runs, "target_share": TARGET_SHARE, "target_seconds_4x3": TARGET_SECONDS,
           "method": "Flower 1.42 simulation runtime (Ray), FedAvg, 4 clients, server-side "
                     "accuracy on the masked test split after each round; centralised: the "
                     "same masked training data pooled, as many steps as one client makes in "
                     "all rounds with a batch as large as all clients' together"}
    s, d, t = runs["speakers"], runs["dirichlet_0.5"], runs["timing_4x3"]
    table = [
        ("speaker-partitioned: final / centralised",
         f"{100 * s['accuracy'][-1]:.1f} % / {100 * s['centralised_accuracy']:.1f} % = "
         f"{s['final_over_centralised']:.3f} (target >= {TARGET_SHARE}); 95 % first at round "
         f"{s['first_round_at_95pct']}"),
        ("non-IID (Dirichlet 0.5): final / centralised",
         f"{100 * d['accuracy'][-1]:.1f} % / {100 * d['centralised_accuracy']:.1f} % = "
         f"{d['final_over_centralised']:.3f}; 95 % first at round {d['first_round_at_95pct']}"),
        ("traffic per round, each way", f"{s['bytes_per_round_each_way']:,} B (4 clients)"),
        ("client peak memory (RSS)", f"{s['client_peak_memory_bytes'] / 2**20:.0f} MiB"),
        ("4 clients x 3 rounds, wall time", f"{t['seconds']:.0f} s (target <= {TARGET_SECONDS:.0f} s)"),
    ]
    report("bench_federated", rec, table)


if __name__ == "__main__":
    main()
