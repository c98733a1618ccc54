"""Checkpoint format: the model under test is stored as its scheme requires (--whisperq-scheme, or the one
it declares) in compressed-tensors form, made from the named base, with nothing else changed. Reads
safetensors, never runs checkpoint code."""

from pytest_whisperq.checks.checkpoint_format import (
    check_fused_projections_alike,
    check_ignore_list_against_base,
    check_linears_packed,
    check_output_head,
    check_untouched_tensors_equal,
    check_untouched_tensors_layout,
)
from pytest_whisperq.checks.compat import (
    check_loadable,
    check_no_custom_code,
    check_same_architecture,
    check_same_vocabulary,
)
from pytest_whisperq.checks.fidelity import check_dequantized_close
from pytest_whisperq.checks.quant_config import check_model_dtype, check_quantization_config
from pytest_whisperq.models.processor_files import custom_code, missing_processor_files


def test_same_architecture_as_base(whisperq_model_tensors, whisperq_base_tensors, whisperq_check):
    whisperq_check(check_same_architecture(whisperq_model_tensors.config, whisperq_base_tensors.config))


def test_same_vocabulary_as_base(whisperq_model_vocabulary, whisperq_base_vocabulary, whisperq_check):
    whisperq_check(check_same_vocabulary(whisperq_model_vocabulary, whisperq_base_vocabulary))


def test_checkpoint_complete(whisperq_model_ref, whisperq_check):
    whisperq_check(check_loadable(missing_processor_files(whisperq_model_ref.path)))


def test_no_custom_code(whisperq_model_ref, whisperq_check):
    whisperq_check(check_no_custom_code(custom_code(whisperq_model_ref.path)))


def test_quantization_config(whisperq_model_tensors, whisperq_scheme, whisperq_check):
    whisperq_check(check_quantization_config(whisperq_model_tensors.config, whisperq_scheme))


def test_model_dtype_is_16_bit(whisperq_model_tensors, whisperq_check):
    whisperq_check(check_model_dtype(whisperq_model_tensors.config))


def test_ignore_list_keeps_the_output_head(whisperq_model_tensors, whisperq_base_tensors, whisperq_check):
    whisperq_check(check_ignore_list_against_base(whisperq_model_tensors, whisperq_base_tensors))


def test_every_linear_is_packed(whisperq_model_tensors, whisperq_base_tensors, whisperq_scheme, whisperq_check):
    whisperq_check(check_linears_packed(whisperq_model_tensors, whisperq_base_tensors, whisperq_scheme))


def test_fused_projections_quantized_alike(whisperq_model_tensors, whisperq_base_tensors, whisperq_check):
    whisperq_check(check_fused_projections_alike(whisperq_model_tensors, whisperq_base_tensors))


def test_output_head_untouched(whisperq_model_tensors, whisperq_base_tensors, whisperq_check):
    whisperq_check(check_output_head(whisperq_model_tensors, whisperq_base_tensors))


def test_other_tensors_present_in_the_model_dtype(whisperq_model_tensors, whisperq_base_tensors, whisperq_scheme, whisperq_check):
    whisperq_check(check_untouched_tensors_layout(whisperq_model_tensors, whisperq_base_tensors, whisperq_scheme))


def test_other_tensors_equal_the_base(whisperq_model_tensors, whisperq_base_tensors, whisperq_check):
    whisperq_check(check_untouched_tensors_equal(whisperq_model_tensors, whisperq_base_tensors))


def test_dequantized_weights_close_to_the_base(whisperq_layer_errors, whisperq_layer_tolerance, whisperq_check):
    whisperq_check(check_dequantized_close(whisperq_layer_errors, whisperq_layer_tolerance))
