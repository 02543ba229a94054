"""Federated adaptation: partitions, aggregation checked by hand, FedProx's term, and the Flower
simulation end to end on the tiny corpus (messages audited, a dropped client, resumption)."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from speechmask.errors import ConfigError
from speechmask.federated.config import FederateConfig
from speechmask.federated.data import ClientData, partition

SPEECHMASK = [sys.executable, "-m", "speechmask"]


def _rows(speakers=6, per=10, intents=3):
    return [{"speaker": f"s{s}", "intent": f"i{(s + u) % intents}"}
            for s in range(speakers) for u in range(per)]


def test_partition_by_speaker_is_disjoint_and_complete():
    rows = _rows()
    parts = partition(rows, list(range(len(rows))), FederateConfig(clients=4))
    assert sorted(i for p in parts for i in p) == list(range(len(rows)))
    owners = [{rows[i]["speaker"] for i in p} for p in parts]
    assert all(o for o in owners)
    assert sum(len(o) for o in owners) == len(set().union(*owners)) == 6  # no speaker twice
    with pytest.raises(ConfigError, match="7 clients"):
        partition(rows, list(range(len(rows))), FederateConfig(clients=7))


def test_dirichlet_partition_is_complete_and_skewed():
    rows = _rows(speakers=10, per=30)
    idx = list(range(len(rows)))
    skewed = partition(rows, idx, FederateConfig(clients=3, dirichlet_alpha=0.1, seed=1))
    even = partition(rows, idx, FederateConfig(clients=3, dirichlet_alpha=1000.0, seed=1))
    assert sorted(i for p in skewed for i in p) == idx

    def spread(parts):  # mean over clients of the largest intent's share
        return np.mean([max(np.bincount([int(rows[i]["intent"][1]) for i in p], minlength=3))
                        / len(p) for p in parts])
    assert spread(skewed) > spread(even) + 0.2


def test_fedavg_aggregates_a_weighted_mean():
    """Flower's FedAvg, as the server runs it, on hand-made replies: (1*a + 3*b) / 4."""
    from flwr.app import ArrayRecord, Message, MetricRecord, RecordDict
    from flwr.supercore.task_identity import TaskIdentity

    from speechmask.federated.apps import make_strategy

    TaskIdentity.run_id = TaskIdentity.task_id = TaskIdentity.node_id = 1  # as the runtime does

    a = {"w": np.array([1.0, 2.0], np.float32), "b": np.array([[0.0]], np.float32)}
    b = {"w": np.array([5.0, -2.0], np.float32), "b": np.array([[4.0]], np.float32)}
    replies = []
    for arrays, n in ((a, 1), (b, 3)):
        content = RecordDict({"arrays": ArrayRecord({k: torch.tensor(v) for k, v in
                                                     arrays.items()}),
                              "metrics": MetricRecord({"num-examples": n, "train-loss": 1.0})})
        msg = Message(content=content, dst_node_id=1, message_type="train")
        replies.append(Message(content=content, reply_to=msg))
    strategy = make_strategy({"clients": 2, "strategy": "fedavg"})
    arrays, metrics = strategy.aggregate_train(1, replies)
    got = arrays.to_torch_state_dict()
    assert np.allclose(got["w"].numpy(), [4.0, -1.0])
    assert np.allclose(got["b"].numpy(), [[3.0]])


def test_fedprox_term_keeps_weights_near_the_global_model(slu_path):
    from speechmask.federated.task import make_model, train_local
    from speechmask.train.checkpoint import load_checkpoint

    blob = load_checkpoint(slu_path, kind="slu")
    rng = np.random.default_rng(0)
    data = ClientData([rng.normal(size=(60, 40)).astype(np.float32) for _ in range(8)],
                      rng.integers(0, len(blob["config"]["intents"]), 8), ["x"] * 8)

    def drift(mu):
        model = make_model(blob["config"], blob["model"])
        start = [p.detach().clone() for p in model.parameters()]
        train_local(model, data, steps=15, batch_size=4, lr=3e-3, seed=0, proximal_mu=mu)
        return float(sum(((p - s) ** 2).sum() for p, s in zip(model.parameters(), start)))
    assert drift(50.0) < 0.5 * drift(0.0)


@pytest.fixture(scope="module")
def prepared(tiny_corpus, mask_path, slu_path, tmp_path_factory):
    from speechmask.federated.runner import prepare

    out = tmp_path_factory.mktemp("fl")
    cfg = FederateConfig(clients=3, rounds=2, local_steps=3, batch_size=4)
    settings = prepare(tiny_corpus, mask_path, slu_path, out, cfg, progress=False)
    return out, settings, cfg


def test_prepared_data_is_masked_and_split_by_speaker(prepared, tiny_corpus, mask_path):
    """What a client holds is the mask's output, nothing unmasked: the segments the mask closed
    are at the floor value in every saved utterance."""
    from speechmask.federated.data import read_client

    out, settings, cfg = prepared
    clients = [read_client(out / "data" / f"client_{k}") for k in range(cfg.clients)]
    speakers = [set(c.speakers) for c in clients]
    assert all(speakers) and not set.intersection(*speakers)
    from speechmask.api import load_mask
    from speechmask.models.gates import floor_value

    floor = floor_value(load_mask(mask_path).cfg.frontend)
    closed = [np.all(f == floor, axis=1).mean() for c in clients for f in c.features]
    assert np.mean(closed) > 0.05  # whole withheld frames are there, at the floor


def test_simulation_runs_audits_drops_and_resumes(prepared):
    """Two rounds in Flower's simulation with client 0 dropping out of round 1: the federation
    goes on; every message a client sent holds only the model's arrays and numeric metrics; a
    third round resumes from the saved state."""
    from speechmask.federated.runner import _load_state, run_federation

    out, settings, cfg = prepared
    audit = out / "messages.jsonl"
    settings = dict(settings, audit=str(audit), drop={"1": [0]})
    history = run_federation(settings, out, rounds=2)
    assert sorted(history["accuracy"], key=int) == ["0", "1", "2"]
    lines = [json.loads(ln) for ln in audit.read_text().splitlines()]
    assert len(lines) == 2 + 3  # round 1 lost client 0's reply
    from speechmask.federated.task import make_model

    shapes = {k: list(v.shape) for k, v in make_model(settings["slu_config"]).state_dict().items()}
    for entry in lines:
        assert set(entry["records"]) == {"arrays", "metrics"}
        assert entry["records"]["arrays"]["shapes"] == shapes
        assert entry["records"]["metrics"]["keys"] == ["num-examples", "peak-memory-bytes",
                                                       "train-loss"]
    assert _load_state(out / "state.pt")["round"] == 2
    more = run_federation(settings, out, rounds=3, resume=True)
    assert sorted(more["accuracy"], key=int) == ["0", "1", "2", "3"]
    assert more["accuracy"]["1"] == history["accuracy"]["1"]


def test_cli_federates_and_reports(tiny_corpus, mask_path, slu_path, tmp_path):
    out = tmp_path / "fl"
    done = subprocess.run(SPEECHMASK + ["federate", "--manifest", str(tiny_corpus), "--mask",
                                        str(mask_path), "--slu", str(slu_path), "--clients", "2",
                                        "--rounds", "1", "--local-steps", "2", "--batch-size",
                                        "4", "--strategy", "fedprox", "--out", str(out)],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads((out / "report.json").read_text())
    assert report["rounds"] == [0, 1] and report["config"]["strategy"] == "fedprox"
    assert report["bytes_up"]["1"] > 0 and (out / "rounds.png").stat().st_size > 0
    again = subprocess.run(SPEECHMASK + ["federate", "--manifest", str(tiny_corpus), "--mask",
                                         str(mask_path), "--out", str(out)],
                           capture_output=True, text=True)
    assert again.returncode == 1 and "--force" in again.stderr


@pytest.mark.parametrize("args,message", [
    (["--mask", "missing.pt"], "missing.pt: no such checkpoint"),
    (["--clients", "1"], "--clients must be >= 2"),
    (["--clients", "50"], "speakers cannot fill 50 clients"),
])
def test_cli_bad_input_one_line(tiny_corpus, mask_path, tmp_path, args, message):
    base = {"--manifest": str(tiny_corpus), "--mask": str(mask_path),
            "--out": str(tmp_path / "fl")}
    for flag, value in zip(args[::2], args[1::2]):
        base[flag] = value
    done = subprocess.run(SPEECHMASK + ["federate", *[x for kv in base.items() for x in kv]],
                          capture_output=True, text=True, cwd=tmp_path, timeout=600)
    assert done.returncode == 1, done.stderr
    assert message in done.stderr and len(done.stderr.strip().splitlines()) == 1
