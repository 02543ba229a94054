"""A held-out split of a manifest whose rows name their sentence template (the built-in corpus
does): test utterances come from speakers *and* templates that no training utterance has, so a
model or attacker scored on it meets other voices and other sentences than it learned from.

The result is an ordinary manifest: `split` is reassigned (train: speaker_split train speakers on
seen templates; dev: speaker_split dev speakers on seen templates; test: speaker_split test
speakers on held-out templates), `speaker_split` is kept, and rows that belong to no part (a
training speaker saying a held-out sentence, a test speaker saying a seen one) are left out.
Every command then runs on it unchanged.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from dataclasses import asdict, dataclass

from ..errors import ManifestError
from ..options import check_int, option


@dataclass(frozen=True)
class HeldoutConfig:
    templates_per_intent: int = option(1, "templates of each intent held out for the test part "
                                          "(an intent needs one more to stay in training)")
    seed: int = option(0, "seed of which templates are held out")

    def __post_init__(self) -> None:
        check_int(self.templates_per_intent, "templates_per_intent")
        check_int(self.seed, "seed", low=0)

    def to_dict(self) -> dict:
        return asdict(self)


def heldout_templates(rows: list[dict], cfg: HeldoutConfig) -> set[str]:
    """The templates held out: per intent, `templates_per_intent` of its templates chosen by a
    seeded hash (intents with too few templates keep them all in training)."""
    by_intent: dict[str, set[str]] = defaultdict(set)
    for r in rows:
        by_intent[r["intent"]].add(r["template"])
    out = set()
    for templates in by_intent.values():
        if len(templates) > cfg.templates_per_intent:
            ranked = sorted(templates, key=lambda t: hashlib.sha1(f"{cfg.seed}:{t}".encode())
                            .hexdigest())
            out.update(ranked[: cfg.templates_per_intent])
    return out


def heldout_split(rows: list[dict], cfg: HeldoutConfig, source: str = "manifest") -> list[dict]:
    """The rows of the held-out split (copies, `split` reassigned). ManifestError when rows
    lack a template or a part comes out empty."""
    missing = [r["id"] for r in rows if not r.get("template")]
    if missing:
        raise ManifestError(f"{source}: row {missing[0]!r} has no 'template' (a held-out-template "
                            "split needs corpora that name their sentence templates, such as the "
                            "built-in one)")
    held = heldout_templates(rows, cfg)
    out = []
    for r in rows:
        unseen = r["template"] in held
        part = r["speaker_split"]
        if (part == "test") == unseen:
            out.append({**r, "split": part})
    for part in ("train", "dev", "test"):
        if not any(r["split"] == part for r in out):
            raise ManifestError(f"{source}: the held-out split has no {part!r} utterances "
                                "(too few speakers or templates)")
    return out
