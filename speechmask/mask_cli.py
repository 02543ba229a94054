"""`speechmask mask`: apply a trained mask to audio files or a whole manifest."""

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


def _check_new(paths: list[Path | None], force: bool) -> None:
    from .errors import SpeechmaskError

    for path in paths:
        if path is not None and path.exists() and not force:
            raise SpeechmaskError(f"{path}: already exists (use --force to overwrite)")


def _mask(args: argparse.Namespace) -> int:
    from .api import load_mask
    from .errors import SpeechmaskError

    mask = load_mask(args.model)
    if args.manifest:
        if not args.out_dir:
            raise SpeechmaskError("--manifest needs --out-dir")
        return _mask_manifest(args, mask)
    if not (args.out or args.features or args.plot or args.stats):
        raise SpeechmaskError("nothing to write: give --out, --features, --plot or --stats")
    if len(args.inputs) != 1:
        raise SpeechmaskError("give exactly one input file (or --manifest for many)")
    if args.out and mask.cfg.gate.band_groups != 1:
        raise SpeechmaskError(f"{args.model}: gates {mask.cfg.gate.band_groups} band groups, so "
                              "it masks features only; use --features instead of --out")
    _check_new([args.out, args.features, args.plot, args.stats], args.force)
    from .audio import read_audio, write_wav
    from .masking import mask_utterance

    result = mask_utterance(mask, read_audio(args.inputs[0]))
    if args.out:
        write_wav(args.out, result.masked_audio)
    if args.features:
        _save_npy(args.features, result.masked_features)
    if args.plot:
        from .plotting import plot_mask

        plot_mask(result, mask.cfg, args.plot, title=str(args.inputs[0]))
    if args.stats:
        from .audio import atomic_write_text

        atomic_write_text(args.stats, json.dumps(_stats(result, mask), indent=1) + "\n")
    written = [str(p) for p in (args.out, args.features, args.plot, args.stats) if p]
    print(f"{args.inputs[0]}: {result.gates.shape[0]} segments of {mask.cfg.gate.segment_ms:g} ms, "
          f"{100 * result.open_fraction:.1f} % sent; wrote {', '.join(written)}")
    return 0


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

    from .audio import read_audio, write_wav
    from .corpus.manifest import read_manifest, resolve_audio, write_manifest
    from .errors import SpeechmaskError
    from .masking import mask_utterance

    if not args.as_features and mask.cfg.gate.band_groups != 1:
        raise SpeechmaskError(f"{args.model}: gates mel bands; use --as-features")
    out_manifest = args.out_dir / "manifest.jsonl"
    _check_new([out_manifest, args.stats], args.force)
    rows, opened = read_manifest(args.manifest), []
    for row in tqdm(rows, desc="masking", unit="file"):
        result = mask_utterance(mask, read_audio(resolve_audio(args.manifest, row)))
        rel = Path(row["speaker"]) / (row["id"] + (".npy" if args.as_features else ".wav"))
        if args.as_features:
            _save_npy(args.out_dir / rel, result.masked_features)
        else:
            write_wav(args.out_dir / rel, result.masked_audio)
        row.update(path=rel.as_posix(), open_fraction=round(result.open_fraction, 4))
        opened.append(result.open_fraction)
    write_manifest(out_manifest, rows, force=True)
    summary = {"utterances": len(rows), "open_fraction": sum(opened) / len(opened),
               "segment_ms": mask.cfg.gate.segment_ms, "model": str(args.model)}
    if args.stats:
        from .audio import atomic_write_text

        atomic_write_text(args.stats, json.dumps(summary, indent=1) + "\n")
    print(f"wrote {out_manifest}: {len(rows)} masked utterances, "
          f"{100 * summary['open_fraction']:.1f} % of segments sent")
    return 0
