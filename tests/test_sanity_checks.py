"""Transcript sanity checks catch loops, empty and wrong-language transcripts, talk on silence, and
transcripts far from the reference or the base, and name the sample with its texts."""

from __future__ import annotations

import pytest

from pytest_whisperq.checks.sanity import (
    check_close_to_base,
    check_close_to_reference,
    check_language,
    check_no_loops,
    check_non_empty,
    check_silence,
    language_reason,
    longest_repetition,
    loop_reason,
)
from pytest_whisperq.checks.transcripts import measure_wer


def lower(text: str) -> str:
    return " ".join(text.lower().replace(",", "").replace(".", "").split())


REFERENCES = {
    "u1": "Please enter your password followed by the pound key.",
    "u2": "Your call is important to us, please stay on the line.",
    "u3": "The kettle started to whistle just as the phone rang in the hallway.",
}
FILLER = 397  # correct utterances beside the three above: a pool the rule can judge at a 1-point limit (400)


def report(hypotheses: dict[str, str], references: dict[str, str] = REFERENCES, filler: int = FILLER,
           languages: dict[str, str] | None = None):
    references = {**references, **{f"f{i:03d}": f"this is sentence number {i} of the pool" for i in range(filler)}}
    ids = list(references)
    subsets = ["ivr", "ivr", "tts"] + ["fill"] * (len(ids) - 3)
    return measure_wer(ids, subsets, [references[i] for i in ids], [hypotheses.get(i, references[i]) for i in ids], lower,
                       [(languages or {}).get(i, "en") for i in ids])


def test_correct_transcripts_pass_every_check():
    good = report({})
    for result in (check_non_empty(good, good), check_no_loops(good, good), check_language(good, good),
                   check_close_to_reference(good, good, 50), check_close_to_base(good, good, lower, 50)):
        assert result.ok and result.outcome == "pass", result.describe()


def test_empty_transcripts_the_model_adds_fail_and_are_named():
    empties = {"u2": "   ", **{f"f{i:03d}": "" for i in range(11)}}  # 5 of 100: 5 points over the base
    result = check_non_empty(report({}), report(empties), limit=1.0)
    assert result.outcome == "fail" and result.observed == 3.0
    assert result.evidence[0].startswith("u2 (ivr): empty | ref: 'Your call is important to us, please stay on the line.'")
    assert "model 12, base 0 of 400 utterances" in result.detail


def test_empty_transcripts_the_base_has_too_do_not_fail_the_model():
    empties = {f"f{i:03d}": "" for i in range(6)}
    same = check_non_empty(report(empties), report(empties), limit=1.0)
    assert same.outcome == "pass" and same.observed == 0.0
    assert same.evidence[0].startswith("(base too) f000 (fill): empty")


def test_one_odd_sample_in_a_large_pool_passes_and_is_still_listed():
    result = check_non_empty(report({}), report({"u2": ""}), limit=1.0)
    assert result.outcome == "pass" and result.observed == 0.25
    assert result.evidence[0].startswith("u2 (ivr): empty")


def test_a_tiny_pool_is_inconclusive_never_a_pass():
    result = check_non_empty(report({}, filler=0), report({}, filler=0), limit=1.0)  # 3 utterances
    assert result.outcome == "inconclusive" and not result.ok
    assert "too few utterances (3, at least 30 to pass)" in result.detail
    assert result.evidence[0].startswith("to decide: about ")


@pytest.mark.parametrize("words, phrase, count", [
    ("a b c".split(), (), 1),
    ("the the the".split(), ("the",), 3),
    ("x thank you thank you thank you y".split(), ("thank", "you"), 3),
    ("one two one two one three".split(), ("one", "two"), 2),
])
def test_longest_repetition(words, phrase, count):
    run = longest_repetition(words)
    assert (run.phrase, run.count) == (phrase, count)


def test_repetition_loops_the_model_adds_are_caught_with_the_phrase_and_the_texts():
    looping = "Please enter your password followed by the pound key. " + "The pound key. " * 6
    loops = {"u1": looping, **{f"f{i:03d}": "sentence number " * 5 for i in range(11)}}
    result = check_no_loops(report({}), report(loops), max_repeats=3)
    assert result.outcome == "fail" and result.observed == 3.0
    assert result.evidence[0].startswith("u1 (ivr): 'the pound key' repeated 7 times in a row (limit 2)")
    assert "| ref: 'Please enter your password" in result.evidence[0]
    assert result.describe().startswith("FAIL no_repetition_loops: observed 3 points, limit 1 points, interval [")


def test_loops_the_base_has_as_well_do_not_fail_the_model():
    loops = {f"f{i:03d}": "sentence number " * 5 for i in range(5)}
    result = check_no_loops(report(loops), report(loops), max_repeats=3)
    assert result.outcome == "pass" and "model 5, base 5 of 400" in result.detail


def test_repetition_the_reference_has_is_not_a_loop_but_runaway_output_is():
    assert loop_reason("No, no, no, not today.", "No no no not today", 3, 2.0) is None
    runaway = " ".join(f"word{i}" for i in range(40))
    assert loop_reason("Hello there.", runaway, 3, 2.0) == "40 words for a 2-word reference (runaway output)"


def test_text_in_another_language_is_caught():
    german = "Bitte geben Sie Ihr Passwort ein und drücken Sie die Rautetaste."
    wrong = {"u1": german, **{f"f{i:03d}": "Dies ist Satz Nummer drei des Pools, sagte er." for i in range(11)}}
    result = check_language(report({}), report(wrong), "en")
    assert result.outcome == "fail" and result.observed == 3.0
    assert result.evidence[0].startswith("u1 (ivr, en): identified as 'de' (p=1.00), expected 'en'")
    assert german in result.evidence[0]


def test_another_script_is_caught_even_in_a_short_transcript():
    assert language_reason("Goodbye.", "До свидания", "en", 4, 0.9) == "100% of its letters are not Latin script"
    chinese = {"u2": "谢谢", **{f"f{i:03d}": "谢谢" for i in range(11)}}
    assert check_language(report({}), report(chinese), "en").outcome == "fail"


def test_short_or_unjudgeable_transcripts_are_not_flagged():
    # langid calls this English reference French; the check cannot judge it, so it does not guess.
    assert language_reason("Information about your last call.", "Information about your last call", "en", 4, 0.9) is None
    assert language_reason("Goodbye.", "Au revoir", "en", 4, 0.9) is None  # under 4 words
    assert language_reason("Agent logged off.", "Agent logged off.", "en", 4, 0.9) is None


def test_talk_on_silence_is_judged_against_the_base_on_the_same_clips():
    clips = [f"clip{i:02d}" for i in range(32)]
    base = [(clip, "you" if i < 10 else "") for i, clip in enumerate(clips)]
    talkative = [(clip, "Thank you for watching!" if i < 20 else "") for i, clip in enumerate(clips)]
    result = check_silence(talkative, base, max_words=0, limit=10)
    assert result.outcome == "fail" and result.observed == 31.25  # 10 more clips of 32
    assert result.evidence[0] == "clip10: model 'Thank you for watching!' (4 words), base ''"
    assert check_silence(base, base, max_words=0, limit=10).outcome == "pass"  # Whisper's own "you"
    with pytest.raises(ValueError, match="different clips"):
        check_silence(talkative, base[:1], max_words=0)


def test_samples_far_from_their_reference_count_against_the_model_only_beyond_the_base():
    far = {"u3": "The cattle started to whittle as the foam rang.",
           **{f"f{i:03d}": "this is a cat" for i in range(11)}}
    result = check_close_to_reference(report({}), report(far), max_sample_wer=30)
    assert result.outcome == "fail" and result.observed == 3.0
    assert result.evidence[0].startswith("u3 (tts): WER 54% (base 0%)")
    both_bad = check_close_to_reference(report(far), report(far), max_sample_wer=30)
    assert both_bad.outcome == "pass" and "model 12, base 12 of 400" in both_bad.detail


def test_transcripts_far_from_the_base_count_against_the_one_further_from_the_reference():
    strayed = {"u2": "Your cola is imported to a spleen stay online",
               **{f"f{i:03d}": "the sentence is not here" for i in range(11)}}
    result = check_close_to_base(report({}), report(strayed), lower, max_disagreement=40)
    assert result.outcome == "fail" and result.observed == 3.0
    assert result.evidence[0].startswith("u2 (ivr): 7 word edits from the base's 11 words (64%), errors base 0, model")
    # the same disagreements with the roles swapped: the base was the one further off, the model is fine
    assert check_close_to_base(report(strayed), report({}), lower, max_disagreement=40).outcome == "pass"
    assert check_close_to_base(report({}), report(strayed), lower, max_disagreement=70).observed == 2.75


def test_a_repetition_in_the_reference_excuses_only_the_same_phrase():
    assert loop_reason("No no no no, not today.", "the cat the cat the cat the cat", 3, 5.0) is not None
    long_sentence = "please hold while we connect your call to the next available agent now"
    looping = " ".join([long_sentence] * 3)
    assert loop_reason(long_sentence, looping, 3, 5.0).startswith(f"{long_sentence!r} repeated 3 times")


def test_a_language_the_identifier_does_not_know_fails_with_the_reason():
    result = check_language(report({}, languages={"u1": "eng"}), report({}, languages={"u1": "eng"}), "en")
    assert not result.ok and result.name == "language[en,eng]"
    assert "langid.py does not know eng" in result.detail and "--whisperq-language" in result.detail
