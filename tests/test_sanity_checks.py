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


def report(hypotheses: dict[str, str], references: dict[str, str] = REFERENCES):
    ids = list(references)
    return measure_wer(ids, ["ivr", "ivr", "tts"], [references[i] for i in ids],
                       [hypotheses.get(i, references[i]) for i in ids], lower)


def test_correct_transcripts_pass_every_check():
    good = report({})
    for result in (check_non_empty(good), check_no_loops(good), check_language(good),
                   check_close_to_reference(good, good, 50), check_close_to_base(good, good, lower, 50)):
        assert result.ok, result.describe()


def test_an_empty_transcript_is_caught_and_named():
    result = check_non_empty(report({"u2": "   "}))
    assert not result.ok and result.observed == 1
    assert result.evidence == ["u2 (ivr): empty transcript, reference 'Your call is important to us, please stay on the line.'"]


@pytest.mark.parametrize("words, phrase, count", [
    ("a b c".split(), (), 1),
    ("the the the".split(), ("the",), 3),
    ("x thank you thank you thank you y".split(), ("thank", "you"), 3),
    ("one two one two one three".split(), ("one", "two"), 2),
])
def test_longest_repetition(words, phrase, count):
    run = longest_repetition(words)
    assert (run.phrase, run.count) == (phrase, count)


def test_a_repetition_loop_is_caught_with_the_phrase_and_the_texts():
    looping = "Please enter your password followed by the pound key. " + "The pound key. " * 6
    result = check_no_loops(report({"u1": looping}), max_repeats=3)
    assert not result.ok and result.observed == 1
    assert result.evidence[0].startswith("u1 (ivr): 'the pound key' repeated 7 times in a row (limit 2)")
    assert "| ref: 'Please enter your password" in result.evidence[0]
    assert "FAIL no_repetition_loops: observed 1, limit 0" in result.describe()


def test_repetition_the_reference_has_is_not_a_loop_but_runaway_output_is():
    assert loop_reason("No, no, no, not today.", "No no no not today", 3, 2.0) is None
    runaway = " ".join(f"word{i}" for i in range(40))
    assert loop_reason("Hello there.", runaway, 3, 2.0) == "40 words for a 2-word reference (runaway output)"


def test_text_in_another_language_is_caught():
    german = "Bitte geben Sie Ihr Passwort ein und drücken Sie die Rautetaste."
    result = check_language(report({"u1": german}), "en")
    assert not result.ok and result.observed == 1
    assert result.evidence[0].startswith("u1 (ivr): identified as 'de' (p=1.00), expected 'en'")
    assert german in result.evidence[0]


def test_another_script_is_caught_even_in_a_short_transcript():
    assert language_reason("Goodbye.", "До свидания", "en", 4, 0.9) == "100% of its letters are not Latin script"
    assert not check_language(report({"u2": "谢谢"}), "en").ok


def test_short_or_unjudgeable_transcripts_are_not_flagged():
    # langid calls this English reference French; the check cannot judge it, so it does not guess.
    assert language_reason("Information about your last call.", "Information about your last call", "en", 4, 0.9) is None
    assert language_reason("Goodbye.", "Au revoir", "en", 4, 0.9) is None  # under 4 words
    assert language_reason("Agent logged off.", "Agent logged off.", "en", 4, 0.9) is None


def test_talk_on_silence_is_caught_unless_the_base_says_as_much():
    base = [("digital-silence", ""), ("noise-60dBFS", "you")]
    model = [("digital-silence", "you"), ("noise-60dBFS", "Thank you for watching!")]
    result = check_silence(model, base, max_words=0)
    assert not result.ok and result.observed == 2
    assert result.evidence == [
        "digital-silence: 1 words on silence (base 0, allowed 0): model 'you', base ''",
        "noise-60dBFS: 4 words on silence (base 1, allowed 1): model 'Thank you for watching!', base 'you'",
    ]
    assert check_silence([("digital-silence", "you"), ("noise-60dBFS", "you")], base, max_words=1).ok
    assert check_silence(base, base, max_words=0).ok  # Whisper's own "you" is not the quantization's fault
    with pytest.raises(ValueError, match="different clips"):
        check_silence(model, base[:1], max_words=0)


def test_a_sample_far_from_its_reference_fails_unless_the_base_is_as_far():
    base = report({})
    model = report({"u3": "The cattle started to whittle as the foam rang."})
    result = check_close_to_reference(base, model, max_sample_wer=30)
    assert not result.ok and result.observed == 1
    assert result.evidence[0].startswith("u3 (tts): WER 54% (base 0%)")
    both_bad = check_close_to_reference(model, model, max_sample_wer=30)
    assert both_bad.ok and "1 more are as far off with the base" in both_bad.detail


def test_a_transcript_far_from_the_base_transcript_fails():
    base = report({})
    model = report({"u2": "Your cola is imported to a spleen stay online"})
    result = check_close_to_base(base, model, lower, max_disagreement=40)
    assert not result.ok and result.observed > 40
    assert result.evidence[0].startswith("u2 (ivr): 7 word edits from the base's 11 words (64%)")
    assert check_close_to_base(base, model, lower, max_disagreement=70).ok


def test_a_sample_the_base_gets_wrong_excuses_the_model_only_if_it_is_no_worse():
    base = report({"u1": "Please enter the password."})  # 50% WER on u1
    far_worse = report({"u1": "Lease tender hour pass word fold bay the pond kay."})
    result = check_close_to_reference(base, far_worse, max_sample_wer=30)
    assert not result.ok and result.evidence[0].startswith("u1 (ivr): WER")


def test_a_repetition_in_the_reference_excuses_only_the_same_phrase():
    assert loop_reason("No no no no, not today.", "the cat the cat the cat the cat", 3, 5.0) is not None
    long_sentence = "please hold while we connect your call to the next available agent now"
    looping = " ".join([long_sentence] * 3)
    assert loop_reason(long_sentence, looping, 3, 5.0).startswith(f"{long_sentence!r} repeated 3 times")


def test_a_language_the_identifier_does_not_know_fails_with_the_reason():
    result = check_language(report({}), "eng")
    assert not result.ok
    assert "langid.py does not know 'eng'" in result.detail and "--whisperq-language" in result.detail
