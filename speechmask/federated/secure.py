"""`--secure-aggregation`: Flower's SecAgg+ (Bell et al. 2020), so that the server learns only
the sum of the devices' weights, never one device's.

In flwr 1.42 SecAgg+ exists only for the workflow API (`SecAggPlusWorkflow` on the server, the
`secaggplus_mod` client mod), not for the Message-API strategies the plain runs use, so this is
that API's pair: a ServerApp running `DefaultWorkflow(fit_workflow=SecAggPlusWorkflow(...))` with
the workflow API's FedAvg, and a ClientApp whose NumPyClient trains the same task as the plain
clients (`task.fl_task`). Each device masks its weighted weights with pairwise masks and Shamir
shares of its keys; the server unmasks only the sum. The protocol quantizes: weights are clipped
to +-`clipping_range`, set here from the initial model (4x its largest weight) so that nothing is
clipped in practice, and quantized to 2^24 levels over that range (the modulus, 2^32, leaves room
for the sum of 250 devices). FedAvg's weighting by examples is kept (`max_weight`: the
most examples a device's round can see)."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from flwr.app import ArrayRecord, Context
from flwr.client import Client, NumPyClient
from flwr.common import ndarrays_to_parameters
from flwr.server import LegacyContext, ServerConfig
from flwr.serverapp import Grid
from flwr.server.strategy import FedAvg
from flwr.server.workflow import DefaultWorkflow, SecAggPlusWorkflow

from .apps import device_seed, run_round
from .data import read_client
from .task import fl_task, make_model, peak_memory_bytes

QUANTIZATION_LEVELS = 1 << 24


def _split(state: dict) -> tuple[list[str], dict]:
    """(the floating-point tensors' keys, which go through the protocol; the other tensors).
    Integer buffers (batch norm's step counters) would not survive its fixed-point arithmetic
    and need no averaging: each side keeps the initial model's."""
    keys = sorted(k for k, v in state.items() if v.is_floating_point())  # one order everywhere
    return keys, {k: v for k, v in state.items() if not v.is_floating_point()}


@functools.lru_cache(maxsize=4)
def _structure(slu_config_json: str) -> tuple[list[str], dict]:
    """`_split` of a fresh model of this configuration (a device builds it once, not per
    message)."""
    return _split(make_model(json.loads(slu_config_json)).state_dict())


class _Device(NumPyClient):
    """A device in the protocol. The arrays travel as a list in `_split`'s order; the names and
    the integer buffers come from the model's structure (settings' `slu_config`), so that a
    SuperNode on a machine of its own needs only its data (the buffers do not enter training:
    batch norm's momentum is set)."""

    def __init__(self, settings: dict, pid: int, data_dir: Path):
        self.settings, self.pid, self.data_dir = settings, pid, data_dir
        self.keys, self.fixed = _structure(json.dumps(settings["slu_config"], sort_keys=True))

    def fit(self, parameters, config):
        state = {**self.fixed, **{k: torch.from_numpy(np.array(p))
                                  for k, p in zip(self.keys, parameters)}}
        task = fl_task(self.settings, state)
        data = read_client(self.data_dir)
        rnd = run_round(self.settings, config)
        metrics = task.train(data, seed=device_seed(self.settings, rnd, self.pid),
                             proximal_mu=0.0)
        arrays = task.arrays()
        metrics["peak-memory-bytes"] = peak_memory_bytes()
        examples = int(metrics.pop("num-examples"))
        if self.settings.get("dump_dir"):  # tests: what this device put into the protocol
            torch.save({"arrays": arrays, "examples": examples},
                       Path(self.settings["dump_dir"]) / f"round{rnd}_client{self.pid}.pt")
        return [arrays[k].detach().cpu().numpy() for k in self.keys], examples, metrics


def secure_client_fn(settings_of: Callable[[Context], dict]) -> Callable[[Context], Client]:
    """The devices' client_fn; `settings_of(context)` gives the federation's settings (from the
    run config). A SuperNode's `data-dir` node config names its data folder on a machine of its
    own (default: the settings' `client_<pid>`)."""

    def client_fn(context: Context) -> Client:
        settings = settings_of(context)
        pid = int(context.node_config["partition-id"])
        data_dir = context.node_config.get("data-dir") or \
            Path(settings["data_dir"]) / f"client_{pid}"
        return _Device(settings, pid, Path(str(data_dir))).to_client()

    return client_fn


def _train_metrics(results: list[tuple[int, dict]]) -> dict:
    total = sum(n for n, _ in results) or 1
    return {"train-loss": sum(n * float(m["train-loss"]) for n, m in results) / total,
            "peak-memory-bytes": max(float(m["peak-memory-bytes"]) for _, m in results)}


def run_secure_server(grid: Grid, context: Context, settings: dict, recorder) -> None:
    """The server's side of every round (either runtime): the workflow API's FedAvg behind
    SecAgg+, the global model scored and checkpointed by `recorder` after each round. With
    `settings["dump_dir"]` (tests), every reply the server receives is written there
    (`RecordingGrid`)."""
    state = torch.load(settings["initial_state"], map_location="cpu", weights_only=True)
    keys, fixed = _split(state)
    n = settings["clients"]
    if settings.get("dump_dir"):
        grid = RecordingGrid(grid, Path(settings["dump_dir"]))

    def evaluate(server_round: int, ndarrays, config):
        arrays = ArrayRecord({**fixed, **{k: torch.from_numpy(np.array(a)).to(state[k].dtype)
                                          for k, a in zip(keys, ndarrays)}})
        return 0.0, {"accuracy": float(recorder.on_round(server_round, arrays)["accuracy"])}

    strategy = FedAvg(fraction_fit=1.0, fraction_evaluate=0.0, min_fit_clients=max(2, n - 1),
                      min_evaluate_clients=0, min_available_clients=n,
                      initial_parameters=ndarrays_to_parameters([state[k].numpy() for k in keys]),
                      evaluate_fn=evaluate, fit_metrics_aggregation_fn=_train_metrics,
                      on_fit_config_fn=lambda rnd: {"server-round": rnd})
    legacy = LegacyContext(context=context,
                           config=ServerConfig(num_rounds=settings["rounds_left"]),
                           strategy=strategy)
    clip = 4.0 * max(float(state[k].abs().max()) for k in keys)
    # the protocol scales each device's weights by examples / max_weight before quantizing; a
    # device reports the examples its steps saw (task.train_local: steps x min(batch, its
    # utterances)), at most local_steps x batch_size: the largest device at 1
    workflow = SecAggPlusWorkflow(num_shares=n, reconstruction_threshold=max(2, n - 1),
                                  max_weight=float(settings["local_steps"]
                                                   * settings["batch_size"]),
                                  clipping_range=clip, quantization_range=QUANTIZATION_LEVELS,
                                  timeout=settings.get("timeout", 600))
    DefaultWorkflow(fit_workflow=workflow)(grid, legacy)
    done = {int(r) for r, _ in legacy.history.metrics_distributed_fit.get("train-loss", [])}
    halted = sorted(set(range(1, settings["rounds_left"] + 1)) - done)
    if halted:  # the workflow logs and returns when too few devices answer
        raise RuntimeError(f"SecAgg+ halted in round(s) {halted}: too few devices answered "
                           "(state.pt lists those rounds with the model unchanged)")
    for rnd, metrics in legacy.history.metrics_distributed_fit.get("train-loss", []):
        recorder.history["train_loss"][str(recorder.start_round + int(rnd))] = float(metrics)
    for rnd, value in legacy.history.metrics_distributed_fit.get("peak-memory-bytes", []):
        key = str(recorder.start_round + int(rnd))
        recorder.history["client_peak_memory_bytes"][key] = float(value)
    recorder.save()


class RecordingGrid:
    """A Grid that passes everything through and writes each reply the server receives (its
    records' arrays and config values, by stage) to `folder/server_received.pt`: what a curious
    server sees, for the tests."""

    def __init__(self, grid: Grid, folder: Path):
        self._grid, self._file, self._seen = grid, folder / "server_received.pt", []

    def __getattr__(self, name):
        return getattr(self._grid, name)

    def send_and_receive(self, messages, *args, **kwargs):
        replies = list(self._grid.send_and_receive(messages, *args, **kwargs))
        for reply in replies:
            if reply.has_error():
                continue
            entry = {"node": int(reply.metadata.src_node_id), "records": {}}
            for name, record in reply.content.items():
                values = record.to_numpy_ndarrays() if isinstance(record, ArrayRecord) \
                    else {k: _plain(v) for k, v in record.items()}
                entry["records"][name] = values
            self._seen.append(entry)
        torch.save(self._seen, self._file)
        return replies


def _plain(value):
    """A config or metric value in plain types (bytes as uint8 arrays) for the test's file."""
    if isinstance(value, bytes):
        return np.frombuffer(value, dtype=np.uint8).copy()
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value
