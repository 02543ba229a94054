"""speechmask: mask short-term speech details on the device, keep the intent for the cloud."""

__version__ = "0.1.0"
