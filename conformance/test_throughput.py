"""Throughput in the model card's form (requests/s, output tokens/s, RTFx, latency mean/median/p95) for
base and model, timed in interleaved rounds in the same run (pytest-benchmark keeps the rounds); floors
absolute, and relative to the base judged by the decision rule on the rounds' ratios."""

from pytest_whisperq.benchmark_rounds import record_rounds
from pytest_whisperq.checks.throughput import check_floors, check_measured, check_ratio


def _measure(benchmark, whisperq_throughput_rounds, role):
    rounds = whisperq_throughput_rounds()
    measured = rounds.combined(role)
    record_rounds(benchmark, rounds.of(role), measured)
    return rounds, measured


def test_base_throughput(benchmark, whisperq_throughput_rounds, whisperq_base, whisperq_check):
    """The base's figures, the reference the relative floor is taken against."""
    _, measured = _measure(benchmark, whisperq_throughput_rounds, "base")
    whisperq_check(check_measured(measured))


def test_model_throughput_floor(benchmark, whisperq_throughput_rounds, whisperq_model, whisperq_base,
                                whisperq_settings, whisperq_check):
    s = whisperq_settings
    rounds, measured = _measure(benchmark, whisperq_throughput_rounds, "model")
    floors = {"requests_per_second": s.min_rps, "rtfx": s.min_rtfx, "tokens_per_second": s.min_tokens_per_second}
    whisperq_check(
        check_measured(measured),
        *check_floors(measured, floors),
        check_ratio(rounds, s.min_throughput_ratio),
    )
