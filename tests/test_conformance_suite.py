"""The shipped conformance suite, run as a user runs it, on real models (pytester)."""

from __future__ import annotations

import pytest

from pytest_whisperq.resources import conformance_dir

pytest_plugins = ["pytester"]
pytestmark = pytest.mark.slow


@pytest.fixture
def run_suite(pytester: pytest.Pytester, whisper_tiny_en_dir):
    # pytester moves HOME; point at the cache the real models were built in, to reuse them.
    cache_root = whisper_tiny_en_dir.parents[1]

    def run(*args: str) -> pytest.RunResult:
        return pytester.runpytest_subprocess(
            str(conformance_dir()), f"--whisperq-cache-dir={cache_root}", "-p", "no:cacheprovider", *args
        )

    return run


def test_suite_passes_on_a_real_model_against_itself(run_suite):
    result = run_suite("--whisperq-model=whisper-tiny.en", "--whisperq-base=whisper-tiny.en")
    result.assert_outcomes(passed=3)
    result.stdout.fnmatch_lines(["*= whisperq =*", "PASS non_empty_transcripts*", "PASS wer[[]all[]] *%*"])


def test_suite_rejects_a_checkpoint_of_another_architecture(run_suite, whisper_tiny_en_dir, whisper_base_dir):
    result = run_suite(f"--whisperq-model={whisper_tiny_en_dir}", "--whisperq-base=whisper-base",
                       "-k", "architecture")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([
        "*FAIL same_architecture_as_base*",
        "*pass the right --whisperq-base*",
        "*d_model: model 384, base 512*",
    ])


def test_wer_ceiling_fails_with_the_worst_utterances(run_suite):
    result = run_suite("--whisperq-model=whisper-tiny.en", "--whisperq-base=whisper-tiny.en",
                       "--whisperq-max-wer=1", "-k", "wer")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*FAIL wer[[]all[]]: observed *%, limit 1%*", "*errors / * words | ref:*"])


def test_without_a_model_the_base_is_quantized_here_and_gated(run_suite):
    """The default main job: no --whisperq-model, so the quantize fixture makes the W4A16 checkpoint
    (tiny.en and 2 calibration samples here, to keep the test short; reused from the cache)."""
    result = run_suite("--whisperq-base=whisper-tiny.en", "--whisperq-calib-samples=2", "--whisperq-max-wer=40")
    result.assert_outcomes(passed=3)
    result.stdout.fnmatch_lines(["model: quantize (*/quantized/whisper-tiny.en-W4A16-*)", "base: whisper-tiny.en (*)"])
