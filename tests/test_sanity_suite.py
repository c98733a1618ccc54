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
REFS.update({f"fill-{i:03d}": f"this is sentence number {i} of the pool" for i in range(396)})  # 400 utterances
BAD = {  # each failure mode on 20 utterances (5 points of 400): beyond the 2-point limit
    "ivr-1": "Please enter your password followed by the pound key. The pound key. The pound key. The pound key.",
    "ivr-2": "",
    "read-1": "Der Wasserkessel begann zu pfeifen, als das Telefon im Flur klingelte.",
}
for i in range(0, 19):
    BAD[f"fill-{i:03d}"] = "sentence number " * 6
for i in range(19, 38):
    BAD[f"fill-{i:03d}"] = ""
for i in range(38, 57):
    BAD[f"fill-{i:03d}"] = "Dies ist der Satz mit der Nummer drei in dem Pool, sagte er."
BASE_TOO = {}  # what the base itself gets wrong: the model is not blamed for it
CLIPS = [f"clip-{i:02d}" for i in range(32)]

def lower(text):
    return " ".join(text.lower().replace(",", "").replace(".", "").split())

def report(hypotheses):
    ids = list(REFS)
    return measure_wer(ids, ["ivr", "ivr", "read", "read"] + ["fill"] * (len(ids) - 4), [REFS[i] for i in ids],
                       [hypotheses.get(i, REFS[i]) for i in ids], lower)

@pytest.fixture(scope="session")
def whisperq_normalizer():
    return lower

class Long:  # fill-000 (a loop in BAD) and the last six are long-form files
    def __init__(self, uid):
        self.id, self.long_form = uid, uid in LONG

LONG = {"fill-000", *(f"fill-{i:03d}" for i in range(390, 396))}

@pytest.fixture(scope="session")
def whisperq_eval_data():
    return [Long(uid) for uid in REFS]

@pytest.fixture(scope="session")
def whisperq_base_wer():
    return report(BASE_TOO)

@pytest.fixture(scope="session")
def whisperq_model_wer():
    return report(BAD)

@pytest.fixture(scope="session")
def whisperq_base_silence():
    return [(clip, "you" if i < 4 else "") for i, clip in enumerate(CLIPS)]

@pytest.fixture(scope="session")
def whisperq_model_silence():
    return [(clip, "Thank you for watching!" if i < 12 else "") for i, clip in enumerate(CLIPS)]
'''


def test_bad_transcripts_fail_the_sanity_tests_with_the_sample_and_texts(pytester: pytest.Pytester, tmp_path):
    pytester.makeconftest(CONFTEST)
    shutil.copy(conformance_dir() / "test_sanity.py", pytester.path / "test_sanity.py")
    result = pytester.runpytest_subprocess(f"--whisperq-cache-dir={tmp_path}", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=0, failed=7)
    result.stdout.fnmatch_lines_random([
        "*FAIL non_empty_transcripts: observed 5 points, limit 2 points, interval [[]+*, +*[]]*",
        "*ivr-2 (ivr): empty | ref: 'Your call is important to us, please stay on the line.' | base: * | model: ''",
        "*FAIL no_repetition_loops: observed 5 points, limit 2 points*",
        "*ivr-1 (ivr): 'the pound key' repeated 4 times in a row (limit 2) | ref: *",
        "*FAIL language[[]en[]]: observed 5 points, limit 2 points*",
        "*read-1 (read, en): identified as 'de' (p=1.00), expected 'en' | ref: * | base: * | model: 'Der Wasserkessel begann*",
        "*FAIL silent_on_silence: observed 25 points, limit 10 points*",
        "*clip-04: model 'Thank you for watching!' (4 words), base ''",
        "*FAIL close_to_reference: observed 15 points, limit 2 points*",
        "*FAIL close_to_base: observed 15 points, limit 2 points*",
        "*FAIL long_form: observed 1 files, limit 0 files*",
        "*fill-000 (en, 8 words): errors base 0, model 10; *: loop: 'sentence number' repeated 6 times in a row (limit 2)*",
    ])


def test_the_base_s_own_failures_do_not_fail_the_model(pytester: pytest.Pytester, tmp_path):
    """The base leaves the same transcripts empty, looping and in German: the model adds nothing, so every
    sanity test passes, and each case is still listed as the base's too."""
    pytester.makeconftest(CONFTEST.replace("BASE_TOO = {}", "BASE_TOO = BAD").replace(
        '"you" if i < 4', '"Thank you for watching!" if i < 12'))
    shutil.copy(conformance_dir() / "test_sanity.py", pytester.path / "test_sanity.py")
    result = pytester.runpytest_subprocess(f"--whisperq-cache-dir={tmp_path}", "-p", "no:cacheprovider", "-rA")
    result.assert_outcomes(passed=7)
    result.stdout.fnmatch_lines_random(["PASS non_empty_transcripts 0.0 points *", "PASS no_repetition_loops 0.0 points *",
                                        "*model 20, base 20 of 400 utterances*"])


def test_good_transcripts_pass_them(pytester: pytest.Pytester, tmp_path):
    pytester.makeconftest(CONFTEST.replace("return report(BAD)", "return report({})").replace(
        '"Thank you for watching!" if i < 12', '"you" if i < 4'))
    shutil.copy(conformance_dir() / "test_sanity.py", pytester.path / "test_sanity.py")
    result = pytester.runpytest_subprocess(f"--whisperq-cache-dir={tmp_path}", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=7)
