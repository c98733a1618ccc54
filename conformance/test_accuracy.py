"""Accuracy: the quantized model's WER within --whisperq-max-wer-delta points of the base's on the same
utterances, judged by the decision rule (pass / fail / inconclusive, docs/statistics.md). Each speech pool
(real speech, isolated words, synthetic speech) is judged apart; the pools in --whisperq-gated-pools
(real by default) gate the release, the others are reported."""

from pytest_whisperq.checks.accuracy import check_gated_pools_present, check_wer_delta, speech_pools
from pytest_whisperq.checks.transcripts import check_wer_ceiling


def _gated(label, settings):
    return label in settings.gated_pools


def test_wer_delta_within_limit(whisperq_eval_data, whisperq_base_wer, whisperq_model_wer, whisperq_settings,
                                whisperq_check):
    s = whisperq_settings
    pools = speech_pools(whisperq_eval_data, whisperq_base_wer, whisperq_model_wer)
    missing = check_gated_pools_present([label for label, *_ in pools], s.gated_pools)
    whisperq_check(*(
        check_wer_delta(label, base, model, s.max_wer_delta, s.rule(), gated=_gated(label, s))
        for label, base, model in pools
    ), *([missing] if missing else []))


def test_wer_under_ceiling(whisperq_eval_data, whisperq_model_wer, whisperq_settings, whisperq_check):
    s = whisperq_settings
    whisperq_check(*(
        check_wer_ceiling(model, s.max_wer, label, s.rule(), gated=_gated(label, s))
        for label, model in speech_pools(whisperq_eval_data, whisperq_model_wer)
    ))
