"""The federation's report: per-round accuracy and traffic, the centralised comparison, a plot."""

from __future__ import annotations

import json
from pathlib import Path

from speechmask.atomic import atomic_output


def write_report(out: Path, settings: dict, history: dict, centralised_accuracy: float) -> dict:
    rounds = sorted(int(r) for r in history["accuracy"])
    acc = [history["accuracy"][str(r)] for r in rounds]
    final = acc[-1] if acc else 0.0
    rows = ["| round | test accuracy (masked) | bytes down | bytes up | seconds |",
            "|---|---|---|---|---|"]
    for r in rounds:
        k = str(r)
        rows.append(f"| {r} | {100 * history['accuracy'][k]:.1f} % | "
                    f"{history['bytes_down'].get(k, 0):,} | {history['bytes_up'].get(k, 0):,} | "
                    f"{history['seconds'].get(k, 0):.1f} |")
    rows.append(f"| centralised, same masked data | {100 * centralised_accuracy:.1f} % | | | |")
    text_acc = settings.get("lm_text_accuracy")
    if text_acc is not None:  # LM mode: the LM's ceiling, reading the transcripts themselves
        rows.append(f"| the LM alone, given the test transcripts | {100 * text_acc:.1f} % "
                    "| | | |")
    ratio = final / centralised_accuracy if centralised_accuracy else float("nan")
    per_client = history["bytes_up"].get("1", 0) / max(1, settings["clients"])
    full = settings.get("full_model_bytes", 0)
    traffic = (f"; each client sends {per_client:,.0f} B per round, the whole model is "
               f"{full:,} B ({full / per_client:.0f}x)" if per_client and full else "")
    table = "\n".join(rows) + (f"\n\nfederated / centralised: {ratio:.2f} "
                               f"({settings['config']['model']} model, "
                               f"{settings['config']['strategy']}, "
                               f"{settings['config']['mode']}, {settings['clients']} clients)"
                               + traffic)
    report = {"config": settings["config"], "partition_sizes": settings["partition_sizes"],
              "partition_speakers": settings["partition_speakers"], "rounds": rounds,
              "accuracy": acc, "bytes_down": history["bytes_down"],
              "bytes_up": history["bytes_up"], "seconds": history["seconds"],
              "centralised_accuracy": centralised_accuracy, "federated_over_centralised": ratio,
              "bytes_per_client_per_round": per_client, "full_model_bytes": full,
              "client_peak_memory_bytes": history.get("client_peak_memory_bytes", {}),
              "variance_check": history.get("variance_check", []),
              "lm_text_accuracy": text_acc,
              "table": table}
    with atomic_output(out / "report.json") as tmp:
        Path(tmp).write_text(json.dumps(report, indent=1) + "\n")
    with atomic_output(out / "report.md") as tmp:
        Path(tmp).write_text("# Federated adaptation on masked features\n\n" + table + "\n")
    _plot(out / "rounds.png", rounds, acc, centralised_accuracy, settings)
    return report


def _plot(path: Path, rounds: list[int], acc: list[float], central: float, settings: dict):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(rounds, [100 * a for a in acc], marker="o", label=settings["config"]["strategy"])
    ax.axhline(100 * central, color="gray", linestyle="--", label="centralised")
    ax.set_xlabel("round")
    ax.set_ylabel("test intent accuracy, masked (%)")
    ax.set_title(f"{settings['clients']} devices, masked features only")
    ax.legend()
    fig.tight_layout()
    with atomic_output(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
