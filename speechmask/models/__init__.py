"""Models: hard-concrete gates, the on-device mask generator, the cloud SLU classifier."""
