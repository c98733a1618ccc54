"""Accuracy: the quantized model's WER within --whisperq-max-wer-delta points of the base's on the same
utterances, judged by the decision rule (pass / fail / inconclusive, docs/statistics.md). Each pool (a speech
kind - real speech, isolated words, synthetic speech, long-form - in one language) is judged apart; real
speech (--whisperq-gated-pools) gates the release in every language on its own, the rest is reported, as is
the figure over all languages together. Languages written without spaces are scored by character error rate."""

from pytest_whisperq.checks.accuracy import check_gated_pools_present, check_wer_delta, speech_pools
from pytest_whisperq.checks.transcripts import check_wer_ceiling


def test_wer_delta_within_limit(whisperq_eval_data, whisperq_base_wer, whisperq_model_wer, whisperq_settings,
                                whisperq_check):
    s = whisperq_settings
    pools = speech_pools(whisperq_eval_data, whisperq_base_wer, whisperq_model_wer, first_language=s.language)
    missing = check_gated_pools_present([pool.label for pool, *_ in pools], s.gated_pools)
    whisperq_check(*(
        check_wer_delta(pool.label, base, model, s.max_wer_delta, s.rule(), gated=pool.gated(s.gated_pools))
        for pool, base, model in pools
    ), *([missing] if missing else []))


def test_wer_under_ceiling(whisperq_eval_data, whisperq_model_wer, whisperq_settings, whisperq_check):
    """--whisperq-max-wer in the run's language, --whisperq-max-wer-other in every other."""
    s = whisperq_settings
    whisperq_check(*(
        check_wer_ceiling(model, s.max_wer if pool.language == s.language else s.max_wer_other, pool.label, s.rule(),
                          gated=pool.gated(s.gated_pools))
        for pool, model in speech_pools(whisperq_eval_data, whisperq_model_wer, first_language=s.language)
    ))
