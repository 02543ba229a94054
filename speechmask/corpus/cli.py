"""`speechmask data ...`: synth, manifest, stats, plot. Handlers import their modules lazily."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

FORMATS = ("fsc", "slurp", "librispeech", "voxceleb", "vctk", "speechcommands")


def register(sub: argparse._SubParsersAction) -> None:
    from ..options import add_options
    from .config import SynthConfig
    from .heldout import HeldoutConfig

    data = sub.add_parser("data", help="make, import, inspect and plot speech corpora")
    dsub = data.add_subparsers(dest="data_command", metavar="SUBCOMMAND", required=True)

    p = dsub.add_parser("synth", help="generate the built-in multi-speaker SLU corpus (TTS)")
    p.add_argument("--out", type=Path, required=True, help="corpus folder to create or resume")
    add_options(p, SynthConfig)
    p.add_argument("--engines", default=None,
                   help="comma-separated TTS engines among espeak-ng,flite "
                        "(default: every one installed)")
    p.add_argument("--jobs", type=int, default=None, help="worker processes (default: all cores)")
    p.add_argument("--force", action="store_true", help="regenerate over a different corpus")
    p.set_defaults(handler=_synth, parser=p)

    p = dsub.add_parser("manifest", help="build a manifest from a real corpus on disk")
    p.add_argument("--format", required=True, choices=FORMATS)
    p.add_argument("--root", type=Path, required=True, help="the corpus's own top folder")
    p.add_argument("--out", type=Path, required=True, help="manifest.jsonl to write")
    p.add_argument("--jobs", type=int, default=None, help="worker processes (default: all cores)")
    p.add_argument("--seed", type=int, default=0, help="seed of the split assignment")
    p.add_argument("--force", action="store_true", help="overwrite an existing manifest")
    p.set_defaults(handler=_manifest)

    p = dsub.add_parser("heldout", help="a split whose test part has unseen speakers and unseen "
                                        "sentence templates",
                        description="Write a manifest whose split puts the speaker_split test "
                                    "speakers on held-out sentence templates in 'test' and the "
                                    "other speakers on the remaining templates in 'train'/'dev', "
                                    "leaving out what belongs to neither; every command runs on "
                                    "it as on any manifest.")
    p.add_argument("--manifest", type=Path, required=True, help="a manifest with 'template'")
    p.add_argument("--out", type=Path, required=True, help="manifest.jsonl to write")
    add_options(p, HeldoutConfig)
    p.add_argument("--force", action="store_true", help="overwrite an existing --out")
    p.set_defaults(handler=_heldout, parser=p)

    p = dsub.add_parser("stats", help="print corpus statistics (and front-end parity)")
    p.add_argument("--manifest", type=Path, required=True)
    p.add_argument("--frontend", type=int, default=0, metavar="N",
                   help="also compare the integer and float front-ends on N utterances")
    p.add_argument("--json", type=Path, default=None, help="also write the statistics as JSON")
    p.add_argument("--force", action="store_true", help="overwrite an existing --json file")
    p.set_defaults(handler=_stats)

    p = dsub.add_parser("plot", help="draw the log-mel of utterances as a PNG")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--manifest", type=Path, help="plot utterances of this manifest")
    src.add_argument("--audio", type=Path, nargs="+", help="plot these audio files")
    p.add_argument("--id", nargs="+", default=None, help="utterance ids (with --manifest)")
    p.add_argument("--per-speaker", action="store_true",
                   help="one utterance per speaker (with --manifest; default when no --id)")
    p.add_argument("--max", type=int, default=36, help="at most this many panels (default 36)")
    p.add_argument("--integer", action="store_true",
                   help="plot the firmware's integer front-end instead of the float one")
    p.add_argument("--out", type=Path, required=True, help="PNG to write")
    p.add_argument("--force", action="store_true", help="overwrite an existing PNG")
    p.set_defaults(handler=_plot)


def _synth(args: argparse.Namespace) -> int:
    from ..options import from_args
    from .config import SynthConfig
    from .synth import synthesize
    from .voices import resolve_engines

    cfg = from_args(SynthConfig, args, args.parser, engines=resolve_engines(args.engines))
    summary = synthesize(args.out, cfg, jobs=args.jobs, force=args.force)
    print(f"wrote {summary['manifest']}: {summary['utterances']} utterances from "
          f"{summary['speakers']} speakers ({summary['rendered']} rendered, "
          f"{summary['skipped']} already there)")
    return 0


def _heldout(args: argparse.Namespace) -> int:
    from ..options import from_args
    from ..outputs import check_new_file
    from .heldout import HeldoutConfig, heldout_split
    from .manifest import read_manifest, resolve_audio, write_manifest

    cfg = from_args(HeldoutConfig, args, args.parser)
    check_new_file(args.out, args.force)
    rows = read_manifest(args.manifest)
    out = heldout_split(rows, cfg, str(args.manifest))
    for r in out:  # paths stay valid wherever the new manifest is written
        r["path"] = str(resolve_audio(args.manifest, r))
    write_manifest(args.out, out, force=args.force)
    counts = {p: sum(r["split"] == p for r in out) for p in ("train", "dev", "test")}
    print(f"wrote {args.out}: {len(out)} of {len(rows)} utterances, " +
          ", ".join(f"{p} {n}" for p, n in counts.items()) +
          f"; test on {len({r['template'] for r in out if r['split'] == 'test'})} unseen "
          "templates")
    return 0


def _manifest(args: argparse.Namespace) -> int:
    from ..parallel import default_jobs
    from .loaders.common import build_manifest

    rows, bad = build_manifest(args.format, args.root, args.out, jobs=args.jobs or default_jobs(),
                               seed=args.seed, force=args.force)
    print(f"wrote {args.out}: {len(rows)} utterances, "
          f"{len({r['speaker'] for r in rows})} speakers")
    if bad:
        print(f"skipped {len(bad)} bad file(s):")
        for path, reason in bad:
            print(f"  {path}: {reason}")
    return 0


def _stats(args: argparse.Namespace) -> int:
    from ..audio import atomic_write_text
    from ..outputs import check_new_file
    from .manifest import read_manifest
    from .stats import corpus_stats, format_stats, frontend_parity

    check_new_file(args.json, args.force)
    rows = read_manifest(args.manifest)
    stats = corpus_stats(rows)
    if args.frontend:
        stats["frontend"] = frontend_parity(args.manifest, rows, args.frontend)
    print(format_stats(stats))
    if args.json:
        atomic_write_text(args.json, json.dumps(stats, indent=2) + "\n")
    return 0


def _plot(args: argparse.Namespace) -> int:
    from ..errors import SpeechmaskError
    from ..outputs import check_new_file
    from ..plotting import plot_utterances

    check_new_file(args.out, args.force)
    if args.audio:
        items = [(str(p), p, None) for p in args.audio]
    else:
        from .manifest import read_manifest, resolve_audio

        rows = read_manifest(args.manifest)
        if args.id:
            by_id = {r["id"]: r for r in rows}
            missing = [i for i in args.id if i not in by_id]
            if missing:
                raise SpeechmaskError(f"{args.manifest}: no utterance with id {missing[0]!r}")
            chosen = [by_id[i] for i in args.id]
        else:
            first: dict[str, dict] = {}
            for r in rows:
                first.setdefault(r["speaker"], r)
            chosen = list(first.values())
        items = [(f"{r['speaker']} ({r['gender'] or '?'}) {r['intent'] or ''}\n"
                  f"{(r['transcript'] or '')[:48]}", resolve_audio(args.manifest, r), r)
                 for r in chosen[: args.max]]
    plot_utterances(items, args.out, integer=args.integer)
    print(f"wrote {args.out} ({len(items)} panel(s))")
    return 0
