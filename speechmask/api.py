"""Python API: load trained models from their self-describing checkpoints."""

from __future__ import annotations

import os

from .models.mask import MaskConfig, MaskGenerator
from .models.slu import SLUConfig, SLUModel
from .train.checkpoint import CheckpointError, load_checkpoint


def load_mask(path: str | os.PathLike) -> MaskGenerator:
    """A trained mask generator (eval mode, CPU). Raises CheckpointError with the file's name."""
    blob = load_checkpoint(path, kind="mask")
    model = MaskGenerator(MaskConfig.from_dict(blob["config"]))
    _load_state(model, blob, path)
    return model.eval()


def load_slu(path: str | os.PathLike) -> SLUModel:
    """A trained cloud SLU model (eval mode, CPU); `model.cfg.intents` names its outputs."""
    blob = load_checkpoint(path, kind="slu")
    model = SLUModel(SLUConfig.from_dict(blob["config"]))
    _load_state(model, blob, path)
    return model.eval()


def _load_state(model, blob: dict, path) -> None:
    try:
        model.load_state_dict(blob["model"])
    except (RuntimeError, KeyError) as exc:
        raise CheckpointError(f"{path}: weights do not fit the stored configuration "
                              f"({str(exc).splitlines()[0][:120]})") from None
