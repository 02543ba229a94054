"""The Flower apps (Message API, flwr 1.42): a ClientApp per device that trains the cloud model
on its own masked features, and a ServerApp that runs the strategy. Both are built from a plain,
picklable `settings` dict (paths and numbers), so the simulation's workers rebuild them.

Only weights and metrics travel: a client's reply holds the model's arrays and a MetricRecord
(loss, examples, peak memory). `audit` is a client mod that records, for every message a client
sends, each record's keys, types and array shapes (tests check nothing else leaves)."""

from __future__ import annotations

import json
from pathlib import Path

from flwr.app import ArrayRecord, ConfigRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp
from flwr.serverapp import Grid, ServerApp
from flwr.serverapp.strategy import FedAdam, FedAvg, FedProx

from .data import read_client
from .task import fl_task, peak_memory_bytes


def _audit_mod(path: str):
    def audit(msg: Message, context: Context, call_next) -> Message:
        reply = call_next(msg, context)
        entry = {"node": int(context.node_config.get("partition-id", -1)), "records": {}}
        for name, record in reply.content.items():
            if isinstance(record, ArrayRecord):
                entry["records"][name] = {"type": "arrays", "shapes": {
                    k: list(a.shape) for k, a in record.items()}, "bytes": record.count_bytes()}
            else:
                entry["records"][name] = {"type": type(record).__name__,
                                          "keys": sorted(record.keys())}
        with open(path, "a") as fh:  # one line per message; appends are atomic at this size
            fh.write(json.dumps(entry) + "\n")
        return reply
    return audit


def client_app(settings: dict) -> ClientApp:
    mods = [_audit_mod(settings["audit"])] if settings.get("audit") else []
    app = ClientApp(mods=mods)

    @app.train()
    def train(msg: Message, context: Context) -> Message:
        pid = int(context.node_config["partition-id"])
        data = read_client(Path(settings["data_dir"]) / f"client_{pid}")
        task = fl_task(settings, msg.content["arrays"].to_torch_state_dict())
        config = msg.content["config"]
        rnd = int(config.get("server-round", 0)) + int(settings.get("round_offset", 0))
        if pid in settings.get("drop", {}).get(str(rnd), []):
            raise RuntimeError(f"client {pid} drops out of round {rnd} (test)")
        metrics = task.train(data, seed=settings["seed"] * 100_003 + rnd * 101 + pid,
                             proximal_mu=float(config.get("proximal-mu", 0.0)))
        metrics["peak-memory-bytes"] = peak_memory_bytes()
        content = RecordDict({"arrays": ArrayRecord(task.arrays()),
                              "metrics": MetricRecord(metrics)})
        return Message(content=content, reply_to=msg)

    return app


def make_strategy(settings: dict):
    n = settings["clients"]
    common = dict(fraction_train=1.0, fraction_evaluate=0.0, min_train_nodes=max(1, n - 1),
                  min_evaluate_nodes=0, min_available_nodes=n)
    kind = settings["strategy"]
    if kind == "fedprox":
        return FedProx(proximal_mu=settings["proximal_mu"], **common)
    if kind == "fedadam":
        return FedAdam(eta=settings["server_lr"], **common)
    return FedAvg(**common)


def server_app(settings: dict, evaluate_fn, on_result=None) -> ServerApp:
    """`evaluate_fn(round, arrays)`: the server's evaluation on the masked test set, which also
    checkpoints the round (runner.py); `on_result(result)`: Flower's Result at the end (the
    clients' aggregated train metrics per round)."""
    app = ServerApp()

    @app.main()
    def main(grid: Grid, context: Context) -> None:
        import torch

        state = torch.load(settings["initial_state"], map_location="cpu", weights_only=True)
        strategy = make_strategy(settings)
        result = strategy.start(grid=grid, initial_arrays=ArrayRecord(state),
                                num_rounds=settings["rounds_left"],
                                timeout=settings.get("timeout", 600),
                                train_config=ConfigRecord({"lr": settings["lr"]}),
                                evaluate_fn=evaluate_fn)
        if on_result is not None:
            on_result(result)

    return app


def evaluate_on(settings: dict, test_dir: Path):
    test = read_client(test_dir)

    def evaluate(server_round: int, arrays: ArrayRecord) -> MetricRecord:
        task = fl_task(settings, arrays.to_torch_state_dict())
        return MetricRecord({"accuracy": task.accuracy(test)})
    return evaluate
