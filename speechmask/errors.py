"""Exception types: one base class, one subclass per area, messages that name the file and problem."""

from __future__ import annotations


class SpeechmaskError(Exception):
    """Base class of every error speechmask raises on purpose; the CLI prints it as one line."""


class ConfigError(SpeechmaskError):
    """An inconsistent configuration (front-end, corpus, training). `field`: the config field at
    fault, when one is; the CLI names its flag instead (`speechmask.options`)."""

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.field = field


class AudioError(SpeechmaskError):
    """An audio file that cannot be used: unreadable, empty, too short, non-finite, unsupported."""


class ManifestError(SpeechmaskError):
    """A manifest file or row that does not follow the schema."""


class CorpusError(SpeechmaskError):
    """A corpus folder that is missing, has the wrong layout, or clashes with existing output."""
