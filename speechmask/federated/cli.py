"""`speechmask federate`: registered as a plugin of the `speechmask` command (entry point group
`speechmask.commands`); options and defaults come from `FederateConfig`."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from speechmask.options import add_options, from_args

from .config import FederateConfig


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("federate", help="adapt the cloud model by federated learning on masked "
                                        "features (Flower)",
                       description="Each client is a device holding only the masked features "
                                   "its mask sent for its own speakers' 'train' utterances, and "
                                   "their intents. The cloud SLU model (--slu, or a new one), or "
                                   "with --model lm a speech LM (LoRA adapters and a projector), "
                                   "is adapted by federated learning in Flower's simulation "
                                   "runtime or, with --deployment, on its deployment runtime "
                                   "(SuperLink and SuperNodes); the server evaluates on the masked 'test' "
                                   "utterances after each round. Writes report.json, "
                                   "report.md, rounds.png and state.pt (resumable) into --out.")
    p.add_argument("--manifest", type=Path, required=True)
    p.add_argument("--mask", type=Path, required=True, help="trained mask generator")
    p.add_argument("--int8", type=Path, metavar="MASK_TFLITE",
                   help="the devices send what the int8 model `speechmask export` wrote from "
                        "--mask computes (its own closed loop on LiteRT), not the float mask")
    p.add_argument("--slu", type=Path, help="cloud model to start from (default: a new one); "
                                            "with --model lm, required: the cloud model whose "
                                            "frozen encoder the LM reads through")
    p.add_argument("--out", type=Path, required=True, help="output folder")
    add_options(p, FederateConfig)
    p.add_argument("--deployment", metavar="CONN",
                   help="run on Flower's deployment runtime instead of its simulation: CONN is "
                        "a flwr connection (in $FLWR_HOME/config.toml) whose SuperLink and "
                        "SuperNodes are running (README: 'Federated learning across machines'); "
                        "'local' or 'local:PORT' starts a SuperLink and one SuperNode per "
                        "client on 127.0.0.1 for the run and stops them after")
    p.add_argument("--prepare-only", action="store_true",
                   help="write the devices' masked data (--out/data/client_K, and the server's "
                        "test set, data/test) and the initial model, and stop: for devices on "
                        "machines of their own (--deployment)")
    p.add_argument("--resume", action="store_true", help="continue from the last completed "
                                                         "round in --out")
    p.add_argument("--force", action="store_true", help="replace an earlier run in --out")
    p.add_argument("--verbose", action="store_true", help="Flower's and Ray's own logs")
    p.set_defaults(handler=_federate, parser=p)


def _federate(args: argparse.Namespace) -> int:
    from .report import write_report
    from .runner import STATE, centralised, check_inputs, prepare, run_federation

    from speechmask.errors import SpeechmaskError
    from speechmask.outputs import OutputFolder

    cfg = from_args(FederateConfig, args, args.parser)
    check_inputs(args.manifest, args.mask, args.slu, cfg.model)
    if args.deployment is not None:
        from .deployment import check_deployment

        check_deployment(args.deployment)
    if cfg.model == "lm" and cfg.lm_dir is not None:
        from .lm import load_lm

        load_lm(Path(cfg.lm_dir))  # one line for a missing folder or one that is not a causal LM
    out = args.out
    settings_path = out / "settings.json"
    if args.resume and settings_path.is_file():  # after a run, or after --prepare-only
        settings = json.loads(settings_path.read_text())

        def same(c: dict) -> dict:  # more rounds is what resuming is for
            return {k: v for k, v in c.items() if k != "rounds"}

        if same(settings.get("config", {})) != same(cfg.to_dict()):
            raise SpeechmaskError(f"{out}: --resume with other settings than the run there "
                                  "(give the same flags, or --force to start again)")
        if settings.get("model") == "lm" and "speech_encoder" not in settings:
            raise SpeechmaskError(f"{out}: an LM run prepared by an earlier version, which "
                                  "cannot resume (--force to start again)")
        settings["config"] = cfg.to_dict()  # the rounds asked for now, for the report
        settings_path.write_text(json.dumps(settings, indent=1))
    else:
        folder = OutputFolder(out, args.force, owned=["data", "initial.pt", "resume_weights.pt",
                                                      STATE, "settings.json", "report.json",
                                                      "report.md", "rounds.png", "lm",
                                                      "speech_encoder.pt", "messages.jsonl",
                                                      "app", "deploy", "simulation"])
        folder.check()
        out.mkdir(parents=True, exist_ok=True)
        settings = prepare(args.manifest, args.mask, args.slu, out, cfg, int8=args.int8)
        settings["config"] = cfg.to_dict()
        settings_path.write_text(json.dumps(settings, indent=1))
        if args.prepare_only:
            print(f"wrote {out}/data (client_0 .. client_{cfg.clients - 1}, test), initial.pt")
            return 0
    history = run_federation(settings, out, cfg.rounds, resume=args.resume,
                             verbose=args.verbose, deployment=args.deployment)
    central = centralised(settings, cfg)
    report = write_report(out, settings, history, central)
    print(report["table"])
    print(f"wrote {out}/report.json, report.md, rounds.png")
    return 0
