"""The shipped sanity tests, run by pytest on transcripts made bad on purpose (no model needed):
each failure names the sample and shows the texts."""

from __future__ import annotations

import shutil

import pytest

from pytest_whisperq.resources import conformance_dir

pytest_plugins = ["pytester"]

CONFTEST = '''
import pytest
from pytest_whisperq.checks.transcripts import measure_wer

REFS = {
    "ivr-1": "Please enter your password followed by the pound key.",
    "ivr-2": "Your call is important to us, please stay on the line.",
    "read-1": "The kettle started to whistle just as the phone rang in the hallway.",
    "read-2": "We walked along the river until the sun went down behind the hills.",
}
MODEL = {
    "ivr-1": "Please enter your password followed by the pound key. The pound key. The pound key. The pound key.",
    "ivr-2": "",
    "read-1": "Der Wasserkessel begann zu pfeifen, als das Telefon im Flur klingelte.",
}

def lower(text):
    return " ".join(text.lower().replace(",", "").replace(".", "").split())

def report(hypotheses):
    ids = list(REFS)
    return measure_wer(ids, ["ivr", "ivr", "read", "read"], [REFS[i] for i in ids],
                       [hypotheses.get(i, REFS[i]) for i in ids], lower)

@pytest.fixture(scope="session")
def whisperq_normalizer():
    return lower

@pytest.fixture(scope="session")
def whisperq_base_wer():
    return report({})

@pytest.fixture(scope="session")
def whisperq_model_wer():
    return report(MODEL)

@pytest.fixture(scope="session")
def whisperq_base_silence():
    return [("digital-silence", ""), ("noise-60dBFS", "you")]

@pytest.fixture(scope="session")
def whisperq_model_silence():
    return [("digital-silence", ""), ("noise-60dBFS", "Thank you for watching!")]
'''


def test_bad_transcripts_fail_the_sanity_tests_with_the_sample_and_texts(pytester: pytest.Pytester, tmp_path):
    pytester.makeconftest(CONFTEST)
    shutil.copy(conformance_dir() / "test_sanity.py", pytester.path / "test_sanity.py")
    result = pytester.runpytest_subprocess(f"--whisperq-cache-dir={tmp_path}", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=0, failed=6)
    result.stdout.fnmatch_lines_random([
        "*FAIL non_empty_transcripts: observed 1, limit 0",
        "*ivr-2 (ivr): empty transcript, reference 'Your call is important to us, please stay on the line.'",
        "*FAIL no_repetition_loops: observed 1, limit 0",
        "*ivr-1 (ivr): 'the pound key' repeated 4 times in a row (limit 2) | ref: *",
        "*FAIL language[[]en[]]: observed 1, limit 0",
        "*read-1 (read): identified as 'de' (p=1.00), expected 'en' | ref: * | hyp: 'Der Wasserkessel begann*",
        "*FAIL silent_on_silence: observed 1, limit 0",
        "*noise-60dBFS: 4 words on silence (base 1, allowed 1): model 'Thank you for watching!', base 'you'",
        "*FAIL close_to_reference: observed 3, limit 0",
        "*FAIL close_to_base: observed 100*, limit 50*",
    ])


def test_good_transcripts_pass_them(pytester: pytest.Pytester, tmp_path):
    pytester.makeconftest(CONFTEST.replace("return report(MODEL)", "return report({})").replace(
        '"Thank you for watching!"', '"you"'))
    shutil.copy(conformance_dir() / "test_sanity.py", pytester.path / "test_sanity.py")
    result = pytester.runpytest_subprocess(f"--whisperq-cache-dir={tmp_path}", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=6)
