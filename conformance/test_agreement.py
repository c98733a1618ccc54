"""Cross-backend agreement: the model under test transcribed by the run's backend (vLLM, a server)
and by a second one (transformers by default) must say the same words. Catches loader bugs that
the checkpoint format checks cannot see."""

from pytest_whisperq.checks.agreement import check_backend_agreement


def test_backends_agree_on_the_model(whisperq_agreement_transcripts, whisperq_normalizer, whisperq_settings,
                                     whisperq_check):
    reference_backend, reference, transcripts = whisperq_agreement_transcripts
    whisperq_check(check_backend_agreement(reference_backend, whisperq_settings.backend, reference, transcripts,
                                           whisperq_normalizer, whisperq_settings.max_backend_disagreement))
