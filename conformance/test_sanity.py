"""Transcript sanity on every evaluation sample and on audio without speech: nothing empty, no
loops, the expected language, close to the reference and to the base's transcript."""

from pytest_whisperq.checks.sanity import (
    check_close_to_base,
    check_close_to_reference,
    check_language,
    check_no_loops,
    check_non_empty,
    check_silence,
)


def test_no_empty_transcripts(whisperq_model_wer, whisperq_check):
    whisperq_check(check_non_empty(whisperq_model_wer))


def test_no_repetition_loops(whisperq_model_wer, whisperq_settings, whisperq_check):
    whisperq_check(check_no_loops(whisperq_model_wer, whisperq_settings.max_repeats))


def test_transcripts_in_expected_language(whisperq_model_wer, whisperq_settings, whisperq_check):
    whisperq_check(check_language(whisperq_model_wer, whisperq_settings.language))


def test_silent_on_silence(whisperq_model_silence, whisperq_base_silence, whisperq_settings, whisperq_check):
    whisperq_check(check_silence(whisperq_model_silence, whisperq_base_silence, whisperq_settings.max_silence_words))


def test_close_to_reference(whisperq_base_wer, whisperq_model_wer, whisperq_settings, whisperq_check):
    whisperq_check(check_close_to_reference(whisperq_base_wer, whisperq_model_wer, whisperq_settings.max_sample_wer))


def test_close_to_base(whisperq_base_wer, whisperq_model_wer, whisperq_normalizer, whisperq_settings, whisperq_check):
    whisperq_check(check_close_to_base(whisperq_base_wer, whisperq_model_wer, whisperq_normalizer,
                                       whisperq_settings.max_base_disagreement))
