"""Throughput in the model card's form (requests/s, output tokens/s, RTFx, latency mean/median/p95),
measured with pytest-benchmark for base and model in the same run; floors absolute and relative."""

import pytest

from pytest_whisperq.checks.throughput import check_floor, check_measured, check_ratio
from pytest_whisperq.errors import WhisperqError


def _measure(benchmark, whisperq_session, role):
    try:
        result = benchmark.pedantic(whisperq_session.throughput, args=(role,), rounds=1, iterations=1)
    except WhisperqError as error:
        pytest.fail(f"{type(error).__name__}: {error}", pytrace=False)
    benchmark.extra_info.update(result.figures())
    return result


def test_base_throughput(benchmark, whisperq_session, whisperq_base, whisperq_check):
    """The base's figures, the reference the relative floor is taken against."""
    whisperq_check(check_measured(_measure(benchmark, whisperq_session, "base")))


def test_model_throughput_floor(benchmark, whisperq_session, whisperq_model, whisperq_base, whisperq_settings,
                                whisperq_check):
    s = whisperq_settings
    result = _measure(benchmark, whisperq_session, "model")
    whisperq_check(
        check_measured(result),
        check_floor(result, "requests_per_second", s.min_rps),
        check_floor(result, "rtfx", s.min_rtfx),
        check_floor(result, "tokens_per_second", s.min_tokens_per_second),
        check_ratio(result, whisperq_session.throughput("base"), s.min_throughput_ratio),
    )
