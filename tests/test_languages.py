"""Languages and audio length: the language per utterance (data, hub keys), scoring by characters where
words have no spaces, character loops, long-form gaps, and a real model broken in one language only."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import soundfile

from pytest_whisperq.checks.accuracy import check_wer_delta, speech_pools
from pytest_whisperq.checks.long_form import check_long_form, gaps
from pytest_whisperq.checks.sanity import check_language, loop_reason
from pytest_whisperq.checks.transcripts import measure_wer
from pytest_whisperq.data import load_local_dataset
from pytest_whisperq.dataspec import parse_data_spec
from pytest_whisperq.errors import ConfigError, DataError
from pytest_whisperq.resources import default_eval_dir, fixtures_dir, multilingual_eval_dir

pytest_plugins = ["pytester"]


def lower(text: str) -> str:
    return " ".join(text.lower().replace(",", "").replace(".", "").split())


def write_folder(root: Path, rows: list[dict[str, str]], seconds: float = 1.0) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for row in rows:
        soundfile.write(root / row["file"], (0.1 * rng.standard_normal(int(16000 * seconds))).astype(np.float32), 16000)
    columns = sorted({key for row in rows for key in row})
    with open(root / "metadata.tsv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, columns, delimiter="\t", lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    return root


# --- the language of each utterance ----------------------------------------------------------------

def test_a_language_column_sets_each_row_s_language_and_the_run_s_fills_the_rest(tmp_path):
    folder = write_folder(tmp_path / "d", [{"file": "a.wav", "text": "hola", "language": "es"},
                                           {"file": "b.wav", "text": "hello", "language": ""}])
    assert [u.language for u in load_local_dataset(folder, language="fr")] == ["es", "fr"]


def test_a_language_that_is_not_a_code_is_refused_with_the_row(tmp_path):
    folder = write_folder(tmp_path / "d", [{"file": "a.wav", "text": "hola", "language": "Spanish"}])
    with pytest.raises(DataError, match=r"metadata.tsv:2: language 'Spanish' is not an ISO 639-1 code"):
        load_local_dataset(folder)


def test_hub_sources_name_a_language_or_a_language_column():
    spec = parse_data_spec("hf:org/set?split=test&language=FR")
    assert spec.language == "fr" and str(spec).endswith("&language=fr")
    assert parse_data_spec("hf:org/set?language_column=locale").language_column == "locale"
    with pytest.raises(ConfigError, match="not both"):
        parse_data_spec("hf:org/set?language=fr&language_column=locale")
    with pytest.raises(ConfigError, match="'french' is not an ISO 639-1 code"):
        parse_data_spec("hf:org/set?language=french")


def test_calibration_audio_must_fit_one_window_while_evaluation_audio_may_be_long(tmp_path):
    folder = write_folder(tmp_path / "d", [{"file": "a.wav", "text": "a long one"}], seconds=31.0)
    [long] = load_local_dataset(folder)
    assert long.long_form
    with pytest.raises(DataError, match="longer than Whisper's 30 s window, which calibration feeds whole"):
        load_local_dataset(folder, max_seconds=30.0)


def test_the_shipped_speech_holds_long_form_files_and_four_other_languages():
    english = load_local_dataset(default_eval_dir())
    assert sum(u.long_form for u in english) == 4 and {u.speech for u in english if u.long_form} == {"long"}
    other = load_local_dataset(multilingual_eval_dir())
    counts = {language: sum(u.language == language for u in other) for language in ("es", "fr", "it", "ru")}
    assert counts == {"es": 150, "fr": 151, "it": 151, "ru": 151}
    assert sum(u.long_form for u in other) == 4
    assert len({u.id for u in english} | {u.id for u in other}) == len(english) + len(other)
    for language in ("es", "fr", "it", "ru"):
        assert (multilingual_eval_dir() / language / "NOTICE").is_file()
    assert "CC-BY" in (multilingual_eval_dir() / "NOTICE").read_text()


# --- scoring ---------------------------------------------------------------------------------------

def test_languages_without_spaces_are_scored_by_characters():
    report = measure_wer(["zh1", "en1"], ["s", "s"], ["今天天气很好", "the weather is nice"],
                         ["今天天气不好", "the weather is nice"], lower, ["zh", "en"])
    zh, en = report.utterances
    assert (zh.errors, zh.words, zh.language) == (1, 6, "zh") and (en.errors, en.words) == (0, 4)


def test_other_languages_use_the_basic_normaliser_without_diacritics():
    # the shipped Spanish texts lack accents; the model writes them: no error either way
    report = measure_wer(["es1"], ["s"], ["Por favor ingrese su numero."], ["por favor, ingrese su número"], lower, ["es"])
    assert report.utterances[0].errors == 0


def test_a_loop_in_characters_is_caught_and_a_repeated_character_is_not():
    assert loop_reason("谢谢大家", "谢谢大家谢谢大家谢谢大家谢谢大家", 3, 5.0, "zh").startswith("'谢谢大家' repeated 4 times")
    assert loop_reason("哈哈哈，太好了", "哈哈哈太好了", 3, 2.0, "zh") is None
    assert loop_reason("you", "ありがとう" * 5, 3, 2.0, "ja") is not None


def test_a_model_broken_in_one_language_fails_that_language_s_pool_alone():
    class Utt:
        def __init__(self, uid, language):
            self.id, self.speech, self.language = uid, "real", language

    ids = [f"{language}{i:03d}" for language in ("en", "fr") for i in range(100)]
    languages = [uid[:2] for uid in ids]
    references = ["please hold the line while we connect you"] * len(ids)
    base = measure_wer(ids, ["s"] * len(ids), references, references, lower, languages)
    broken = [r if uid.startswith("en") else "something else entirely" for uid, r in zip(ids, references)]
    model = measure_wer(ids, ["s"] * len(ids), references, broken, lower, languages)
    results = {pool.label: check_wer_delta(pool.label, b, m, 0.5, gated=pool.gated(("real",))).outcome
               for pool, b, m in speech_pools([Utt(i, i[:2]) for i in ids], base, model)}
    assert results == {"real:en": "pass", "real:fr": "fail", "real:all": "fail"}


def test_the_language_check_judges_each_utterance_in_its_own_language():
    ids = [f"u{i:03d}" for i in range(400)]
    texts = ["Bitte geben Sie Ihr Passwort ein und drücken Sie die Rautetaste."] * 200 + \
            ["Please enter your password followed by the pound key now."] * 200
    languages = ["de"] * 200 + ["en"] * 200
    report = measure_wer(ids, ["s"] * 400, texts, texts, lower, languages)
    result = check_language(report, report, "en", limit=2.0)
    assert result.ok and result.name == "language[en,de]"
    swapped = measure_wer(ids, ["s"] * 400, texts, texts[200:] + texts[:200], lower, languages)
    assert check_language(report, swapped, "en", limit=2.0).outcome == "fail"


# --- long-form -------------------------------------------------------------------------------------

def test_gaps_finds_the_longest_dropped_and_invented_runs():
    reference = "one two three four five six seven eight nine ten eleven twelve".split()
    found = gaps(reference, "one two eleven twelve".split())
    assert (found.dropped, found.inserted) == (8, 0) and found.dropped_text.startswith("three four")
    assert gaps(reference, reference + "seven eight nine ten".split()).inserted == 4


def test_a_window_dropped_in_long_form_fails_naming_the_file_while_the_base_s_own_gap_does_not():
    reference = " ".join(f"word{i}" for i in range(200))
    words = reference.split()
    dropped = " ".join(words[:90] + words[120:])
    ids = ["long-1", "long-2", "short"]
    base = measure_wer(ids, ["s"] * 3, [reference, reference, "hello"], [reference, dropped, "hello"], lower)
    model = measure_wer(ids, ["s"] * 3, [reference, reference, "hello"], [dropped, dropped, "hello"], lower)
    result = check_long_form(base, model, {"long-1", "long-2"}, lower)
    assert not result.ok and result.observed == 1 and "long-1" in result.detail and "long-2" not in result.detail
    assert "dropped 30 consecutive reference words (base: at most 0): 'word90 word91" in result.evidence[0]
    assert check_long_form(base, base, {"long-1"}, lower).ok
    missing = check_long_form(base, model, set(), lower)
    assert not missing.ok and "has no audio over 30 s" in missing.detail


# --- a real model broken in French only --------------------------------------------------------------

@pytest.mark.slow(cost=500)  # seconds, cold: the order under xdist (conftest.py)
def test_a_real_model_broken_in_french_fails_on_french_alone(run_suite, whisper_base_dir, tmp_path):
    """whisper-base with the <|fr|> token's embedding row replaced by <|en|>'s: English decoding is untouched,
    French decoding starts as if English. On 96 English (870 words: enough for the rule to pass an identical
    figure) and 40 French utterances, wer_delta[real:en] passes and wer_delta[real:fr] fails, named."""
    import json

    from checkpoint_factory import edited_copy
    from tests_support import data_folder

    vocabulary = json.loads((whisper_base_dir / "tokenizer.json").read_text())["added_tokens"]
    token = {entry["content"]: entry["id"] for entry in vocabulary}

    def damage_french(tensors):
        embedding = tensors["model.decoder.embed_tokens.weight"]
        embedding[token["<|fr|>"]] = embedding[token["<|en|>"]]

    broken = edited_copy(whisper_base_dir, tmp_path / "broken-fr", damage_french)
    data = data_folder(tmp_path / "data", [
        (default_eval_dir(), lambda r: r["subset"] == "ivr_prompt_held_out", 96),
        (multilingual_eval_dir(), lambda r: r.get("language") == "fr" and r["speech"] == "real", 40)])
    result = run_suite(f"--whisperq-model={broken}", "--whisperq-base=whisper-base", f"--whisperq-data={data}",
                       "-k", "wer_delta")
    result.assert_outcomes(failed=1, deselected=25)
    result.stdout.fnmatch_lines_random([
        "FAIL wer_delta[[]real:fr[]]: observed * points, limit 0.5 points, interval [[]+*, +*[]]*",
        "PASS wer_delta[[]real:en[]] *",
        "release verdict: FAIL: failed: wer_delta[[]real:fr[]]*",
    ])
    assert "FAIL wer_delta[real:en]" not in result.stdout.str()


# --- language identification (optional) ------------------------------------------------------------

def test_language_identification_counts_the_model_s_confusions_beyond_the_base_s():
    from pytest_whisperq.checks.language_id import check_language_id

    ids = [f"u{i:03d}" for i in range(400)]
    expected = ["fr"] * 200 + ["en"] * 200
    base = list(expected)
    base[0] = "en"  # the base's own confusion
    assert check_language_id(ids, expected, base, list(base), limit=2.0).outcome == "pass"
    model = ["en"] * 40 + expected[40:]
    result = check_language_id(ids, expected, base, model, limit=2.0)
    assert result.outcome == "fail" and "the model's confusions: fr->en 40; the base's: fr->en 1" in result.detail
    assert result.evidence[0] == "u001 (fr): model heard 'en', base 'fr'"


def test_language_identification_is_deselected_unless_asked_and_then_required(pytester, tmp_path):
    from pytest_whisperq.resources import conformance_dir

    shutil_copy = __import__("shutil").copy
    shutil_copy(conformance_dir() / "test_language_id.py", pytester.path / "test_language_id.py")
    result = pytester.runpytest_subprocess(f"--whisperq-cache-dir={tmp_path}", "-p", "no:cacheprovider",
                                           "--whisperq-model=whisper-tiny.en")
    result.assert_outcomes(deselected=1)
    result.stdout.fnmatch_lines(["*1 language-identification test(s) deselected: optional, --whisperq-language-id runs them*"])
    from pytest_whisperq.report.verdict import LANGUAGE_ID_TEST, suite_tests

    assert LANGUAGE_ID_TEST in suite_tests(conformance_dir())


def test_backends_batch_one_language_at_a_time_and_english_only_models_refuse_others():
    from pytest_whisperq.backends import BackendError, by_language, require_languages
    from pytest_whisperq.backends.vllm_offline import join_windows
    from pytest_whisperq.data import Utterance

    short, long = np.zeros(16000, np.float32), np.zeros(31 * 16000, np.float32)
    data = [Utterance("a", "s", "x", short, "real", "en"), Utterance("b", "s", "x", short, "real", "fr"),
            Utterance("c", "s", "x", long, "long", "en"), Utterance("d", "s", "x", short, "real", "en")]
    groups = by_language(data)
    assert {key: [u.id for u in group] for key, group in groups.items()} == {
        ("en", False): ["a", "d"], ("fr", False): ["b"], ("en", True): ["c"]}
    require_languages("m", True, data)
    with pytest.raises(BackendError, match="m is an English-only checkpoint, but 1 utterances are in fr"):
        require_languages("m", False, data)
    assert join_windows([" Hello there.", "General Kenobi. "], "en") == "Hello there. General Kenobi."
    assert join_windows(["你好。", "再见。"], "zh") == "你好。再见。"
