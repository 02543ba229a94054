"""`speechmask mask`: apply a trained mask to audio files or a whole manifest.

Everything is checked before anything is written: the model, the inputs, every output (absent
unless --force, in a writable folder) and, with --manifest, every row's output path (its
`speaker` and `id` must be plain file-name parts inside --out-dir). --out-dir is written as one
set (`outputs.OutputFolder`): an interrupted run leaves the old folder or the new one."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("mask", help="mask audio with a trained mask generator")
    p.add_argument("--model", type=Path, required=True, help="mask checkpoint (train mask)")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("inputs", type=Path, nargs="*", default=[], help="audio file(s)")
    src.add_argument("--manifest", type=Path, help="mask every utterance of a manifest")
    p.add_argument("--out", type=Path, help="masked WAV (one input; whole-segment gates only)")
    p.add_argument("--features", type=Path, help="masked log-mel as .npy (T, n_mels) (one input)")
    p.add_argument("--out-dir", type=Path, help="with --manifest: folder for masked WAVs/.npy "
                                               "and a new manifest.jsonl")
    p.add_argument("--as-features", action="store_true", help="with --out-dir: write .npy")
    p.add_argument("--plot", type=Path, help="PNG: spectrogram with the gates over it")
    p.add_argument("--stats", type=Path, help="JSON: open fraction and per-segment gates")
    p.add_argument("--force", action="store_true", help="overwrite existing outputs")
    p.set_defaults(handler=_mask)


def _mask(args: argparse.Namespace) -> int:
    from .api import load_mask
    from .errors import SpeechmaskError
    from .outputs import check_input_file, check_new_file

    if args.manifest:
        if not args.out_dir:
            raise SpeechmaskError("--manifest needs --out-dir")
        if args.out or args.features or args.plot:
            raise SpeechmaskError("--out, --features and --plot take one input file; with "
                                  "--manifest give --out-dir")
        mask = load_mask(args.model)
        return _mask_manifest(args, mask)
    if not (args.out or args.features or args.plot or args.stats):
        raise SpeechmaskError("nothing to write: give --out, --features, --plot or --stats")
    if len(args.inputs) != 1:
        raise SpeechmaskError("give exactly one input file (or --manifest for many)")
    if args.out_dir or args.as_features:
        raise SpeechmaskError("--out-dir and --as-features go with --manifest")
    mask = load_mask(args.model)
    if args.out and not mask.cfg.sends_audio:
        raise SpeechmaskError(f"{args.model}: {features_only(mask.cfg)}, so it masks features "
                              "only; use --features instead of --out")
    source = args.inputs[0]
    check_input_file(source, "audio file")
    outputs = [p for p in (args.out, args.features, args.plot, args.stats) if p is not None]
    if len(set(map(Path.resolve, outputs))) != len(outputs):
        raise SpeechmaskError("two outputs name the same file")
    for path in outputs:
        check_new_file(path, args.force)
    from .audio import describe_audio, read_audio, write_wav
    from .masking import mask_utterance

    described = describe_audio(source)
    _note_input(source, described)
    result = mask_utterance(mask, read_audio(source))
    if args.out:
        write_wav(args.out, result.masked_audio)
    if args.features:
        _save_npy(args.features, result.masked_features)
    if args.plot:
        from .plotting import plot_mask

        plot_mask(result, mask.cfg, args.plot, title=str(source))
    if args.stats:
        from .audio import atomic_write_text

        stats = {**_stats(result, mask), "input": described}
        atomic_write_text(args.stats, json.dumps(stats, indent=1) + "\n")
    print(f"{source}: {result.gates.shape[0]} segments of {mask.cfg.gate.segment_ms:g} ms, "
          f"{100 * result.open_fraction:.1f} % sent; wrote {', '.join(map(str, outputs))}")
    return 0


def features_only(cfg) -> str:
    """Why a mask sends features only."""
    if cfg.gate.band_groups != 1:
        return f"it gates {cfg.gate.band_groups} groups of mel bands"
    return ("it normalises, warps or levels what it sends (--send-norm-frames, --send-warp, "
            "--send-level), which has no audio counterpart")


def _note_input(source: Path, described: dict) -> None:
    """One line for each way the input is not what the device would record."""
    from .audio import SAMPLE_RATE
    from .outputs import note

    if described["truncated"]:
        note(f"{source}: truncated: its header promises {described['declared_s']:g} s, the file "
             f"holds {described['present_s']:g} s (masking what is there)")
    if described["resampled"]:
        note(f"{source}: resampled from {described['sample_rate']} Hz to {SAMPLE_RATE} Hz")
    if described["downmixed"]:
        note(f"{source}: {described['channels']} channels averaged to mono")


def _stats(result, mask) -> dict:
    return {"open_fraction": result.open_fraction, "segments": int(result.gates.shape[0]),
            "segment_ms": mask.cfg.gate.segment_ms, "band_groups": mask.cfg.gate.band_groups,
            "gates": result.gates.astype(int).tolist(),
            "log_alpha": [[round(float(v), 3) for v in row] for row in result.log_alpha]}


def _save_npy(path: Path, array) -> None:
    import numpy as np

    from .atomic import atomic_output

    with atomic_output(path) as tmp, open(tmp, "wb") as fh:
        np.save(fh, array)


def _mask_manifest(args: argparse.Namespace, mask) -> int:
    from tqdm.auto import tqdm

    from .audio import describe_audio, read_audio, write_wav
    from .corpus.manifest import read_manifest_lines, resolve_audio, write_manifest
    from .errors import SpeechmaskError
    from .masking import mask_utterance
    from .outputs import OutputFolder, check_new_file, confined

    if not args.as_features and not mask.cfg.sends_audio:
        raise SpeechmaskError(f"{args.model}: {features_only(mask.cfg)}; use --as-features")
    lines = read_manifest_lines(args.manifest)
    suffix = ".npy" if args.as_features else ".wav"
    rels = []
    for lineno, row in lines:  # every output path, before anything is written
        where = f"{args.manifest}:{lineno}"
        rels.append(confined(Path("."), (row["speaker"], row["id"] + suffix), where))
    if len({r.as_posix().lower() for r in rels}) != len(rels):
        raise SpeechmaskError(f"{args.manifest}: two rows would write the same file (ids that "
                              "differ only in letter case?)")
    speakers = sorted({row["speaker"] for _, row in lines})
    out = OutputFolder(args.out_dir, args.force,
                       owned=["manifest.jsonl", *speakers, *_earlier_speakers(args.out_dir)])
    out.check()
    if args.stats is not None and Path(args.stats).resolve().is_relative_to(
            Path(args.out_dir).resolve()):
        raise SpeechmaskError(f"{args.stats}: give --stats outside --out-dir")
    check_new_file(args.stats, args.force)
    rows, opened, inputs = [], [], {"truncated": 0, "resampled": 0, "downmixed": 0}
    with out.staged() as staging:
        for (lineno, row), rel in tqdm(list(zip(lines, rels)), desc="masking", unit="file"):
            source = resolve_audio(args.manifest, row)
            described = describe_audio(source)
            for k in inputs:
                inputs[k] += int(described[k])
            if described["truncated"]:
                _note_input(source, {**described, "resampled": False, "downmixed": False})
            result = mask_utterance(mask, read_audio(source))
            if args.as_features:
                _save_npy(staging / rel, result.masked_features)
            else:
                write_wav(staging / rel, result.masked_audio)
            rows.append({**row, "path": rel.as_posix(),
                         "open_fraction": round(result.open_fraction, 4)})
            opened.append(result.open_fraction)
        write_manifest(staging / "manifest.jsonl", rows)
    _note_counts(inputs, len(rows))
    summary = {"utterances": len(rows), "open_fraction": sum(opened) / len(opened),
               "segment_ms": mask.cfg.gate.segment_ms, "model": str(args.model),
               "inputs": inputs}
    if args.stats:
        from .audio import atomic_write_text

        atomic_write_text(args.stats, json.dumps(summary, indent=1) + "\n")
    print(f"wrote {args.out_dir / 'manifest.jsonl'}: {len(rows)} masked utterances, "
          f"{100 * summary['open_fraction']:.1f} % of segments sent")
    return 0


def _earlier_speakers(folder: Path) -> list[str]:
    """Speaker folders an earlier run listed in `folder/manifest.jsonl` (they belong to it)."""
    from .corpus.manifest import read_manifest
    from .errors import SpeechmaskError

    if not (folder / "manifest.jsonl").is_file():
        return []
    try:
        return sorted({Path(r["path"]).parts[0] for r in read_manifest(folder / "manifest.jsonl")
                       if len(Path(r["path"]).parts) == 2})
    except SpeechmaskError:
        return []


def _note_counts(inputs: dict, total: int) -> None:
    from .audio import SAMPLE_RATE
    from .outputs import note

    if inputs["resampled"]:
        note(f"{inputs['resampled']} of {total} files resampled to {SAMPLE_RATE} Hz")
    if inputs["downmixed"]:
        note(f"{inputs['downmixed']} of {total} files averaged to mono")
    if inputs["truncated"]:
        note(f"{inputs['truncated']} of {total} files truncated (each named above)")
