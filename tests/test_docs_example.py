"""The code in docs/adding-a-check.md works as the page says: its check and its test, run by pytest
with the plugin, pass on short transcripts and fail, naming the utterance, on a long one."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]
PAGE = Path(__file__).parents[1] / "docs" / "adding-a-check.md"

CONFTEST = '''
import pytest
from pytest_whisperq.checks.transcripts import measure_wer

@pytest.fixture(scope="session")
def whisperq_model_wer():
    hypothesis = {hypothesis!r}
    return measure_wer(["u1"], ["ivr"], ["please hold"], [hypothesis], str.lower)
'''


def page_code() -> str:
    blocks = re.findall(r"```python\n(.*?)```", PAGE.read_text(), flags=re.S)
    assert len(blocks) == 2, "the page shows the check and its test"
    return "\n\n".join(blocks)


@pytest.mark.parametrize("hypothesis, outcome", [("Please hold.", "passed"), ("please hold " * 70, "failed")])
def test_the_documented_check_and_test_work(pytester, hypothesis, outcome):
    pytester.makeconftest(CONFTEST.format(hypothesis=hypothesis))
    pytester.makepyfile(test_example=page_code())
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(**{outcome: 1})
    if outcome == "failed":
        result.stdout.fnmatch_lines(["*FAIL max_words: observed 140 words, limit 120 words",
                                     "*1 of 1 transcripts are longer than 120 words; look for loops in them*",
                                     "*- u1 (ivr): 140 words | please hold please hold*"])
