"""The model under test transcribes the evaluation speech: nothing empty, WER under a ceiling."""

from pytest_whisperq.checks.transcripts import check_non_empty, check_wer_ceiling


def test_no_empty_transcripts(whisperq_model, whisperq_wer, whisperq_check):
    whisperq_check(check_non_empty(whisperq_wer(whisperq_model)))


def test_wer_under_ceiling(whisperq_model, whisperq_wer, whisperq_settings, whisperq_check):
    report = whisperq_wer(whisperq_model)
    whisperq_check(check_wer_ceiling(report, whisperq_settings.max_wer, "all"))
