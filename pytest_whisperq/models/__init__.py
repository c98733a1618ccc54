"""Model specs, their resolution to local checkpoints, and the built-in models."""
