"""Throughput in the model card's form (requests/s, output tokens/s, RTFx, latency mean/median/p95),
measured with pytest-benchmark for base and model in the same run; floors absolute and relative."""

from pytest_whisperq.checks.throughput import check_floors, check_measured, check_ratio


def _measure(benchmark, whisperq_throughput, role):
    result = benchmark.pedantic(whisperq_throughput, args=(role,), rounds=1, iterations=1)
    benchmark.extra_info.update(result.figures())
    return result


def test_base_throughput(benchmark, whisperq_throughput, whisperq_base, whisperq_check):
    """The base's figures, the reference the relative floor is taken against."""
    whisperq_check(check_measured(_measure(benchmark, whisperq_throughput, "base")))


def test_model_throughput_floor(benchmark, whisperq_throughput, whisperq_model, whisperq_base, whisperq_settings,
                                whisperq_check):
    s = whisperq_settings
    result = _measure(benchmark, whisperq_throughput, "model")
    floors = {"requests_per_second": s.min_rps, "rtfx": s.min_rtfx, "tokens_per_second": s.min_tokens_per_second}
    whisperq_check(
        check_measured(result),
        *check_floors(result, floors),
        check_ratio(result, whisperq_throughput("base"), s.min_throughput_ratio),
    )
