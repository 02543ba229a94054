"""The parts of the Flower apps (Message API, flwr 1.42): what a device does in a round
(`train_on_device`: its own masked features, local training) and the server's side (`run_server`:
the strategy). deploy_apps.py assembles them into the ClientApp and ServerApp that `flwr run`
ships, in the simulation runtime and on the deployment runtime alike; they read a plain `settings`
dict (paths and numbers) from the run config.

Only weights and metrics travel: a client's reply holds the model's arrays and a MetricRecord
(loss, examples, peak memory). `audit` is a client mod that records, for every message a client
sends, each record's keys, types and array shapes (tests check nothing else leaves)."""

from __future__ import annotations

import json
from pathlib import Path

from flwr.app import ArrayRecord, ConfigRecord, Context, Message, MetricRecord, RecordDict
from flwr.serverapp import Grid
from flwr.serverapp.strategy import FedAdam, FedAvg, FedProx

from .data import read_client
from .task import fl_task, peak_memory_bytes


def _audit_mod():
    """Records every reply, into the file the run config's settings name (`audit`), if any."""
    def audit(msg: Message, context: Context, call_next) -> Message:
        reply = call_next(msg, context)
        target = json.loads(str(context.run_config.get("settings", "{}"))).get("audit")
        if not target:
            return reply
        entry = {"node": int(context.node_config.get("partition-id", -1)), "records": {}}
        for name, record in reply.content.items():
            if isinstance(record, ArrayRecord):
                entry["records"][name] = {"type": "arrays", "shapes": {
                    k: list(a.shape) for k, a in record.items()}, "bytes": record.count_bytes()}
            else:
                entry["records"][name] = {"type": type(record).__name__,
                                          "keys": sorted(record.keys())}
        with open(target, "a") as fh:  # one line per message; appends are atomic at this size
            fh.write(json.dumps(entry) + "\n")
        return reply
    return audit


def run_round(settings: dict, config) -> int:
    """The round of the whole run (a resumed run's rounds continue the earlier ones)."""
    return int(config.get("server-round", 0)) + int(settings.get("round_offset", 0))


def device_seed(settings: dict, rnd: int, pid: int) -> int:
    """A device's batches in a round: the same in either runtime and with or without SecAgg+."""
    return settings["seed"] * 100_003 + rnd * 101 + pid


def train_on_device(msg: Message, context: Context, settings: dict, data_dir: Path) -> Message:
    """One device's round: its masked features from `data_dir`, the global weights in `msg`,
    local training; the reply holds the new weights and the metrics (nothing else)."""
    pid = int(context.node_config["partition-id"])
    data = read_client(data_dir)
    task = fl_task(settings, msg.content["arrays"].to_torch_state_dict())
    config = msg.content["config"]
    rnd = run_round(settings, config)
    if pid in settings.get("drop", {}).get(str(rnd), []):
        raise RuntimeError(f"client {pid} drops out of round {rnd} (test)")
    extra = {}
    if settings.get("mode") == "forward":
        extra = _forward_extras(task, config, context, settings)
    metrics = task.train(data, seed=device_seed(settings, rnd, pid),
                         proximal_mu=float(config.get("proximal-mu", 0.0)), **extra)
    metrics["peak-memory-bytes"] = peak_memory_bytes()
    content = RecordDict({"arrays": ArrayRecord(task.arrays()),
                          "metrics": MetricRecord(metrics)})
    return Message(content=content, reply_to=msg)


def _forward_extras(task, config, context: Context, settings: dict) -> dict:
    """Forward-gradient clients: the number of directions the server asks for, and the previous
    round's global update of the head (this round's global head minus the last one this device
    saw, kept in the node's state) to sample directions along."""
    import torch

    head = task.head()
    guide = None
    if settings.get("guided", True) and "last-global-head" in context.state:
        last = context.state["last-global-head"].to_torch_state_dict()
        delta = [head[k] - last[k] for k in head]
        if any(float(d.abs().sum()) > 0 for d in delta):
            guide = delta
    context.state["last-global-head"] = ArrayRecord({k: torch.as_tensor(v) for k, v in
                                                     head.items()})
    return {"perturbations": int(config.get("perturbations", settings["perturbations"])),
            "guide": guide}


def variance_checked(base):
    """`base` (a Flower strategy class) with FwdLLM's check on the server, for forward-gradient
    clients: after each round, how far the clients' updates agree (mean cosine between each
    client's update of the head and their weighted mean); when they disagree (below
    `min_agreement`), noise dominates the estimates, and the next round asks for twice the
    directions (up to `max_perturbations`). `log`: per round, the directions asked for and the
    agreement found."""

    class VarianceChecked(base):
        def __init__(self, *args, perturbations: int, min_agreement: float = 0.1,
                     max_perturbations: int = 64, model: str = "slu", **kwargs):
            super().__init__(*args, **kwargs)
            from .task import FORWARD_KEYS

            self.forward_keys = FORWARD_KEYS[model]
            self.perturbations, self.min_agreement = perturbations, min_agreement
            self.max_perturbations = max_perturbations
            self.round_start = None
            self.log: list[dict] = []

        def configure_train(self, server_round, arrays, config, grid):
            self.round_start = arrays.to_torch_state_dict()
            config["perturbations"] = self.perturbations
            return super().configure_train(server_round, arrays, config, grid)

        def aggregate_train(self, server_round, replies):
            import torch

            replies = list(replies)
            arrays, metrics = super().aggregate_train(server_round, replies)
            if arrays is None or self.round_start is None:
                return arrays, metrics
            start = self.round_start
            keys = [k for k in start if k.startswith(self.forward_keys)]

            def delta(state) -> torch.Tensor:
                return torch.cat([(state[k] - start[k]).reshape(-1).float() for k in keys])

            mean = delta(arrays.to_torch_state_dict())
            cosines = [float(torch.nn.functional.cosine_similarity(
                delta(r.content["arrays"].to_torch_state_dict()), mean, dim=0))
                for r in replies if r.has_content()]
            agreement = float(sum(cosines) / max(1, len(cosines)))
            self.log.append({"round": server_round, "perturbations": self.perturbations,
                             "agreement": agreement})
            if agreement < self.min_agreement:
                self.perturbations = min(2 * self.perturbations, self.max_perturbations)
            return arrays, metrics

    return VarianceChecked


def make_strategy(settings: dict):
    n = settings["clients"]
    common = dict(fraction_train=1.0, fraction_evaluate=0.0, min_train_nodes=max(1, n - 1),
                  min_evaluate_nodes=0, min_available_nodes=n)
    kind = settings["strategy"]
    base, extra = {"fedprox": (FedProx, {"proximal_mu": settings.get("proximal_mu", 0.0)}),
                   "fedadam": (FedAdam, {"eta": settings.get("server_lr", 0.01)})}.get(
        kind, (FedAvg, {}))
    if settings.get("mode") == "forward":
        return variance_checked(base)(perturbations=settings["perturbations"],
                                      model=settings.get("model", "slu"), **extra, **common)
    return base(**extra, **common)


def run_server(grid: Grid, settings: dict, evaluate_fn, on_result=None) -> None:
    """The server's side of a federation on `grid` (either runtime): the strategy from the
    initial weights, for the rounds left. `evaluate_fn(round, arrays)`: the server's evaluation
    on the masked test set, which also checkpoints the round (recorder.py); `on_result(result,
    variance_log)`: Flower's Result at the end (the clients' aggregated train metrics)."""
    import torch

    state = torch.load(settings["initial_state"], map_location="cpu", weights_only=True)
    strategy = make_strategy(settings)
    result = strategy.start(grid=grid, initial_arrays=ArrayRecord(state),
                            num_rounds=settings["rounds_left"],
                            timeout=settings.get("timeout", 600),
                            train_config=ConfigRecord({"lr": settings["lr"]}),
                            evaluate_fn=evaluate_fn)
    if on_result is not None:
        on_result(result, getattr(strategy, "log", None))


def evaluate_on(settings: dict, test_dir: Path):
    test = read_client(test_dir)

    def evaluate(server_round: int, arrays: ArrayRecord) -> MetricRecord:
        task = fl_task(settings, arrays.to_torch_state_dict())
        return MetricRecord({"accuracy": task.accuracy(test)})
    return evaluate
