"""speechmask: mask short-term details of speech on the device, keep the intent for the cloud."""

__version__ = "0.1.0"


def load_mask(path):
    """Load a trained mask generator (see `speechmask.api.load_mask`)."""
    from .api import load_mask as _load

    return _load(path)


def load_slu(path):
    """Load a trained cloud SLU model (see `speechmask.api.load_slu`)."""
    from .api import load_slu as _load

    return _load(path)
