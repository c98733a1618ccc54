"""Transcript sanity against the base on the same audio: empty transcripts, loops, another language,
samples far from the reference or from the base's transcript, talk on clips without speech. Each is
counted for both models; the model's excess over the base is judged by the decision rule."""

from pytest_whisperq.checks.long_form import check_long_form
from pytest_whisperq.checks.sanity import (
    check_close_to_base,
    check_close_to_reference,
    check_language,
    check_no_loops,
    check_non_empty,
    check_silence,
)


def test_no_empty_transcripts(whisperq_base_wer, whisperq_model_wer, whisperq_settings, whisperq_check):
    s = whisperq_settings
    whisperq_check(check_non_empty(whisperq_base_wer, whisperq_model_wer, s.max_sanity_excess, s.rule()))


def test_no_repetition_loops(whisperq_base_wer, whisperq_model_wer, whisperq_settings, whisperq_check):
    s = whisperq_settings
    whisperq_check(check_no_loops(whisperq_base_wer, whisperq_model_wer, s.max_repeats, s.max_sanity_excess, s.rule()))


def test_transcripts_in_expected_language(whisperq_base_wer, whisperq_model_wer, whisperq_settings, whisperq_check):
    s = whisperq_settings
    whisperq_check(check_language(whisperq_base_wer, whisperq_model_wer, s.language, s.max_sanity_excess, s.rule()))


def test_silent_on_silence(whisperq_model_silence, whisperq_base_silence, whisperq_settings, whisperq_check):
    s = whisperq_settings
    whisperq_check(check_silence(whisperq_model_silence, whisperq_base_silence, s.max_silence_words,
                                 s.max_silence_excess, s.rule()))


def test_close_to_reference(whisperq_base_wer, whisperq_model_wer, whisperq_settings, whisperq_check):
    s = whisperq_settings
    whisperq_check(check_close_to_reference(whisperq_base_wer, whisperq_model_wer, s.max_sample_wer,
                                            s.max_sanity_excess, s.rule()))


def test_close_to_base(whisperq_base_wer, whisperq_model_wer, whisperq_normalizer, whisperq_settings, whisperq_check):
    s = whisperq_settings
    whisperq_check(check_close_to_base(whisperq_base_wer, whisperq_model_wer, whisperq_normalizer,
                                       s.max_base_disagreement, s.max_sanity_excess, s.rule()))


def test_long_form_complete(whisperq_eval_data, whisperq_base_wer, whisperq_model_wer, whisperq_normalizer,
                            whisperq_settings, whisperq_check):
    """Audio over 30 s, scored whole: no loop, no run of words dropped or invented at window boundaries beyond
    the base's own on the same file."""
    long_ids = {u.id for u in whisperq_eval_data if u.long_form}
    whisperq_check(check_long_form(whisperq_base_wer, whisperq_model_wer, long_ids, whisperq_normalizer,
                                   whisperq_settings.max_repeats))
