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


def test_suite_passes_on_a_good_w4a16_checkpoint(run_suite, tiny_en_w4a16):
    result = run_suite(f"--whisperq-model={tiny_en_w4a16}", "--whisperq-base=whisper-tiny.en", "--whisperq-max-wer=40")
    result.assert_outcomes(passed=12)
    result.stdout.fnmatch_lines([
        "*= whisperq =*", "PASS quantization_config 0 deviations*", "PASS linears_packed 64/64*",
        "PASS dequantized_weights_close *", "PASS non_empty_transcripts*", "PASS wer[[]all[]] *%*",
    ])


def test_a_dense_model_is_not_w4a16(run_suite):
    """The base itself passed as the model under test: transcripts fine, format rejected."""
    result = run_suite("--whisperq-model=whisper-tiny.en", "--whisperq-base=whisper-tiny.en", "-k", "format")
    result.assert_outcomes(passed=6, failed=4)
    result.stdout.fnmatch_lines([
        "*FAIL quantization_config: observed missing*",
        "*this is not a compressed-tensors checkpoint*",
        "*FAIL linears_packed: observed 0/64, limit 64/64*",
        "*model.decoder.layers.0.encoder_attn.k_proj.weight: dense F16 weight instead of weight_packed*",
    ])


def test_the_lm_head_mistake_fails_the_suite_with_a_fix(run_suite, tiny_en_lm_head_mistake):
    result = run_suite(f"--whisperq-model={tiny_en_lm_head_mistake}", "--whisperq-base=whisper-tiny.en", "-k", "format")
    result.assert_outcomes(passed=8, failed=2)
    result.stdout.fnmatch_lines([
        "*FAIL ignore_list*", "*GPTQModifier(..., ignore=[[]'proj_out'])*",
        "*FAIL output_head_untouched*",
        "*proj_out.weight_packed, proj_out.weight_scale, proj_out.weight_shape: the output head is quantized*",
    ])


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
    (tiny.en and 8 calibration samples here, to keep the test short; reused from the cache)."""
    result = run_suite("--whisperq-base=whisper-tiny.en", "--whisperq-calib-samples=8", "--whisperq-max-wer=40")
    result.assert_outcomes(passed=12)
    result.stdout.fnmatch_lines(["model: quantize (*/quantized/whisper-tiny.en-W4A16-*)", "base: whisper-tiny.en (*)"])


def test_a_corrupt_checkpoint_stops_each_format_test_with_the_reason(run_suite, tiny_en_w4a16, tmp_path):
    import shutil

    broken = tmp_path / "truncated"
    shutil.copytree(tiny_en_w4a16, broken)
    weights = broken / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    result = run_suite(f"--whisperq-model={broken}", "--whisperq-base=whisper-tiny.en", "-k", "format")
    result.assert_outcomes(errors=10)  # the fixture fails: every test that needs the checkpoint errors
    result.stdout.fnmatch_lines(["*CheckpointError: *model.safetensors: tensor * data ends at byte * the file is truncated*"])
    assert "Traceback" not in result.stdout.str()
