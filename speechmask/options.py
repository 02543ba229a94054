"""Command-line options from config dataclasses: one flag per field, its default and help read from
the field, so a CLI default can never differ from what a Python caller gets.

A config declares its fields with `option(default, help, ...)`; a command adds them with
`add_options(parser, Config, ["lr", "seed", ...])` and builds the config with
`from_args(Config, args)`. Validation lives in the configs' `__post_init__` and raises
`ConfigError(field=...)`; `from_args` rewrites the field's name into its flag, so the user reads
`--batch-size must be >= 1 (got 0)`. argparse's own type errors (`--lr abc`) stay argparse's.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import types
import typing
from typing import Any

from .errors import ConfigError

_REGISTRY = "_speechmask_options"  # parser attribute: {config class: {field: flag}}


def option(default: Any = dataclasses.MISSING, help: str = "", *, flag: str | None = None,
           negative: str | None = None, choices: tuple | None = None,
           metavar: str | None = None, parse: Any = None,
           default_factory: Any = dataclasses.MISSING) -> Any:
    """A dataclass field that is also a CLI option. `flag`: the flag when it is not the field's
    name with dashes; `negative`: for a bool that defaults to True, the flag that turns it off
    (`--no-amp`); `parse`: the argparse type when it is not the field's type."""
    meta = {"help": help, "flag": flag, "negative": negative, "choices": choices,
            "metavar": metavar, "parse": parse}
    if default_factory is not dataclasses.MISSING:
        return dataclasses.field(default_factory=default_factory, metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def field_default(cls: type, name: str) -> Any:
    f = {f.name: f for f in dataclasses.fields(cls)}[name]
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    raise ConfigError(f"{cls.__name__}.{name} has no default")


def flag_of(cls: type, name: str) -> str:
    f = {f.name: f for f in dataclasses.fields(cls)}[name]
    return f.metadata.get("flag") or "--" + name.replace("_", "-")


def add_options(parser: argparse.ArgumentParser | argparse._ArgumentGroup, cls: type,
                names: list[str] | None = None, *, registry: argparse.ArgumentParser | None = None
                ) -> None:
    """Add a flag for each field of `cls` in `names` (default: every field that is an
    `option`). `registry`: the parser that `from_args` reads (when `parser` is a group)."""
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    names = names if names is not None else [n for n, f in fields.items() if "help" in f.metadata]
    owner = registry if registry is not None else parser
    table = getattr(owner, _REGISTRY, None)
    if table is None:
        table = {}
        setattr(owner, _REGISTRY, table)
    for name in names:
        f = fields[name]
        meta, default = f.metadata, field_default(cls, name)
        kind, many = _kind(hints[name])
        help_text = meta.get("help", "")
        kwargs: dict[str, Any] = {"dest": name, "default": default}
        if kind is bool:
            if default:
                flag = meta.get("negative") or "--no-" + name.replace("_", "-")
                parser.add_argument(flag, action="store_false", help=help_text, **kwargs)
            else:
                parser.add_argument(flag_of(cls, name), action="store_true", help=help_text,
                                    **kwargs)
            table.setdefault(cls, {})[name] = flag if default else flag_of(cls, name)
            continue
        shown = " ".join(map(str, default)) if many else default
        if default is not None and not (many and not default):
            help_text = f"{help_text} (default: {shown})" if help_text else f"default: {shown}"
        if many:
            kwargs["nargs"] = "+"
            kwargs["default"] = list(default)
        if meta.get("choices"):
            kwargs["choices"] = meta["choices"]
        if meta.get("metavar"):
            kwargs["metavar"] = meta["metavar"]
        parser.add_argument(flag_of(cls, name), type=meta.get("parse") or kind, help=help_text,
                            **kwargs)
        table.setdefault(cls, {})[name] = flag_of(cls, name)


def _kind(hint) -> tuple[type, bool]:
    """(element type, is a sequence) of a field's type: `int | None`, `tuple[str, ...]`."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        hint = next(a for a in typing.get_args(hint) if a is not type(None))
    if typing.get_origin(hint) in (tuple, list):
        return typing.get_args(hint)[0], True
    return hint, False


def from_args(cls: type, args: argparse.Namespace, parser: argparse.ArgumentParser | None = None,
              **fixed: Any):
    """`cls(**{field: args.<field>})` for the fields the parser added, plus `fixed`;
    a ConfigError naming a field is rewritten to name its flag."""
    table = getattr(parser, _REGISTRY, {}).get(cls) if parser is not None else None
    values = {f.name: getattr(args, f.name) for f in dataclasses.fields(cls)
              if hasattr(args, f.name) and (table is None or f.name in table)}
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}
    values.update(fixed)
    try:
        return cls(**values)
    except ConfigError as exc:
        raise flagged(exc, all_flags(parser)) from None


def flagged(exc: ConfigError, flags: dict[str, str]) -> ConfigError:
    """`exc` with the field it names replaced by that field's flag."""
    name, text = exc.field, str(exc)
    if name in flags and text.startswith(name):
        return ConfigError(flags[name] + text[len(name):], field=name)
    return exc


def options_of(parser: argparse.ArgumentParser) -> dict[type, dict[str, str]]:
    """{config class: {field: flag}} for the options `add_options` gave `parser`."""
    return dict(getattr(parser, _REGISTRY, {}))


def all_flags(parser: argparse.ArgumentParser | None) -> dict[str, str]:
    """{field: flag} over every config whose options `parser` has."""
    return {k: v for table in options_of(parser).values() for k, v in table.items()} \
        if parser is not None else {}


# ---------------------------------------------------------------- checks for __post_init__
def check_int(value: Any, name: str, *, low: int = 1, optional: bool = False) -> None:
    """ConfigError(field=name) unless `value` is an int >= `low` (or None when `optional`)."""
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ConfigError(f"{name} must be an integer >= {low} (got {value!r})", field=name)


def check_number(value: Any, name: str, *, low: float | None = None, high: float | None = None,
                 strict_low: bool = False, optional: bool = False) -> None:
    """ConfigError(field=name) unless `value` is a finite number in the given range."""
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigError(f"{name} must be a finite number (got {value!r})", field=name)
    if low is not None and (value <= low if strict_low else value < low):
        raise ConfigError(f"{name} must be {'>' if strict_low else '>='} {low:g} (got {value!r})",
                          field=name)
    if high is not None and value > high:
        raise ConfigError(f"{name} must be <= {high:g} (got {value!r})", field=name)


def check_choice(value: Any, name: str, choices: tuple) -> None:
    if value not in choices:
        raise ConfigError(f"{name} must be one of {', '.join(map(str, choices))} "
                          f"(got {value!r})", field=name)
