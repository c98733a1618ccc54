"""The conformance suite users run against a quantized Whisper checkpoint."""
