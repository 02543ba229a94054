"""The server's record of a federation, the same in either runtime: after every round the
server's evaluation on the masked test set, the traffic and the time go into the history, and
the global weights, the round and the history into `state.pt` (tensors and plain values only,
loaded with `weights_only=True`), so that a rerun resumes from the last completed round. At the
end, the clients' aggregated train metrics (loss, peak memory) join the history."""

from __future__ import annotations

import json
import time
from pathlib import Path

import torch

from speechmask.atomic import atomic_output

from .apps import evaluate_on

STATE = "state.pt"


def save_state(path: Path, rnd: int, weights: dict, history: dict) -> None:
    with atomic_output(path) as tmp:
        torch.save({"round": rnd, "weights": weights, "history_json": json.dumps(history)}, tmp)


def load_state(path: Path) -> dict:
    blob = torch.load(path, map_location="cpu", weights_only=True)
    return {"round": int(blob["round"]), "weights": blob["weights"],
            "history": json.loads(blob["history_json"])}


def empty_history() -> dict:
    return {"accuracy": {}, "bytes_down": {}, "bytes_up": {}, "seconds": {},
            "client_peak_memory_bytes": {}, "train_loss": {}}


def resume_point(out: Path, resume: bool) -> tuple[int, dict, Path]:
    """(rounds done, history, weights to start from) for a run in `out`."""
    state_path, history, initial = out / STATE, empty_history(), out / "initial.pt"
    if not (resume and state_path.is_file()):
        return 0, history, initial
    saved = load_state(state_path)
    initial = out / "resume_weights.pt"
    with atomic_output(initial) as tmp:
        torch.save(saved["weights"], tmp)
    history = {**empty_history(), **saved["history"]}
    return saved["round"], history, initial


class Recorder:
    """`on_round(server_round, arrays)` is the strategy's evaluate_fn; `on_result(result, log)`
    runs at the end. `start_round`: rounds done before this run (resumed)."""

    def __init__(self, settings: dict, out: Path, start_round: int, history: dict):
        self.settings, self.out, self.start_round = settings, out, start_round
        self.history = history
        self.evaluate = evaluate_on(settings, Path(settings["data_dir"]) / "test")
        self.clock = time.monotonic()
        self.last = None

    def on_round(self, server_round: int, arrays):
        metrics = self.evaluate(server_round, arrays)
        rnd, h = self.start_round + server_round, self.history
        h["accuracy"][str(rnd)] = float(metrics["accuracy"])
        if server_round > 0:
            size = arrays.count_bytes()
            h["bytes_down"][str(rnd)] = size * self.settings["clients"]
            h["bytes_up"][str(rnd)] = size * self.settings["clients"]
            h["seconds"][str(rnd)] = time.monotonic() - self.clock
            self.clock = time.monotonic()
            self.last = arrays.to_torch_state_dict()
            save_state(self.out / STATE, rnd, self.last, h)
        return metrics

    def on_result(self, result, variance_log=None) -> None:
        if variance_log:
            self.history["variance_check"] = variance_log
        for rnd, metrics in result.train_metrics_clientapp.items():
            key = str(self.start_round + int(rnd))
            self.history["client_peak_memory_bytes"][key] = float(metrics["peak-memory-bytes"])
            self.history["train_loss"][key] = float(metrics["train-loss"])
        self.save()

    def save(self) -> None:
        """The state again, now with the clients' metrics."""
        if self.last is not None:
            save_state(self.out / STATE, max(map(int, self.history["accuracy"])), self.last,
                       self.history)
