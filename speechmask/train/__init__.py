"""Training: feature cache, checkpoints, the cloud SLU and mask trainers, DDP support."""
