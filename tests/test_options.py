"""Every CLI option that mirrors a config field takes its default from the field, in every
command (core and plugins); no option restates a config field's default by hand."""

from __future__ import annotations

import argparse
import dataclasses

import pytest

from speechmask.cli import get_parser
from speechmask.errors import ConfigError
from speechmask.options import add_options, field_default, from_args, option, options_of


def _parsers(parser: argparse.ArgumentParser, name: str = "speechmask"):
    yield name, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub_name, sub in action.choices.items():
                yield from _parsers(sub, f"{name} {sub_name}")


PARSERS = dict(_parsers(get_parser()))
# options that mirror a field but mean something else by design, with the reason
NOT_MIRRORS = {("speechmask data synth", "engines"): "comma-separated; default: every engine "
                                                      "installed, resolved at run time",
               ("speechmask attack", "baselines"): "chooses baseline systems (into "
                                                   "SuiteConfig.systems), not BaselineConfig",
               ("speechmask attack sweep", "baselines"): "the baselines drawn beside the "
                                                         "sweep, not BaselineConfig"}


def test_every_command_is_walked():
    for command in ("speechmask train mask", "speechmask train slu", "speechmask export",
                    "speechmask data synth", "speechmask attack", "speechmask evaluate"):
        assert command in PARSERS


@pytest.mark.parametrize("command", sorted(PARSERS))
def test_cli_defaults_are_the_config_defaults(command):
    parser = PARSERS[command]
    registered = options_of(parser)
    defaults = {a.dest: a.default for a in parser._actions}
    for cls, flags in registered.items():
        for field, flag in flags.items():
            want = field_default(cls, field)
            got = defaults[field]
            assert (tuple(got) if isinstance(got, list) else got) == want, (command, flag)
            assert flag in {s for a in parser._actions for s in a.option_strings}
    # an option named like a field of a config this command builds, but added by hand, would
    # restate its default: there is none
    fields = {f.name for cls in registered for f in dataclasses.fields(cls)}
    by_hand = {a.dest for a in parser._actions if a.option_strings} - \
        {f for flags in registered.values() for f in flags}
    restated = {f for f in by_hand & fields if (command, f) not in NOT_MIRRORS}
    assert not restated, (command, restated)


def test_trainers_have_the_cli_learning_rates():
    """A Python caller of each trainer gets the learning rate the command line gets."""
    from speechmask.train.config import FinetuneConfig, MaskTrainConfig, SLUTrainConfig

    for cls, command in ((MaskTrainConfig, "speechmask train mask"),
                         (SLUTrainConfig, "speechmask train slu"),
                         (FinetuneConfig, "speechmask train finetune")):
        lr = next(a.default for a in PARSERS[command]._actions if a.dest == "lr")
        assert lr == cls().lr


@dataclasses.dataclass(frozen=True)
class Demo:
    size: int = option(3, "a size")
    rate: float = option(0.5, "a rate", flag="--the-rate")
    names: tuple[str, ...] = option(("a", "b"), "names", choices=("a", "b", "c"))
    loud: bool = option(True, "be quiet", negative="--quiet")
    hidden: int = 7  # not an option

    def __post_init__(self):
        if self.size < 1:
            raise ConfigError(f"size must be >= 1 (got {self.size})", field="size")
        if not 0 <= self.rate <= 1:
            raise ConfigError(f"rate must be in [0, 1] (got {self.rate})", field="rate")


def test_options_round_trip_and_errors_name_the_flag():
    p = argparse.ArgumentParser()
    add_options(p, Demo)
    assert from_args(Demo, p.parse_args([]), p) == Demo()
    got = from_args(Demo, p.parse_args(["--size", "4", "--the-rate", "1", "--names", "c",
                                        "--quiet"]), p)
    assert got == Demo(size=4, rate=1.0, names=("c",), loud=False)
    assert "--hidden" not in p.format_help() and "(default: 3)" in p.format_help()
    with pytest.raises(ConfigError, match=r"^--size must be >= 1 \(got 0\)$"):
        from_args(Demo, p.parse_args(["--size", "0"]), p)
    with pytest.raises(ConfigError, match=r"^--the-rate must be in"):
        from_args(Demo, p.parse_args(["--the-rate", "2"]), p)
