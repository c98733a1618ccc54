"""The transcript checks fail when they should, and name the utterances."""

from __future__ import annotations

from pytest_whisperq.checks.compat import check_same_architecture
from pytest_whisperq.checks.transcripts import check_non_empty, check_wer_ceiling, measure_wer


def lower(text: str) -> str:
    return " ".join(text.lower().replace(",", "").replace(".", "").split())


def report(hypotheses: list[str]):
    references = ["The cat sat.", "A dog ran far away", "Hello, world"]
    return measure_wer(["u1", "u2", "u3"], ["a", "a", "b"], references, hypotheses, lower)


def test_wer_counts_errors_per_utterance_and_subset():
    r = report(["the cat sat", "a dog ran away", "hello there world"])
    assert [u.errors for u in r.utterances] == [0, 1, 1] and r.words == 10
    assert r.wer_percent == 20.0 and r.subset("a").wer_percent == 12.5


def test_wer_ceiling_passes_under_and_fails_over_with_the_worst_utterances():
    good = check_wer_ceiling(report(["the cat sat", "a dog ran far away", "hello world"]), 5.0, "all")
    assert good.ok and good.observed == 0.0
    bad = check_wer_ceiling(report(["the cat sat", "a frog swam", "hello world"]), 5.0, "all")
    assert not bad.ok and bad.observed == 40.0 and bad.limit == 5.0
    assert "u2: 4 errors / 5 words" in bad.evidence[0] and "per subset: a 50.00% (4/8)" in bad.detail
    assert "FAIL wer[all]: observed 40%, limit 5%" in bad.describe()


def test_empty_transcript_is_caught_and_named():
    result = check_non_empty(report(["the cat sat", "   ", "hello world"]))
    assert not result.ok and result.observed == 1
    assert result.evidence == ["u2 (a): reference 'A dog ran far away'"]
    assert check_non_empty(report(["the cat sat", "a dog", "hello"])).ok


def test_architecture_difference_is_named():
    base = {"d_model": 512, "vocab_size": 51865, "decoder_layers": 6}
    assert check_same_architecture(dict(base), base).ok
    result = check_same_architecture({**base, "vocab_size": 51864}, base)
    assert not result.ok and result.evidence == ["vocab_size: model 51864, base 51865"]
