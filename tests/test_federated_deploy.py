"""The federation on Flower's deployment runtime: a real `flower-superlink` and one
`flower-supernode` per client on 127.0.0.1, the app submitted with `flwr run`, every message a
client sent audited, a client dropping out of a round, and every process stopped afterwards (by
PID, the ClientApps and ServerApps they spawned included). `make test-federated` runs this file
with the other federated tests, the ones marked slow included (`make test` leaves those to
`make test-all`)."""

from __future__ import annotations

import json
import socket
import subprocess
import sys

import pytest
from test_federated import flower_processes

SPEECHMASK = [sys.executable, "-m", "speechmask"]
@pytest.fixture(scope="module")
def prepared(tiny_corpus, mask_path, slu_path, tmp_path_factory):
    from speechmask.federated.config import FederateConfig
    from speechmask.federated.runner import prepare

    out = tmp_path_factory.mktemp("fl_deploy")
    cfg = FederateConfig(clients=2, rounds=2, local_steps=3, batch_size=4)
    return out, prepare(tiny_corpus, mask_path, slu_path, out, cfg, progress=False), cfg


def test_deployment_runs_audits_drops_and_stops_everything(prepared):
    from speechmask.federated.recorder import load_state
    from speechmask.federated.runner import run_federation
    from speechmask.federated.task import make_model

    out, settings, cfg = prepared
    before = flower_processes()
    audit = out / "messages.jsonl"
    settings = dict(settings, audit=str(audit), drop={"1": [0]})
    history = run_federation(settings, out, rounds=2, deployment="local")
    assert sorted(history["accuracy"], key=int) == ["0", "1", "2"]
    assert load_state(out / "state.pt")["round"] == 2
    assert set(history["train_loss"]) == {"1", "2"}
    lines = [json.loads(ln) for ln in audit.read_text().splitlines()]
    assert len(lines) == 1 + 2  # client 0's reply of round 1 was lost; the round went on
    shapes = {k: list(v.shape) for k, v in make_model(settings["slu_config"]).state_dict().items()}
    for entry in lines:  # only the model's arrays and numeric metrics left the SuperNodes
        assert set(entry["records"]) == {"arrays", "metrics"}
        assert entry["records"]["arrays"]["shapes"] == shapes
    assert (out / "deploy" / "logs" / "superlink.log").stat().st_size > 0
    assert flower_processes() - before == set()  # nothing left running


def test_a_port_in_use_is_one_line(tiny_corpus, mask_path, tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.listen()
        done = subprocess.run(SPEECHMASK + ["federate", "--manifest", str(tiny_corpus),
                                            "--mask", str(mask_path), "--out", str(tmp_path / "fl"),
                                            "--deployment", f"local:{port}"],
                              capture_output=True, text=True, timeout=300)
    assert done.returncode == 1
    assert f"127.0.0.1:{port} is in use" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "fl").exists()  # refused before any work


def test_an_unknown_connection_is_one_line(tiny_corpus, mask_path, tmp_path):
    import os

    env = dict(os.environ, FLWR_HOME=str(tmp_path / "home"))
    done = subprocess.run(SPEECHMASK + ["federate", "--manifest", str(tiny_corpus), "--mask",
                                        str(mask_path), "--out", str(tmp_path / "fl"),
                                        "--deployment", "nowhere"],
                          capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 1
    assert "no such flwr connection" in done.stderr and "nowhere" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


@pytest.mark.slow  # SecAgg+ runs in `make test` in the simulation (test_federated.py)
def test_secure_aggregation_on_the_deployment_runtime(tiny_corpus, mask_path, slu_path,
                                                     tmp_path):
    """SecAgg+ across three SuperNodes: the round completes, the server's model is the devices'
    examples-weighted mean to within the quantization, the server received each device's
    weights only as a masked vector, and no Flower process is left."""
    import torch

    from speechmask.federated.config import FederateConfig
    from speechmask.federated.recorder import load_state
    from speechmask.federated.runner import prepare, run_federation
    from test_federated import _server_saw_only_masked_vectors

    out, dumps = tmp_path / "fl", tmp_path / "dumps"
    dumps.mkdir()
    cfg = FederateConfig(clients=3, rounds=1, local_steps=2, batch_size=4,
                         secure_aggregation=True)
    settings = prepare(tiny_corpus, mask_path, slu_path, out, cfg, progress=False)
    before = flower_processes()
    history = run_federation(dict(settings, dump_dir=str(dumps)), out, rounds=1,
                             deployment="local")
    assert sorted(history["accuracy"], key=int) == ["0", "1"] and history["train_loss"]["1"] > 0
    assert flower_processes() - before == set()
    sent = [torch.load(p, weights_only=True) for p in sorted(dumps.glob("round1_client*.pt"))]
    assert len(sent) == 3
    total = sum(d["examples"] for d in sent)
    initial = torch.load(out / "initial.pt", weights_only=True)
    step = 8 * max(float(v.abs().max()) for v in initial.values() if v.is_floating_point()) \
        / (1 << 24)
    for k, v in load_state(out / "state.pt")["weights"].items():
        if v.is_floating_point():
            mean = sum(d["examples"] * d["arrays"][k].double() for d in sent) / total
            assert float((v.double() - mean).abs().max()) <= 4 * step, k
    _server_saw_only_masked_vectors(dumps, sent)
