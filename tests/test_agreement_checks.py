"""Cross-backend agreement compares two stacks' transcripts of the same checkpoint."""

from __future__ import annotations

import pytest

pytest_plugins = ["pytester"]

from pytest_whisperq.backends import Hypothesis
from pytest_whisperq.checks.agreement import check_backend_agreement


def lower(text: str) -> str:
    return " ".join(text.lower().replace(",", "").replace(".", "").split())


def hyps(texts: dict[str, str]) -> list[Hypothesis]:
    return [Hypothesis(id, text, (), 0.1, 1) for id, text in texts.items()]


TEXTS = {
    "u1": "Please enter your password, followed by the pound key.",
    "u2": "Your call is important to us.",
    "u3": "The kettle started to whistle.",
}


def test_identical_transcripts_agree_even_when_spelled_differently():
    other = {**TEXTS, "u1": "please enter your password followed by the pound key"}
    result = check_backend_agreement("transformers", "vllm", hyps(TEXTS), hyps(other), lower, 2.0)
    assert result.ok and result.observed == 0.0
    assert "3 of 3 transcripts identical after normalisation; 0 word edits in 20 words" in result.detail
    assert result.evidence == []


def test_a_diverging_stack_fails_naming_the_utterances_worst_first():
    other = {**TEXTS, "u2": "Your call is not important.", "u3": "The kettle started to whistle whistle."}
    result = check_backend_agreement("transformers", "vllm-server", hyps(TEXTS), hyps(other), lower, 2.0)
    assert not result.ok
    assert result.name == "backends_agree[vllm-server]"
    assert result.observed == pytest.approx(100 * 4 / 20, abs=0.01)  # u2: +not, -to, -us; u3: +whistle
    assert result.evidence[0].startswith("u2: 3 edits in 6 words | transformers: Your call is important to us. "
                                         "| vllm-server: Your call is not important.")
    assert result.evidence[1].startswith("u3: 1 edits in 5 words")
    assert "--whisperq-max-backend-disagreement" in result.detail


def test_the_limit_is_inclusive_and_pooled():
    other = {**TEXTS, "u3": "The kettle started to whistle loudly."}  # 1 edit in 20 words = 5%
    assert check_backend_agreement("transformers", "vllm", hyps(TEXTS), hyps(other), lower, 5.0).ok
    assert not check_backend_agreement("transformers", "vllm", hyps(TEXTS), hyps(other), lower, 4.9).ok


def test_nothing_to_compare_is_a_failure_not_a_pass():
    empty = {"u1": "", "u2": ""}
    result = check_backend_agreement("transformers", "vllm", hyps(empty), hyps(empty), lower, 2.0)
    assert not result.ok and "no words to compare" in result.detail


def test_different_utterance_sets_are_refused():
    with pytest.raises(ValueError, match="different utterances"):
        check_backend_agreement("transformers", "vllm", hyps(TEXTS), hyps({"u1": "x"}), lower, 2.0)



def test_agreement_with_the_runs_own_backend_is_a_usage_error(pytester):
    pytester.makepyfile("def test_nothing():\n    pass\n")
    result = pytester.runpytest("--whisperq-agreement-backend=transformers")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--whisperq-agreement-backend=transformers is the run's own backend*'none'*"])
