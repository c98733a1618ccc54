"""Language identification (optional: --whisperq-language-id, otherwise deselected and said so): base and
model decode each utterance without a forced language; the model's misidentifications beyond the base's
are judged by the decision rule (--whisperq-max-sanity-excess points of utterances)."""

from pytest_whisperq.checks.language_id import check_language_id


def test_identified_languages_match_the_base(whisperq_eval_data, whisperq_detected_languages, whisperq_settings,
                                             whisperq_check):
    s = whisperq_settings
    model = whisperq_detected_languages("model")  # first: the model under test fails fastest
    base = whisperq_detected_languages("base")
    whisperq_check(check_language_id([u.id for u in whisperq_eval_data], [u.language for u in whisperq_eval_data],
                                     base, model, s.max_sanity_excess, s.rule()))
