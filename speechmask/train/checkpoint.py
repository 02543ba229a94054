"""Self-describing checkpoints: configs, model, optimizer, step, RNG; atomic writes; safe loading.

Loading uses `torch.load(weights_only=True)`: tensors and plain containers only, never arbitrary
pickled objects. Every file carries a format tag, a version and a kind ('slu' or 'mask').
"""

from __future__ import annotations

import os
import pickle
import zipfile
from pathlib import Path

import torch

from .. import __version__
from ..atomic import atomic_output
from ..errors import SpeechmaskError

FORMAT = "speechmask-checkpoint"
VERSIONS = {"slu": 1, "mask": 2}  # mask 2: gate feedback, tanh-bounded logits


class CheckpointError(SpeechmaskError):
    """A checkpoint that is missing, corrupt, of another kind or of an unsupported version."""


def save_checkpoint(path: str | os.PathLike, payload: dict, *, kind: str) -> Path:
    """Write `payload` (+ format, version, kind) atomically: temp file in the folder, then rename."""
    blob = {"format": FORMAT, "version": VERSIONS[kind], "kind": kind,
            "speechmask_version": __version__, **payload}
    with atomic_output(path) as tmp:
        torch.save(blob, tmp)
    return Path(path)


def load_checkpoint(path: str | os.PathLike, kind: str | None = None) -> dict:
    """Load and check a checkpoint; CheckpointError names the file and the problem."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint")
    if path.stat().st_size == 0:
        raise CheckpointError(f"{path}: empty file (0 bytes), not a checkpoint")
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except (zipfile.BadZipFile, RuntimeError, EOFError, ValueError, OSError, IndexError,
            KeyError, TypeError, AttributeError, MemoryError) as exc:
        detail = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:120]
        raise CheckpointError(f"{path}: corrupt or not a speechmask checkpoint "
                              f"({detail})") from None
    except pickle.UnpicklingError as exc:
        if "Unsupported global" in str(exc):  # a valid pickle naming arbitrary objects
            raise CheckpointError(f"{path}: refused, holds objects beyond tensors and plain "
                                  "data (loading it could run arbitrary code)") from None
        raise CheckpointError(f"{path}: corrupt or not a speechmask checkpoint "
                              "(unreadable pickle)") from None
    if not isinstance(blob, dict) or blob.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a speechmask checkpoint")
    if kind is not None and blob.get("kind") != kind:
        raise CheckpointError(f"{path}: is a {blob.get('kind')!r} checkpoint, expected {kind!r}")
    if blob.get("kind") not in VERSIONS:
        raise CheckpointError(f"{path}: unknown checkpoint kind {blob.get('kind')!r}")
    want = VERSIONS[blob["kind"]]
    if blob.get("version") != want:
        raise CheckpointError(f"{path}: {blob['kind']} checkpoint version {blob.get('version')} is "
                              f"not supported (this speechmask reads version {want}; retrain it)")
    for key in ("config", "model"):
        if key not in blob:
            raise CheckpointError(f"{path}: checkpoint lacks '{key}'")
    return blob


def check_output(path: Path, *, resume: bool, force: bool) -> None:
    """Refuse to overwrite a finished run without --force or --resume."""
    if path.exists() and not (resume or force):
        raise SpeechmaskError(f"{path}: already exists (use --resume to continue it or --force "
                              "to start over)")
