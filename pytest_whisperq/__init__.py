"""pytest-whisperq: a release gate for quantized Whisper checkpoints.

Importing this package is cheap: torch, transformers and friends are imported only by the
modules that need them, when a fixture asks for a model.
"""

__version__ = "0.1.0"
