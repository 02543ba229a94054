"""Federated adaptation on masked features (issue 18): the cloud model adapted by 4 devices in
Flower's simulation runtime, each holding only what its mask sent for its own speakers, against
centralised training on the same masked data; speaker-partitioned and non-IID (Dirichlet 0.5
over intents) clients; forward-gradient clients (no backward pass) against backprop, in accuracy
and in the memory one client's local training takes (measured in a fresh process each: the
resident memory sampled every 2 ms during training, its peak minus the resident memory before); traffic per round, and the
wall time of a 4-client, 3-round simulation on this machine.

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


def one(name: str, args, cfg: FederateConfig, central: float | None = None,
        compare: bool = True, deployment: str | None = None) -> dict:
    """One federation (in simulation, or on `deployment`). The centralised comparison trains on
    the pooled training data, the same whatever the partition: computed once and passed on
    (`central`); `compare=False` skips it."""
    out = args.out / name
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    settings = prepare(args.manifest, args.mask, args.slu, out, cfg, progress=False)
    settings["config"] = cfg.to_dict()
    import json

    (out / "settings.json").write_text(json.dumps(settings))
    started = time.monotonic()
    history = run_federation(settings, out, cfg.rounds, deployment=deployment)
    seconds = time.monotonic() - started
    if central is None and compare:
        central = centralised(settings, cfg)
    rounds = sorted(int(r) for r in history["accuracy"])
    acc = [history["accuracy"][str(r)] for r in rounds]
    reached = next((r for r, a in zip(rounds, acc)
                    if central and r > 0 and a >= TARGET_SHARE * central), None)
    return {"config": cfg.to_dict(), "partition_sizes": settings["partition_sizes"],
            "accuracy": acc, "centralised_accuracy": central,
            "final_over_centralised": acc[-1] / central if central else None,
            "best_over_centralised": max(acc[1:]) / central if central else None,
            "first_round_at_95pct": reached, "seconds": seconds,
            "bytes_per_round_each_way": history["bytes_up"].get("1"),
            "client_peak_memory_bytes": max(history["client_peak_memory_bytes"].values(),
                                            default=None)}


MEMORY_PROBE = """
import json, sys, threading, time
from pathlib import Path
import torch
torch.set_num_threads(1)
from speechmask.federated.data import read_client
from speechmask.federated.task import fl_task
settings = json.loads(Path(sys.argv[1]).read_text())
data = read_client(Path(settings["data_dir"]) / "client_0")
task = fl_task(dict(settings, mode=sys.argv[2]),
               torch.load(Path(sys.argv[1]).parent / "initial.pt", weights_only=True))
def rss():
    return int(open("/proc/self/statm").read().split()[1]) * 4096
peak, done = [0], threading.Event()
def watch():  # the process's peak must be taken during training only: sample it
    while not done.is_set():
        peak[0] = max(peak[0], rss())
        time.sleep(0.002)
before = rss()
watcher = threading.Thread(target=watch)
watcher.start()
task.train(data, seed=0, proximal_mu=0.0)  # the settings' model, in this mode
done.set()
watcher.join()
print(max(peak[0], rss()) - before)
"""


def training_memory(out: Path, mode: str, repeats: int = 3) -> int:
    """Median over fresh processes of the peak resident memory one round of local training adds
    (mode backprop or forward), on client 0's data."""
    import statistics
    import subprocess

    settings = out / "settings.json"
    got = [int(subprocess.run([sys.executable, "-c", MEMORY_PROBE, str(settings), mode],
                              capture_output=True, text=True, check=True).stdout.split()[-1])
           for _ in range(repeats)]
    return int(statistics.median(got))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--manifest", type=Path, default=Path("build/bench_mask/corpus/manifest.jsonl"))
    ap.add_argument("--mask", type=Path, default=Path("build/bench_mask/mask_40ms.pt"))
    ap.add_argument("--slu", type=Path, default=Path("build/bench_mask/slu.pt"))
    ap.add_argument("--out", type=Path, default=Path("build/bench_federated"))
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--lm", action="store_true",
                    help="the speech-LM mode instead (record bench_federated_lm): traffic of "
                         "LoRA + projector against the whole model, accuracy beside the SLU's")
    ap.add_argument("--lm-slu", type=Path, default=Path("build/bench_mask/slu_masked_40ms.pt"),
                    help="--lm: the cloud model whose encoder the LM reads (fine-tuned on "
                         "masked features)")
    ap.add_argument("--runtimes", action="store_true",
                    help="the runtimes instead (record bench_federated_runtimes): 4 clients x "
                         "3 rounds in simulation and on the deployment runtime (a SuperLink and "
                         "4 SuperNodes on 127.0.0.1), each with and without SecAgg+")
    args = ap.parse_args()
    if args.lm:
        return main_lm(args)
    if args.runtimes:
        return main_runtimes(args)
    base = FederateConfig(clients=4, rounds=args.rounds)
    speakers = one("speakers", args, base)
    central = speakers["centralised_accuracy"]
    runs = {"speakers": speakers,
            "dirichlet_0.5": one("dirichlet", args, FederateConfig(clients=4, rounds=args.rounds,
                                                                   dirichlet_alpha=0.5), central),
            "forward": one("forward", args, FederateConfig(clients=4, rounds=args.rounds,
                                                           mode="forward"), central),
            "timing_4x3": one("timing", args, FederateConfig(clients=4, rounds=3),
                              compare=False)}
    memory = {mode: training_memory(args.out / "speakers", mode)
              for mode in ("backprop", "forward")}
    rec = {"runs": runs, "target_share": TARGET_SHARE, "target_seconds_4x3": TARGET_SECONDS,
           "local_training_memory_bytes": memory,
           "method": "Flower 1.42 simulation runtime (Ray; `flwr run` on a simulation "
                     "SuperLink), FedAvg, 4 clients, server-side "
                     "accuracy on the masked test split after each round; centralised: the "
                     "same masked training data pooled, as many steps as one client makes in "
                     "all rounds with a batch as large as all clients' together"}
    s, d, t, f = runs["speakers"], runs["dirichlet_0.5"], runs["timing_4x3"], runs["forward"]
    table = [
        ("speaker-partitioned: final / centralised",
         f"{100 * s['accuracy'][-1]:.1f} % / {100 * s['centralised_accuracy']:.1f} % = "
         f"{s['final_over_centralised']:.3f} (target >= {TARGET_SHARE}); 95 % first at round "
         f"{s['first_round_at_95pct']}"),
        ("non-IID (Dirichlet 0.5): final / centralised",
         f"{100 * d['accuracy'][-1]:.1f} % / {100 * d['centralised_accuracy']:.1f} % = "
         f"{d['final_over_centralised']:.3f}; 95 % first at round {d['first_round_at_95pct']}"),
        ("forward-gradient clients: final / centralised",
         f"{100 * f['accuracy'][-1]:.1f} % (from {100 * f['accuracy'][0]:.1f} %) / "
         f"{100 * f['centralised_accuracy']:.1f} %"),
        ("memory of one round of local training",
         f"backprop {memory['backprop'] / 2**20:.1f} MiB, forward {memory['forward'] / 2**20:.1f}"
         f" MiB (median of 3 fresh processes)"),
        ("traffic per round, each way", f"{s['bytes_per_round_each_way']:,} B (4 clients)"),
        ("client peak memory (RSS)", f"{s['client_peak_memory_bytes'] / 2**20:.0f} MiB"),
        ("4 clients x 3 rounds, wall time", f"{t['seconds']:.0f} s (target <= {TARGET_SECONDS:.0f} s)"),
    ]
    report("bench_federated", rec, table)


def main_lm(args) -> None:
    """The speech LM: its encoder is the cloud model that reads what devices send (`train
    finetune`'s, `--lm-slu`), reported beside the LM."""
    import json

    from speechmask.federated.data import read_client
    from speechmask.federated.task import accuracy, make_model
    from speechmask.train.checkpoint import load_checkpoint

    cfg = FederateConfig(clients=4, rounds=args.rounds, model="lm")
    lm_args = argparse.Namespace(**{**vars(args), "slu": args.lm_slu})
    run = one("lm", lm_args, cfg)
    forward = one("lm_forward", lm_args, FederateConfig(clients=4, rounds=args.rounds,
                                                        model="lm", mode="forward"),
                  run["centralised_accuracy"])
    memory = {mode: training_memory(args.out / "lm", mode) for mode in ("backprop", "forward")}
    settings = json.loads((args.out / "lm" / "settings.json").read_text())
    blob = load_checkpoint(args.lm_slu, kind="slu")
    encoder_acc = accuracy(make_model(blob["config"], blob["model"]).eval(),
                           read_client(Path(settings["data_dir"]) / "test"))
    ratio = settings["full_model_bytes"] / (run["bytes_per_round_each_way"] / cfg.clients)
    rec = {"run": run, "forward": forward, "local_training_memory_bytes": memory,
           "full_model_bytes": settings["full_model_bytes"],
           "bytes_per_client_per_round": run["bytes_per_round_each_way"] / cfg.clients,
           "traffic_ratio": ratio, "target_traffic_ratio": 50.0,
           "lm_text_accuracy": settings["lm_text_accuracy"], "encoder_slu": str(args.lm_slu),
           "encoder_slu_accuracy": encoder_acc,
           "method": "a GPT-2 (6 layers, width 256, word-level tokenizer) initialised here and "
                     f"pre-trained for {cfg.lm_pretrain_steps} steps on the training "
                     "transcripts followed by their intents; the frozen encoder of the cloud "
                     f"model {args.lm_slu} (its attention-pooled vector through a 64-wide "
                     "projector MLP: one prefix position); LoRA rank 4 where peft puts it "
                     "(c_attn); 4 speaker-partitioned clients, FedAvg of LoRA + projector, "
                     "accuracy = the generated intent name equal to the true one, on the "
                     "masked test split; the whole model = the LM and the projector"}
    table = [("LoRA + projector per client per round",
              f"{rec['bytes_per_client_per_round']:,.0f} B; whole model "
              f"{settings['full_model_bytes']:,} B: {ratio:.0f}x (target >= 50x)"),
             ("intent accuracy of the adapted LM",
              f"{100 * run['accuracy'][-1]:.1f} % after {cfg.rounds} rounds (from "
              f"{100 * run['accuracy'][0]:.1f} %); centralised "
              f"{100 * run['centralised_accuracy']:.1f} %"),
             ("forward-gradient clients (LoRA + projector, no backward pass)",
              f"{100 * forward['accuracy'][-1]:.1f} % after {cfg.rounds} rounds (from "
              f"{100 * forward['accuracy'][0]:.1f} %)"),
             ("memory of one round of local training",
              f"backprop {memory['backprop'] / 2**20:.1f} MiB, forward "
              f"{memory['forward'] / 2**20:.1f} MiB (median of 3 fresh processes)"),
             ("the cloud model whose encoder it reads", f"{100 * encoder_acc:.1f} %"),
             ("the LM alone, reading the test transcripts",
              f"{100 * settings['lm_text_accuracy']:.1f} %")]
    report("bench_federated", rec, table, results_name="bench_federated_lm")


RUNTIMES = (("simulation", None, False), ("simulation_secagg", None, True),
            ("deployment", "local", False), ("deployment_secagg", "local", True))


def main_runtimes(args) -> None:
    runs = {name: one(name, args, FederateConfig(clients=4, rounds=3, secure_aggregation=secure),
                      compare=False, deployment=deployment)
            for name, deployment, secure in RUNTIMES}
    rec = {"runs": runs,
           "method": "4 speaker-partitioned clients, 3 rounds of FedAvg from the clean cloud "
                     "model, server-side accuracy on the masked test split; simulation: `flwr run` "
                     "on a simulation SuperLink the run starts and stops (Flower 1.42's "
                     "simulation runtime, Ray); deployment: `--deployment local`, a "
                     "flower-superlink and 4 flower-supernodes on 127.0.0.1 started and stopped "
                     "by the run (their start included in the wall time); SecAgg+: Flower's "
                     "SecAggPlusWorkflow (weights quantized to 2^24 levels); traffic counts the "
                     "model's float32 bytes, not the protocol's"}
    table = [(name.replace("_secagg", " + SecAgg+"),
              f"{100 * r['accuracy'][-1]:.1f} % after 3 rounds (from {100 * r['accuracy'][0]:.1f}"
              f" %), {r['seconds']:.0f} s") for name, r in runs.items()]
    report("bench_federated", rec, table, results_name="bench_federated_runtimes")


if __name__ == "__main__":
    main()
