"""Exception types: one base class, one subclass per area, messages that name the file and problem."""

from __future__ import annotations


class SpeechmaskError(Exception):
    """Base class of every error speechmask raises on purpose; the CLI prints it as one line."""


class ConfigError(SpeechmaskError):
    """An inconsistent configuration (front-end, corpus, training)."""


class AudioError(SpeechmaskError):
    """An audio file that cannot be used: unreadable, empty, too short, non-finite, unsupported."""


class ManifestError(SpeechmaskError):
    """A manifest file or row that does not follow the schema."""


class CorpusError(SpeechmaskError):
    """A corpus folder that is missing, has the wrong layout, or clashes with existing output."""
