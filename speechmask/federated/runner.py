"""`speechmask federate`: prepare the devices' masked data, run the federation in Flower's
simulation runtime or on its deployment runtime (deployment.py), compare with centralised
training on the same masked data, and report.

Resumable: after every round the server writes the global weights, the round and the history to
`state.pt` (recorder.py); a rerun with `--resume` starts from the last completed round (FedAdam's
moment estimates start again from zero there: Flower keeps them inside the strategy object)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import torch

from speechmask.atomic import atomic_output
from speechmask.errors import ConfigError, ManifestError

from .config import FederateConfig
from .data import ClientData, masked, partition, read_client, write_client
from .recorder import STATE, load_state, resume_point
from .task import fl_task, make_model


def prepare(manifest: Path, mask_path: Path, slu_path: Path | None, out: Path,
            cfg: FederateConfig, progress: bool = True, int8: Path | None = None) -> dict:
    """Masks the manifest's 'train' utterances (split among the clients) and 'test' ones (the
    server's evaluation) with the trained mask, or with the int8 model `speechmask export`
    wrote from it (`int8`, a .tflite: the gates as the device computes them); writes
    out/data/client_K and out/data/test, and the initial model. Returns the settings the apps
    are built from."""
    from speechmask.api import load_mask
    from speechmask.models.slu import SLUConfig
    from speechmask.train.checkpoint import load_checkpoint
    from speechmask.train.data import load_features

    _check_encoder(cfg.model, slu_path)  # before any work
    mask = load_mask(mask_path)
    litert = _litert(Path(int8), mask) if int8 is not None else None
    fs = load_features(manifest, mask.cfg.frontend, progress=progress)
    train, test = fs.select("split", "train"), fs.select("split", "test")
    if slu_path is not None:
        blob = load_checkpoint(slu_path, kind="slu")
        slu_cfg = SLUConfig.from_dict(blob["config"])
        state = blob["model"]
    else:
        intents = tuple(sorted({fs.rows[i]["intent"] for i in train + test}))
        slu_cfg = SLUConfig(intents=intents, frontend=mask.cfg.frontend)
        torch.manual_seed(cfg.seed)
        state = make_model(slu_cfg.to_dict()).state_dict()
    label = {name: k for k, name in enumerate(slu_cfg.intents)}
    unknown = sorted({fs.rows[i]["intent"] for i in train + test} - set(label))
    if unknown:
        raise ManifestError(f"{manifest}: intents unknown to the cloud model: {unknown[:5]}")
    parts = partition(fs.rows, train, cfg)
    data_dir = out / "data"

    def client(idx: list[int]) -> ClientData:
        return ClientData(masked(mask, [fs.features[i] for i in idx], litert, progress),
                          np.array([label[fs.rows[i]["intent"]] for i in idx], np.int64),
                          [fs.rows[i]["speaker"] for i in idx])

    for k, idx in enumerate(parts):
        write_client(data_dir / f"client_{k}", client(idx))
    write_client(data_dir / "test", client(test))
    settings = {"model": cfg.model, "intents": list(slu_cfg.intents),
                "slu_config": slu_cfg.to_dict(), "int8": str(int8) if int8 else None}
    if cfg.model == "lm":
        from .lm import text_accuracy

        # the encoder's own copy: the run resumes with the encoder it started with
        with atomic_output(out / "speech_encoder.pt") as tmp:
            shutil.copyfile(slu_path, tmp)
        settings["speech_encoder"] = str(out / "speech_encoder.pt")
        settings["lm_dir"] = str(_language_model(cfg, out, _transcribed(fs.rows, train),
                                                 progress))
        task = fl_task(settings)
        rows = _transcribed(fs.rows, test)  # the LM before LoRA moves (its B starts at zero)
        settings["lm_text_accuracy"] = text_accuracy(
            task.model.lm, task.tok, [r["transcript"] for r in rows], [r["intent"] for r in rows])
        state = task.arrays()
        # the whole model a device would otherwise send: the LM and the projector (the frozen
        # encoder would not travel either way)
        settings["full_model_bytes"] = int(
            sum(p.numel() * p.element_size() for n, p in task.model.named_parameters()
                if not n.startswith("encoder.")))
    else:
        settings["full_model_bytes"] = int(sum(v.numel() * v.element_size()
                                               for v in state.values()))
    with atomic_output(out / "initial.pt") as tmp:
        torch.save({k: v.detach().clone() for k, v in state.items()}, tmp)
    return {**settings, "clients": cfg.clients, "strategy": cfg.strategy,
            "local_steps": cfg.local_steps,
            "mode": cfg.mode, "perturbations": cfg.perturbations, "forward_lr": cfg.forward_lr,
            "batch_size": cfg.batch_size, "lr": cfg.lr, "proximal_mu": cfg.proximal_mu,
            "server_lr": cfg.server_lr, "seed": cfg.seed,
            "secure_aggregation": cfg.secure_aggregation, "data_dir": str(data_dir),
            "partition_sizes": [len(p) for p in parts],
            "partition_speakers": [len({fs.rows[i]["speaker"] for i in p}) for p in parts]}


def _check_encoder(model: str, slu_path: Path | None) -> None:
    if model == "lm" and slu_path is None:
        raise ConfigError("--model lm needs --slu: the cloud model whose encoder reads the "
                          "masked features for the LM")


def _litert(path: Path, mask):
    """LiteRT on the .tflite, refused in one line unless it loads for this mask."""
    from speechmask.device.contract import ContractError
    from speechmask.device.int8 import LiteRT

    try:
        model = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the int8 model ({exc.strerror})") from None
    try:
        return LiteRT(model, mask.cfg)
    except ContractError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    except (ValueError, RuntimeError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:100]
        raise ConfigError(f"{path}: not a TFLite model LiteRT loads ({first})") from None


def _transcribed(rows: list[dict], idx: list[int]) -> list[dict]:
    """The rows of `idx` that have a transcript (real corpora's may lack one)."""
    return [rows[i] for i in idx if rows[i].get("transcript")]


def _language_model(cfg: FederateConfig, out: Path, rows: list[dict],
                    progress: bool = False) -> Path:
    """The user's LM folder (checked), or a small GPT-2 pre-trained here on the training
    transcripts followed by their intents, saved to out/lm."""
    from .lm import PROMPT, load_lm, pretrain, small_lm, word_tokenizer

    if cfg.lm_dir is not None:
        load_lm(Path(cfg.lm_dir))  # one line if it is missing or not a causal LM
        return Path(cfg.lm_dir)
    texts = [f"{r['transcript']}{PROMPT} {r['intent']}" for r in rows]
    tok = word_tokenizer(texts, sorted({r["intent"] for r in rows}))
    torch.manual_seed(cfg.seed)
    lm = small_lm(tok)
    pretrain(lm, tok, texts, cfg.lm_pretrain_steps, seed=cfg.seed, progress=progress)
    folder = out / "lm"
    lm.save_pretrained(folder)
    tok.save(folder)
    return folder


def run_federation(settings: dict, out: Path, rounds: int, *, resume: bool = False,
                   verbose: bool = False, deployment: str | None = None) -> dict:
    """Runs the remaining rounds, in Flower's simulation runtime or, with `deployment` (a flwr
    connection name, or "local[:PORT]"), on its deployment runtime; returns the history."""
    start_round, history, initial = resume_point(out, resume)
    if start_round >= rounds:
        return history
    run_settings = dict(settings, initial_state=str(initial), rounds_left=rounds - start_round,
                        round_offset=start_round)
    from .deployment import run_on_flower

    run_on_flower(run_settings, out, deployment, verbose=verbose)
    return load_state(out / STATE)["history"]


def centralised(settings: dict, cfg: FederateConfig) -> float:
    """The same masked data pooled on one machine: as many optimiser steps as one client makes
    in all rounds, on batches as large as all clients' together. Test accuracy."""
    data_dir = Path(settings["data_dir"])
    parts = [read_client(data_dir / f"client_{k}") for k in range(cfg.clients)]
    pooled = ClientData([f for p in parts for f in p.features],
                        np.concatenate([p.labels for p in parts]),
                        [s for p in parts for s in p.speakers])
    initial = torch.load(data_dir.parent / "initial.pt", weights_only=True)
    task = fl_task(dict(settings, local_steps=cfg.rounds * cfg.local_steps,
                        batch_size=cfg.batch_size * cfg.clients), initial)
    task.train(pooled, seed=cfg.seed, proximal_mu=0.0)
    return task.accuracy(read_client(data_dir / "test"))


def check_inputs(manifest: Path, mask_path: Path, slu_path: Path | None,
                 model: str = "slu") -> None:
    from speechmask.corpus.manifest import read_manifest
    from speechmask.train.checkpoint import load_checkpoint

    _check_encoder(model, slu_path)
    load_checkpoint(mask_path, kind="mask")  # one line for a missing or corrupt mask
    if slu_path is not None:
        load_checkpoint(slu_path, kind="slu")
    rows = read_manifest(manifest)
    if not any(r.get("split") == "train" for r in rows):
        raise ManifestError(f"{manifest}: no 'train' utterances to federate")
    if not any(r.get("split") == "test" for r in rows):
        raise ManifestError(f"{manifest}: no 'test' utterances to evaluate on")
