"""Federated adaptation: partitions, aggregation checked by hand, FedProx's term, and the Flower
simulation end to end on the tiny corpus through `flwr run` (messages audited, a dropped client,
resumption, every process stopped)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from speechmask.errors import ConfigError
from speechmask.federated.config import FederateConfig
from speechmask.federated.data import ClientData, partition

SPEECHMASK = [sys.executable, "-m", "speechmask"]
# the runtime's processes: Flower's, and the simulation engine's (Ray's daemons, workers,
# log monitor and agents)
FLOWER = ("flower-superlink", "flower-supernode", "flower-superexec", "flwr-serverapp",
          "flwr-clientapp", "flwr-simulation", "raylet", "gcs_server", "ray::", "/ray/_private/",
          "/ray/dashboard/")


def flower_processes() -> set[int]:
    found = set()
    for d in Path("/proc").glob("[0-9]*"):
        try:
            cmd = (d / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if any(name in cmd for name in FLOWER):
            found.add(int(d.name))
    return found


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
    """Two rounds in Flower's simulation (`flwr run` on a simulation SuperLink) with client 0
    dropping out of round 1: the federation goes on; every message a client sent holds only the
    model's arrays and numeric metrics; a third round resumes from the saved state; no process
    of the runtime is left."""
    from speechmask.federated.recorder import load_state
    from speechmask.federated.runner import run_federation

    out, settings, cfg = prepared
    before = flower_processes()
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
    assert load_state(out / "state.pt")["round"] == 2
    more = run_federation(settings, out, rounds=3, resume=True)
    assert sorted(more["accuracy"], key=int) == ["0", "1", "2", "3"]
    assert more["accuracy"]["1"] == history["accuracy"]["1"]
    # the run came through the simulation SuperLink's Control API, as `flwr run` submits it
    assert "ControlServicer.StartRun" in (out / "simulation" / "logs" / "superlink.log").read_text()
    assert flower_processes() - before == set()  # the SuperLink, its SuperExec and Ray: gone


@pytest.mark.slow  # `make test` runs `federate` by the CLI (report, refusal) in test_lm_dir_...
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


def test_forward_gradient_lowers_the_loss_without_a_backward_pass(slu_path, monkeypatch):
    """FwdLLM-style clients: autograd is off in every forward pass, nothing calls backward, and
    the loss on the client's data falls; only the trainable head moves."""
    import torch.nn.functional as F

    from speechmask.federated.task import FORWARD_TRAINABLE, _batch, make_model, train_forward
    from speechmask.train.checkpoint import load_checkpoint

    blob = load_checkpoint(slu_path, kind="slu")
    rng = np.random.default_rng(1)
    n_intents = len(blob["config"]["intents"])
    data = ClientData([rng.normal(size=(50, 40)).astype(np.float32) for _ in range(12)],
                      rng.integers(0, n_intents, 12), ["x"] * 12)
    model = make_model(blob["config"], blob["model"])
    before = {k: v.clone() for k, v in model.state_dict().items()}

    def loss() -> float:
        with torch.no_grad():
            model.eval()
            x, lengths, y = _batch(model, data, np.arange(12))
            return float(F.cross_entropy(model(x, lengths), y))

    grad_modes = []
    model.register_forward_hook(lambda *_: grad_modes.append(torch.is_grad_enabled()))

    def no_backward(*args, **kwargs):
        raise AssertionError("backward called")
    monkeypatch.setattr(torch.Tensor, "backward", no_backward)
    monkeypatch.setattr(torch.autograd, "backward", no_backward)
    start = loss()
    train_forward(model, data, steps=30, batch_size=12, lr=0.05, seed=0, perturbations=8)
    assert loss() < start - 0.05
    assert grad_modes and not any(grad_modes)
    moved = {k for k, v in model.state_dict().items() if not torch.equal(v, before[k])}
    assert moved and all(k.startswith(FORWARD_TRAINABLE) for k in moved)


def test_lm_mode_sends_only_lora_and_projector(prepared, slu_path, tmp_path):
    """The speech LM: a small GPT-2 pre-trained here on the training text (its loss falls), the
    projector and LoRA the only weights that train and travel, far fewer than the whole model
    (a round of it through Flower: test_lm_round_through_flower_sends_only_the_adapters)."""
    from speechmask.federated.lm import (PROMPT, pretrain, small_lm, text_accuracy,
                                         word_tokenizer)

    settings = prepared[1]
    texts = ["turn the lights on" + PROMPT + " lights_on", "what is my balance" + PROMPT +
             " balance_query"] * 8
    tok = word_tokenizer(texts)
    assert len(tok.encode(" lights_on")) == 1 and tok.decode(tok.encode(" lights_on")) == (
        "lights_on")  # an intent is one token
    other = word_tokenizer(texts, ["set-alarm", "lights_on"])  # whatever its characters
    assert other.tok.convert_ids_to_tokens(other.encode(" set-alarm please")) == [
        "set-alarm", "<unk>"] and other.decode(other.encode(" set-alarm")) == "set-alarm"

    torch.manual_seed(0)
    lm = small_lm(tok, width=32, layers=1, heads=2)
    spoken, intents = ["turn the lights on", "what is my balance"], ["lights_on", "balance_query"]
    first = pretrain(lm, tok, texts, 1)
    assert text_accuracy(lm, tok, spoken, intents) < 1.0
    assert pretrain(lm, tok, texts, 60) < first - 1.0  # a language model, not noise
    assert text_accuracy(lm, tok, spoken, intents) == 1.0  # of the labels too

    rows = [{"transcript": t.split(PROMPT)[0], "intent": t.split()[-1]} for t in texts]
    _, task = _lm_task(prepared, slu_path, tmp_path / "fl", rows, local_steps=2, batch_size=2)
    sent = task.arrays()
    assert sent and all(k.startswith(("lora.", "projector.")) for k in sent)
    trainable = {n for n, p in task.model.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in n or n.startswith("projector.") for n in trainable)
    # the encoder is the cloud model's, frozen, and stays in eval mode while the rest trains
    from speechmask.train.checkpoint import load_checkpoint

    encoder = load_checkpoint(slu_path, kind="slu")["model"]
    assert all(torch.equal(v, encoder[k]) for k, v in task.model.encoder.state_dict().items())
    assert not task.model.train().encoder.training
    full = sum(p.numel() for p in task.model.lm.parameters())
    assert full > 5 * sum(v.numel() for v in sent.values())
    # transformers' generate is plain greedy decoding after the prefix and the prompt: the same
    # labels as argmax token by token, without the prompt or the end-of-text token
    from speechmask.federated.data import read_client

    feats = read_client(Path(settings["data_dir"]) / "test").features[:3]
    assert task.model.generate(feats, task.tok, max_len=6) == [
        _greedy_reference(task.model, f, task.tok, 6) for f in feats]


def _lm_task(prepared, slu_path, lm_out: Path, rows: list[dict], **settings):
    """The speech LM's client settings and task over the prepared clients: a small LM
    pre-trained briefly on `rows`' text into `lm_out`, the cloud model's frozen encoder."""
    import dataclasses

    from speechmask.federated.runner import _language_model
    from speechmask.federated.task import fl_task

    _, base, cfg = prepared
    lm_out.mkdir()
    folder = _language_model(dataclasses.replace(cfg, model="lm", lm_pretrain_steps=5), lm_out,
                             rows)
    lm_settings = dict(base, model="lm", lm_dir=str(folder), speech_encoder=str(slu_path),
                       **settings)
    return lm_settings, fl_task(lm_settings)


def _lm_round(lm_settings: dict, task, lm_out: Path) -> dict:
    """One round of the speech LM through Flower from the task's adapters; the history."""
    from speechmask.federated.runner import run_federation

    torch.save({k: v.detach().clone() for k, v in task.arrays().items()}, lm_out / "initial.pt")
    return run_federation(lm_settings, lm_out, rounds=1)


@pytest.mark.slow  # the LM through Flower runs in `make test` too, by the CLI (test_lm_dir_...)
def test_lm_round_through_flower_sends_only_the_adapters(prepared, slu_path, tmp_path):
    """A round of the speech LM in the simulation: what each device sends up is the LoRA
    adapters and the projector, a few times fewer bytes than the whole LM."""
    rows = [{"transcript": "turn the lights on", "intent": "lights_on"},
            {"transcript": "what is my balance", "intent": "balance_query"}] * 4
    lm_settings, task = _lm_task(prepared, slu_path, tmp_path / "fl", rows, local_steps=2,
                                 batch_size=2)
    sent = task.arrays()
    history = _lm_round(lm_settings, task, tmp_path / "fl")
    assert set(history["accuracy"]) == {"0", "1"}
    assert history["bytes_up"]["1"] < 4 * sum(v.numel() * 4 for v in sent.values()) * 2


@pytest.mark.slow  # as test_forward_clients_in_the_simulation, for the speech LM
def test_lm_forward_gradient_round_through_flower(prepared, slu_path, tmp_path):
    """FwdLLM clients of the speech LM in the simulation: the server's variance check reads
    their directional derivatives."""
    rows = [{"transcript": "turn the lights on", "intent": "lights_on"}] * 4
    lm_settings, task = _lm_task(prepared, slu_path, tmp_path / "fl", rows, mode="forward",
                                 perturbations=2, forward_lr=0.01, local_steps=2, batch_size=8)
    history = _lm_round(lm_settings, task, tmp_path / "fl")
    assert [e["round"] for e in history["variance_check"]] == [1]


@torch.no_grad()
def _greedy_reference(model, feats, tok, max_len: int) -> str:
    from speechmask.federated.lm import PROMPT

    model.eval()
    prefix, _ = model.prefix([feats])
    embeds = torch.cat([prefix, model._embed(torch.tensor([tok.encode(PROMPT)]))], 1)
    ids: list[int] = []
    for _ in range(max_len):
        step = torch.cat([embeds, model._embed(torch.tensor([ids], dtype=torch.long))], 1)
        nxt = int(model.lm(inputs_embeds=step).logits[0, -1].argmax())
        if nxt == tok.EOS:
            break
        ids.append(nxt)
    return tok.decode(ids).strip()


def test_lm_forward_gradient_clients(prepared, slu_path, tmp_path, monkeypatch):
    """FwdLLM on the speech LM: no backward pass, the loss on the device's data falls, only the
    LoRA adapters and the projector move."""
    from speechmask.federated.data import read_client

    out = prepared[0]
    rows = [{"transcript": "turn the lights on", "intent": "lights_on"}] * 4
    _, task = _lm_task(prepared, slu_path, tmp_path / "fl", rows, mode="forward",
                       perturbations=8, forward_lr=0.01, local_steps=20, batch_size=8)
    data = read_client(out / "data" / "client_0")
    labels = task._labels(data)
    before = {k: v.clone() for k, v in task.model.state_dict().items()}

    def loss() -> float:
        with torch.no_grad():
            return float(task.model.loss(data.features, labels, task.tok))

    def no_backward(*args, **kwargs):
        raise AssertionError("backward called")
    start = loss()
    with monkeypatch.context() as m:
        m.setattr(torch.Tensor, "backward", no_backward)
        m.setattr(torch.autograd, "backward", no_backward)
        metrics = task.train(data, seed=0, proximal_mu=0.0)
    assert loss() < start and metrics["slope-variance"] > 0
    moved = {k for k, v in task.model.state_dict().items() if not torch.equal(v, before[k])}
    assert moved and all("lora_" in k or k.startswith("projector.") for k in moved)


def test_int8_devices_send_what_the_int8_model_gates(tiny_corpus, mask_path, slu_path,
                                                     export_dir, tmp_path):
    """`--int8`: the clients' data is the exported int8 model's closed loop on LiteRT, which
    agrees with the float mask on nearly every gate; a file that is not a model is one line."""
    from speechmask.api import load_mask
    from speechmask.device.int8 import LiteRT, int8_gates
    from speechmask.federated.data import masked, read_client
    from speechmask.models.gates import floor_value
    from speechmask.train.data import load_features

    out = tmp_path / "fl"
    base = SPEECHMASK + ["federate", "--manifest", str(tiny_corpus), "--mask", str(mask_path),
                         "--slu", str(slu_path), "--clients", "2", "--prepare-only"]
    done = subprocess.run(base + ["--int8", str(export_dir / "mask.tflite"), "--out", str(out)],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    mask = load_mask(mask_path)
    fs = load_features(tiny_corpus, mask.cfg.frontend, progress=False)
    test = [fs.features[i] for i in fs.select("split", "test")]
    sent = read_client(out / "data" / "test").features
    litert = LiteRT((export_dir / "mask.tflite").read_bytes(), mask.cfg)
    floor = np.float32(floor_value(mask.cfg.frontend))
    assert len(sent) == len(test)
    for f, s in zip(test, sent):
        gates = int8_gates(litert, f)[1]
        withheld = (s == floor).all(-1)  # band_groups 1: a withheld frame is all floor
        n = mask.cfg.frames_per_segment
        assert np.array_equal(withheld[: len(gates) * n].reshape(-1, n).all(-1), gates[:, 0] == 0)
    float_sent = masked(mask, test)
    agree = np.mean([np.mean((a == floor).all(-1) == (b == floor).all(-1))
                     for a, b in zip(sent, float_sent)])
    assert agree > 0.9
    (tmp_path / "bad.tflite").write_bytes(b"not a model")
    done = subprocess.run(base + ["--int8", str(tmp_path / "bad.tflite"),
                                  "--out", str(tmp_path / "fl2")],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 1 and "bad.tflite" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr


def _hf_checkpoint(folder, texts, tokenizer: bool = True):
    """A user's LM folder in HuggingFace's layout, made here without a download: a tiny Llama
    and a byte-level BPE tokenizer trained on `texts` (tokenizers), both `save_pretrained`."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    bpe = Tokenizer(models.BPE(unk_token="<unk>"))
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    bpe.train_from_iterator(texts, trainers.BpeTrainer(
        vocab_size=300, special_tokens=["<unk>", "</s>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tok = PreTrainedTokenizerFast(tokenizer_object=bpe, eos_token="</s>", unk_token="<unk>")
    torch.manual_seed(0)
    LlamaForCausalLM(LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64,
                                 num_hidden_layers=1, num_attention_heads=2,
                                 num_key_value_heads=2, eos_token_id=tok.eos_token_id)
                     ).save_pretrained(folder)
    if tokenizer:
        tok.save_pretrained(folder)
    return folder


def test_lm_dir_takes_a_huggingface_checkpoint_and_its_tokenizer(tiny_corpus, mask_path,
                                                                  slu_path, tmp_path):
    """`--lm-dir` with another architecture and its own tokenizer: LoRA lands where peft puts it
    for Llama (query and value projections), the label's end-of-text is learnt (the padding is
    the EOS id here), and `speechmask federate` runs a round and reports."""
    from speechmask.federated.lm import PROMPT, HFTokenizer, SpeechLM, load_lm, train_lm_local
    from speechmask.federated.task import make_model

    texts = ["turn the lights on" + PROMPT + " lights_on",
             "what is my balance" + PROMPT + " balance_query"] * 4
    folder = _hf_checkpoint(tmp_path / "hf", texts)
    lm, tok = load_lm(folder)
    assert isinstance(tok, HFTokenizer) and tok.PAD == tok.EOS
    assert tok.decode(tok.encode(" lights_on")) == " lights_on"
    from speechmask.train.checkpoint import load_checkpoint

    blob = load_checkpoint(slu_path, kind="slu")
    model = SpeechLM(lm, make_model(blob["config"], blob["model"]))
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert {n.split(".lora_")[0].rsplit(".", 1)[-1] for n in trainable if "lora_" in n} == {
        "q_proj", "v_proj"}
    rng = np.random.default_rng(0)
    n_mels = model.encoder.cfg.frontend.n_mels
    feats = [rng.normal(size=(24, n_mels)).astype(np.float32) for _ in range(4)]
    labels = ["lights_on", "balance_query"] * 2
    first = float(model.loss(feats, labels, tok))
    train_lm_local(model, tok, feats, labels, steps=20, batch_size=4, lr=1e-2, seed=0)
    assert float(model.loss(feats, labels, tok)) < first - 0.1

    out = tmp_path / "fl"
    done = subprocess.run(SPEECHMASK + ["federate", "--manifest", str(tiny_corpus), "--mask",
                                        str(mask_path), "--slu", str(slu_path), "--model", "lm",
                                        "--lm-dir", str(folder), "--clients", "2", "--rounds",
                                        "1", "--local-steps", "2", "--batch-size", "2",
                                        "--out", str(out)],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads((out / "report.json").read_text())
    assert report["rounds"] == [0, 1] and report["bytes_up"]["1"] > 0
    assert 0.0 <= report["lm_text_accuracy"] <= 1.0 and "the LM alone" in report["table"]
    assert (out / "speech_encoder.pt").read_bytes() == slu_path.read_bytes()
    assert (out / "rounds.png").stat().st_size > 0
    again = subprocess.run(SPEECHMASK + ["federate", "--manifest", str(tiny_corpus), "--mask",
                                         str(mask_path), "--out", str(out)],
                           capture_output=True, text=True)
    assert again.returncode == 1 and "--force" in again.stderr  # a finished run is kept


def test_lm_dir_errors_are_one_line(tiny_corpus, mask_path, slu_path, tmp_path):
    from speechmask.federated.lm import word_tokenizer

    (tmp_path / "notlm").mkdir()
    word_tokenizer(["turn the lights on"]).save(tmp_path / "notlm")  # a tokenizer, no model
    _hf_checkpoint(tmp_path / "notok", ["turn the lights on"] * 4, tokenizer=False)
    slu = ["--slu", str(slu_path)]
    for lm_dir, message, extra in ((tmp_path / "missing", "no such LM directory", slu),
                                   (tmp_path / "notlm", "not a causal language model", slu),
                                   (tmp_path / "notok", "no tokenizer", slu),
                                   (tmp_path / "notok", "--model lm needs --slu", [])):
        done = subprocess.run(SPEECHMASK + ["federate", "--manifest", str(tiny_corpus),
                                            "--mask", str(mask_path), "--model", "lm",
                                            "--lm-dir", str(lm_dir), "--clients", "2",
                                            "--out", str(tmp_path / "fl"), "--force"] + extra,
                              capture_output=True, text=True, timeout=600)
        assert done.returncode == 1, done.stderr[-500:]
        assert message in done.stderr and len(done.stderr.strip().splitlines()) == 1


def test_guided_directions_lean_towards_the_previous_update():
    from speechmask.federated.task import _directions

    params = [torch.zeros(50), torch.zeros(5, 4)]
    guide = [torch.randn(50, generator=torch.Generator().manual_seed(1)), torch.ones(5, 4)]
    flat = torch.cat([t.reshape(-1) for t in guide])

    def mean_cos(dirs):
        return np.mean([abs(float(torch.nn.functional.cosine_similarity(
            torch.cat([t.reshape(-1) for t in v]), flat, dim=0))) for v in dirs])
    plain = _directions(params, torch.Generator().manual_seed(0), 8, None, 4)
    guided = _directions(params, torch.Generator().manual_seed(0), 8, guide, 4)
    assert len(guided) == 8 and [t.shape for t in guided[0]] == [t.shape for t in params]
    assert mean_cos(guided) > 1.3 * mean_cos(plain)


def test_variance_check_asks_for_more_directions_when_clients_disagree():
    from flwr.app import ArrayRecord, Message, MetricRecord, RecordDict
    from flwr.supercore.task_identity import TaskIdentity

    from speechmask.federated.apps import make_strategy

    TaskIdentity.run_id = TaskIdentity.task_id = TaskIdentity.node_id = 1
    strategy = make_strategy({"clients": 2, "strategy": "fedavg", "mode": "forward",
                              "perturbations": 4})
    start = {"attn.weight": torch.zeros(3), "out.weight": torch.zeros(2)}

    def replies(*updates):
        out = []
        for u in updates:
            content = RecordDict({"arrays": ArrayRecord({k: start[k] + torch.tensor(v)
                                                         for k, v in u.items()}),
                                  "metrics": MetricRecord({"num-examples": 1})})
            msg = Message(content=content, dst_node_id=1, message_type="train")
            out.append(Message(content=content, reply_to=msg))
        return out
    strategy.round_start = start
    agree = {"attn.weight": [1.0, 0.0, 0.0], "out.weight": [1.0, 0.0]}
    strategy.aggregate_train(1, replies(agree, agree))
    assert strategy.perturbations == 4 and strategy.log[-1]["agreement"] > 0.99
    opposite = {"attn.weight": [-1.0, 0.1, 0.0], "out.weight": [-1.0, 0.0]}
    strategy.aggregate_train(2, replies(agree, opposite))
    assert strategy.perturbations == 8 and strategy.log[-1]["agreement"] < 0.1


@pytest.mark.slow  # the clients' forward-gradient step runs in `make test` without Flower
def test_forward_clients_in_the_simulation(prepared, tmp_path):
    """Forward-gradient clients through Flower: the server's check logs each round, the clients
    report the variance of their directional derivatives."""
    import shutil

    from speechmask.federated.runner import run_federation

    out, settings, cfg = prepared
    fwd = tmp_path / "fwd"
    fwd.mkdir()
    shutil.copy(out / "initial.pt", fwd / "initial.pt")
    history = run_federation(dict(settings, mode="forward", perturbations=2, forward_lr=0.01),
                             fwd, rounds=2)
    assert [e["round"] for e in history["variance_check"]] == [1, 2]
    assert set(history["accuracy"]) == {"0", "1", "2"}


def test_secure_aggregation_equals_fedavg_up_to_quantization(prepared, tmp_path):
    """SecAgg+ (Flower's workflow) in simulation: the server unmasks only the sum of what the
    devices put into the protocol, and the global model after a round is their examples-weighted
    mean to within the protocol's quantization step."""
    import shutil

    from speechmask.federated.recorder import load_state
    from speechmask.federated.runner import run_federation

    out, settings, cfg = prepared
    run_out, dumps = tmp_path / "secure", tmp_path / "dumps"
    run_out.mkdir()
    dumps.mkdir()
    shutil.copy(out / "initial.pt", run_out / "initial.pt")
    history = run_federation(dict(settings, secure_aggregation=True, dump_dir=str(dumps)),
                             run_out, rounds=1)
    assert sorted(history["accuracy"], key=int) == ["0", "1"]
    assert history["train_loss"]["1"] > 0
    sent = [torch.load(p, weights_only=True) for p in sorted(dumps.glob("round1_client*.pt"))]
    assert len(sent) == cfg.clients
    total = sum(d["examples"] for d in sent)
    initial = torch.load(out / "initial.pt", weights_only=True)
    clip = 4 * max(float(v.abs().max()) for v in initial.values() if v.is_floating_point())
    step = 2 * clip / (1 << 24)  # one quantization level
    server = load_state(run_out / "state.pt")["weights"]
    moved = 0.0
    for k, v in server.items():
        if not v.is_floating_point():  # step counters stay the initial model's
            assert torch.equal(v, initial[k])
            continue
        mean = sum(d["examples"] * d["arrays"][k].double() for d in sent) / total
        assert float((v.double() - mean).abs().max()) <= 4 * step, k
        moved = max(moved, float((mean - initial[k].double()).abs().max()))
    assert moved > 100 * step  # the round changed the model far beyond the tolerance
    _server_saw_only_masked_vectors(dumps, sent)


def _server_saw_only_masked_vectors(dumps, sent) -> None:
    """Every reply the server received (secure.RecordingGrid): no array record, and each
    device's weights only as a masked vector, uniform over the protocol's modulus (2^32) and
    uncorrelated with the weights, where the quantized weights alone would all lie below 2^24."""
    from flwr.common import bytes_to_ndarray
    from flwr.common.secure_aggregation.secaggplus_constants import Key

    from speechmask.federated.secure import QUANTIZATION_LEVELS

    received = torch.load(dumps / "server_received.pt", weights_only=False)
    assert received  # array records are kept as lists: the fit replies' is empty
    assert all(r == [] for e in received for r in e["records"].values() if isinstance(r, list))
    masked = [np.concatenate([bytes_to_ndarray(b.tobytes()).ravel() for b in r[
        Key.MASKED_PARAMETERS]]) for e in received for r in e["records"].values()
        if isinstance(r, dict) and Key.MASKED_PARAMETERS in r]
    assert len(masked) == len(sent)
    plain = [torch.cat([v.reshape(-1).double() for v in d["arrays"].values()
                        if v.is_floating_point()]).numpy() for d in sent]
    for vec in masked:
        vec = vec.astype(np.float64)
        assert float(np.mean(vec < QUANTIZATION_LEVELS)) < 0.02  # uniform: 2^24 / 2^32
        assert 0.45 < float(vec.mean()) / 2 ** 32 < 0.55
        for weights in plain:  # the first entry is the protocol's weight factor
            n = min(len(weights), len(vec) - 1)
            assert abs(np.corrcoef(vec[1:n + 1], weights[:n])[0, 1]) < 0.05


@pytest.mark.parametrize("kwargs", [dict(clients=2), dict(clients=3, strategy="fedprox"),
                                    dict(clients=3, mode="forward"), dict(clients=3, model="lm")])
def test_secure_aggregation_refuses_what_secagg_cannot_run(kwargs):
    with pytest.raises(ConfigError):
        FederateConfig(secure_aggregation=True, **kwargs)


def test_sigterm_stops_the_simulation_and_every_process(tiny_corpus, mask_path, slu_path,
                                                         tmp_path):
    """`kill` (SIGTERM) in the middle of a federation: speechmask stops the run and exits
    (128 + 15), and no process of the runtime (the SuperLink, its SuperExec, the simulation,
    Ray) outlives it."""
    import signal
    import time

    before = flower_processes()
    proc = subprocess.Popen(SPEECHMASK + ["federate", "--manifest", str(tiny_corpus), "--mask",
                                          str(mask_path), "--slu", str(slu_path), "--clients",
                                          "2", "--rounds", "500", "--out", str(tmp_path / "fl")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 180
    try:
        while not (tmp_path / "fl" / "state.pt").is_file():  # a round done: Ray is up
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.5)
        assert flower_processes() - before  # the runtime is there
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=90) == 128 + signal.SIGTERM
    finally:
        if proc.poll() is None:
            proc.kill()
    assert flower_processes() - before == set()
