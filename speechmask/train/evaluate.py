"""`speechmask evaluate`: intent accuracy of a cloud model on clean or masked input, open
fraction."""

from __future__ import annotations

import math
from pathlib import Path

import torch

from ..masking import mask_batch
from ..models.gates import floor_value
from .data import load_features, pad_batch


@torch.no_grad()
def evaluate(manifest: Path, slu_path: Path, mask_path: Path | None = None, *,
             split_field: str = "split", part: str = "test", batch: int = 64) -> dict:
    """Accuracy of `slu_path` on `part` of the manifest, on features masked by `mask_path`'s
    binary gates (what the device sends) when given. Rows whose intent the model does not know
    count as errors."""
    from ..api import load_mask, load_slu

    slu = load_slu(slu_path)
    mask = load_mask(mask_path) if mask_path else None
    fs = load_features(manifest, slu.cfg.frontend, progress=False)
    idx = fs.select(split_field, part)
    label = {n: i for i, n in enumerate(slu.cfg.intents)}
    floor = floor_value(slu.cfg.frontend)
    correct = opened = segments = speech_open = speech_segments = 0
    for s in range(0, len(idx), batch):
        rows = idx[s:s + batch]
        x, lengths = pad_batch([fs.features[i] for i in rows], floor)
        if mask is not None:
            xm, gates, valid = mask_batch(mask, x, lengths)
            opened += float((gates.mean(-1) * valid).sum())
            segments += int(valid.sum())
            speech = speech_segments_of(x, lengths, mask.cfg.frames_per_segment)
            speech = speech[:, :gates.shape[1]] & valid
            speech_open += float((gates.mean(-1) * speech).sum())
            speech_segments += int(speech.sum())
            x = xm
        pred = slu(x, lengths).argmax(-1).tolist()
        correct += sum(p == label.get(fs.rows[i]["intent"], -1) for p, i in zip(pred, rows))
    unknown = sorted({fs.rows[i]["intent"] for i in idx} - set(label) - {None})
    return {"utterances": len(idx), "intent_acc": correct / len(idx),
            "unknown_intents": unknown,
            "unknown_intent_utterances": sum(fs.rows[i]["intent"] in unknown for i in idx),
            "open_fraction": (opened / segments) if mask is not None else 1.0,
            "open_fraction_speech": (speech_open / speech_segments) if mask is not None else 1.0,
            "split_field": split_field, "part": part}


def speech_segments_of(x: torch.Tensor, lengths: torch.Tensor, seg_frames: int,
                       range_db: float = 30.0) -> torch.Tensor:
    """`(B, S)` bool: segments whose mean frame energy is within `range_db` of the utterance's
    loudest segment (an energy VAD on the clean features). Sending silence leaks little; the
    share of *speech* segments sent is the number that matters for privacy."""
    energy = torch.logsumexp(x, dim=-1)  # ln of total mel power per frame
    s = x.shape[1] // seg_frames
    seg = energy[:, : s * seg_frames].reshape(x.shape[0], s, seg_frames).mean(-1)
    valid = torch.arange(s)[None] < (lengths // seg_frames)[:, None]
    loudest = seg.masked_fill(~valid, float("-inf")).max(1, keepdim=True).values
    return (seg > loudest - range_db / 10 * math.log(10)) & valid
