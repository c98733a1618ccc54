"""Accuracy: the quantized model's WER within --whisperq-max-wer-delta points of the base's on the same
utterances, with a paired bootstrap interval; real and synthetic speech gated apart."""

from pytest_whisperq.checks.accuracy import check_wer_delta, speech_pools
from pytest_whisperq.checks.transcripts import check_wer_ceiling


def test_wer_delta_within_limit(whisperq_eval_data, whisperq_base_wer, whisperq_model_wer, whisperq_settings,
                                whisperq_check):
    s = whisperq_settings
    whisperq_check(*(
        check_wer_delta(label, base, model, s.max_wer_delta, s.wer_delta_gate, s.bootstrap_samples, s.confidence)
        for label, base, model in speech_pools(whisperq_eval_data, whisperq_base_wer, whisperq_model_wer)
    ))


def test_wer_under_ceiling(whisperq_eval_data, whisperq_model_wer, whisperq_settings, whisperq_check):
    whisperq_check(*(
        check_wer_ceiling(model, whisperq_settings.max_wer, label)
        for label, model in speech_pools(whisperq_eval_data, whisperq_model_wer)
    ))
