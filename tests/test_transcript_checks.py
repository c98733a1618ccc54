"""The transcript checks fail when they should, and name the utterances."""

from __future__ import annotations

import pytest

from pytest_whisperq.checks.compat import check_same_architecture
from pytest_whisperq.checks.transcripts import check_wer_ceiling, measure_wer, pair_reports


def lower(text: str) -> str:
    return " ".join(text.lower().replace(",", "").replace(".", "").split())


def report(hypotheses: list[str]):
    references = ["The cat sat.", "A dog ran far away", "Hello, world"]
    return measure_wer(["u1", "u2", "u3"], ["a", "a", "b"], references, hypotheses, lower)


def test_wer_counts_errors_per_utterance_and_subset():
    r = report(["the cat sat", "a dog ran away", "hello there world"])
    assert [u.errors for u in r.utterances] == [0, 1, 1] and r.words == 10
    assert r.wer_percent == 20.0 and r.subset("a").wer_percent == 12.5


def many(hypotheses: list[str], copies: int = 20):
    references = ["The cat sat.", "A dog ran far away", "Hello, world"] * copies
    return measure_wer([f"u{i}" for i in range(len(references))], ["a", "a", "b"] * copies, references,
                       hypotheses * copies, lower)


def test_wer_ceiling_passes_under_and_fails_over_with_the_worst_utterances():
    good = check_wer_ceiling(many(["the cat sat", "a dog ran far away", "hello world"]), 5.0, "all")
    assert good.ok and good.observed == 0.0
    bad = check_wer_ceiling(many(["the cat sat", "a frog swam", "hello world"]), 5.0, "all")
    assert not bad.ok and bad.observed == 40.0 and bad.limit == 5.0 and bad.outcome == "fail"
    assert "u1: 4 errors / 5 words" in bad.evidence[0] and "per subset: a 50.00% (80/160)" in bad.detail
    assert bad.describe().startswith("FAIL wer[all]: observed 40%, limit 5%, interval [")
    few = check_wer_ceiling(report(["the cat sat", "a dog ran far away", "hello world"]), 5.0, "all")
    assert few.outcome == "inconclusive"  # three utterances cannot show a WER under a ceiling


def test_reports_pair_by_id_and_refuse_different_utterances():
    base = report(["the cat sat", "a dog", "hello"])
    shuffled = measure_wer(["u3", "u1", "u2"], ["b", "a", "a"], ["Hello, world", "The cat sat.", "A dog ran far away"],
                           ["hello world", "the cat sat", "a dog ran far away"], lower)
    assert [(b.id, m.id) for b, m in pair_reports(base, shuffled)] == [("u3", "u3"), ("u1", "u1"), ("u2", "u2")]
    fewer = measure_wer(["u1"], ["a"], ["The cat sat."], ["the cat"], lower)
    with pytest.raises(ValueError, match=r"different utterances \(only base: \['u2', 'u3'\]"):
        pair_reports(base, fewer)
    other_ref = measure_wer(["u1", "u2", "u3"], ["a", "a", "b"], ["The cat", "A dog ran far away", "Hello, world"],
                            ["x", "y", "z"], lower)
    with pytest.raises(ValueError, match="u1: base and model were scored against different references"):
        pair_reports(base, other_ref)


def test_architecture_difference_is_named():
    base = {"d_model": 512, "vocab_size": 51865, "decoder_layers": 6}
    assert check_same_architecture(dict(base), base).ok
    result = check_same_architecture({**base, "vocab_size": 51864}, base)
    assert not result.ok and result.evidence == ["vocab_size: model 51864, base 51865"]
