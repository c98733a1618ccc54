"""The checkpoint under test is a Whisper checkpoint made from the named base."""

import json

from pytest_whisperq.checks.compat import check_same_architecture


def test_same_architecture_as_base(whisperq_model_ref, whisperq_base_ref, whisperq_check):
    model_config = json.loads((whisperq_model_ref.path / "config.json").read_text())
    base_config = json.loads((whisperq_base_ref.path / "config.json").read_text())
    whisperq_check(check_same_architecture(model_config, base_config))
