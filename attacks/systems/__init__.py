"""The protections the attack suite compares, registered by name: `System` objects, one per module.

A `Registration` holds what is known without building anything (and without importing torch, so
that `speechmask attack --help` stays fast): the name, where the `System` class lives, a summary,
whether it is a baseline (offered by `--baselines` and run by default), and what it needs beyond
the corpus and the cloud model (the mask, the exported int8 model). The `System` itself says what
it sends (`build`), what it costs on the device (`cost`) and how the suite schedules and scores
it. The registry's order is the report's row order.

Adding a protection: write `attacks/systems/<name>.py` with a class that implements `System`,
then add one `Registration` below (or call `register` from your own code).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, ClassVar, Iterable, Protocol

from speechmask.errors import ConfigError

if TYPE_CHECKING:
    from ..data import Sent
    from ..suite import Suite

# what a system may need beyond the corpus and the clean cloud model: Suite attribute -> flag
INPUTS = {"mask": "--mask", "int8_model": "--int8"}
# the suite's shared attackers, trained once on clean speech
SHARED = frozenset({"asr", "xvector"})
COST_KEYS = ("params", "macs_per_second", "weight_bytes", "activation_bytes")


class System(Protocol):
    """One protection. The suite makes a fresh instance per `Suite` (`Registration.create`), so
    an instance may keep what it trains; the suite's cache keeps it across runs.

    `build(suite)`: what it sends for every manifest row, or None when nothing leaves the device
    (the row is then that of an attacker with no input). `cost(suite)`: its on-device cost per
    second of audio (`COST_KEYS`), available before `build` (a learned baseline's size does not
    depend on its training, so an untrained network of the right shape may be counted)."""

    # sends the clean features: the cloud model needs no fine-tuning and the informed attackers
    # are the clean-trained ones
    sends_clean: ClassVar[bool] = False
    # the system whose output its informed attackers and its fine-tuned cloud model train on
    # (None: its own), so that two rows differ only by what the sent features change
    trains_as: ClassVar[str | None] = None
    # the shared attackers (`SHARED`) its attackers read or start from
    shared: ClassVar[frozenset[str]] = SHARED
    # relative run time of its attacks (1 thread), to start the longest first; 0: nothing to
    # attack, run in the main process after the others
    expected_cost: ClassVar[float] = 1.0
    # relative time of `build` on the scale of `suite.SHARED_COST`; > 0: worth building ahead,
    # beside the shared attackers (its trained parts reach the other processes through the cache)
    build_cost: ClassVar[float] = 0.0

    def build(self, suite: Suite) -> Sent | None: ...

    def cost(self, suite: Suite) -> dict[str, int]: ...


@dataclass(frozen=True)
class Registration:
    """A registered protection. `system`: its `System` class (any factory) or `"module:Class"`,
    imported when the suite first needs it (a module name starting with `.` is relative to this
    package). `baseline`: offered by `attack --baselines` and run by default; a system that is
    not a baseline runs when everything it `needs` (keys of `INPUTS`) is given."""

    name: str
    system: str | Callable[[], System]
    summary: str
    baseline: bool = True
    needs: tuple[str, ...] = ()

    def create(self) -> System:
        factory = self.system
        if isinstance(factory, str):
            module, _, attr = factory.partition(":")
            factory = getattr(importlib.import_module(module, __name__), attr)
        return factory()

    def missing(self, given: Iterable[str]) -> list[str]:
        """The flags of what it needs and `given` lacks."""
        given = set(given)
        return [INPUTS[n] for n in self.needs if n not in given]


_REGISTRY: dict[str, Registration] = {}


def register(entry: Registration) -> Registration:
    """Add a protection (after those registered before it). ConfigError for a taken or unusable
    name or an unknown need."""
    if not entry.name.isidentifier() or entry.name == "none" or entry.name in SHARED:
        raise ConfigError(f"system name {entry.name!r} must be an identifier other than "
                          f"'none', {', '.join(map(repr, sorted(SHARED)))}")
    if entry.name in _REGISTRY:
        raise ConfigError(f"system {entry.name!r} is already registered")
    unknown = [n for n in entry.needs if n not in INPUTS]
    if unknown:
        raise ConfigError(f"system {entry.name!r} needs {unknown[0]!r}; a system may need "
                          f"{', '.join(INPUTS)}")
    _REGISTRY[entry.name] = entry
    return entry


def unregister(name: str) -> None:
    get(name)
    del _REGISTRY[name]


def get(name: str) -> Registration:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ConfigError(f"unknown system {name!r} (choose from {', '.join(_REGISTRY)})",
                          field="systems") from None


def names() -> tuple[str, ...]:
    """Every registered system, in report order."""
    return tuple(_REGISTRY)


def baselines() -> tuple[str, ...]:
    return tuple(n for n, e in _REGISTRY.items() if e.baseline)


def default_systems() -> tuple[str, ...]:
    """What `attack --mask` runs by default: every baseline and every system needing only the
    mask."""
    return choose(baselines(), ("mask",))


def choose(chosen_baselines: Iterable[str], given: Iterable[str]) -> tuple[str, ...]:
    """The systems a run compares, in report order: the chosen baselines, and every other system
    whose needs are all `given` (names of `INPUTS`)."""
    chosen, given = set(chosen_baselines), set(given)
    return tuple(n for n, e in _REGISTRY.items()
                 if (n in chosen if e.baseline else e.needs and not e.missing(given)))


for _entry in (
        Registration("all_offload", ".all_offload:AllOffload",
                     "sends the clean features and audio (no protection)"),
        Registration("random", ".random_mask:RandomMask",
                     "withholds each gate segment at random (BaselineConfig.random_open)"),
        Registration("mcadams", ".mcadams:McAdams",
                     "McAdams-coefficient anonymisation of the waveform (VoicePrivacy B2)"),
        Registration("vae", ".vae:VAE",
                     "disentangling VAE: content code decoded with a neutral speaker code"),
        Registration("ppslu", ".ppslu:PPSLU",
                     "privacy-preserving SLU encoder trained with speaker and ASR adversaries"),
        Registration("speechmask", ".speechmask:SpeechmaskMask",
                     "the trained mask's binary gates (float model)", baseline=False,
                     needs=("mask",)),
        Registration("speechmask_int8", ".speechmask:SpeechmaskInt8",
                     "the exported int8 model's gates, in its own closed loop", baseline=False,
                     needs=("mask", "int8_model")),
        Registration("on_device", ".on_device:OnDevice",
                     "sends nothing: the cloud model runs on the device"),
):
    register(_entry)
