"""Command line: `python -m pytest_whisperq COMMAND`.

  fetch MODEL        resolve a model (built-in, hub id or directory) and print its local path
  suite-path         print the directory of the installed conformance suite
  check MODEL [...]  run the conformance suite on MODEL (extra arguments go to pytest)
  quantize BASE OUT  quantize BASE with llm-compressor (W4A16 GPTQ, or --scheme) (cached) and copy it to OUT
  fidelity MODEL BASE  each quantized Linear's error against the base and its round-to-nearest floor
  resolution REPORT  what a run's evaluation data can tell apart: the WER gate's operating
                     characteristic, simulated on the report's per-utterance errors
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pytest_whisperq.cache import Cache, default_cache_root
from pytest_whisperq.errors import ConfigError, WhisperqError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pytest_whisperq", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    fetch = commands.add_parser("fetch", help="resolve a model and print its local checkpoint directory")
    fetch.add_argument("model", help="built-in name, org/name[@revision], or a directory")
    fetch.add_argument("--cache-dir", type=Path, default=None)
    fetch.add_argument("--allow-pickle", action="store_true")
    commands.add_parser("suite-path", help="print where the conformance suite is installed")
    check = commands.add_parser("check", help="run the conformance suite on a model")
    check.add_argument("model")
    quantize = commands.add_parser("quantize", help="quantize with llm-compressor, as the quantize fixture does it")
    quantize.add_argument("base", help="built-in name, org/name[@revision], or a directory")
    quantize.add_argument("out", type=Path, help="directory to write (must not exist or be empty)")
    quantize.add_argument("--calib-data", default=None, help="folder with metadata.tsv or hf:NAME?split=...")
    quantize.add_argument("--samples", type=int, default=None, help="calibration utterances (default: 32)")
    quantize.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    quantize.add_argument("--scheme", default=None,
                          help="compressed-tensors preset: W4A16 (default), W4A16_ASYM, W8A16, W8A8, FP8, FP8_DYNAMIC, ...")
    quantize.add_argument("--group-size", default=None, help="the weights' group size (default: the preset's)")
    quantize.add_argument("--actorder", default=None, choices=("static", "weight"),
                          help="GPTQ's column order (default: llm-compressor's, static)")
    quantize.add_argument("--cache-dir", type=Path, default=None)
    fidelity = commands.add_parser("fidelity", help="each quantized layer's error and its round-to-nearest floor")
    fidelity.add_argument("model", help="the quantized checkpoint: built-in name, org/name[@revision], or a directory")
    fidelity.add_argument("base", help="its base, the same ways")
    fidelity.add_argument("--cache-dir", type=Path, default=None)
    fidelity.add_argument("--top", type=int, default=10, help="layers listed, furthest first (default: 10)")
    resolution = commands.add_parser("resolution", help="simulate the WER gate's error rates on a report's data")
    resolution.add_argument("report", type=Path, help="a JSON report (--whisperq-json) of a run that measured WER")
    resolution.add_argument("--pool", default="real", help="speech pool to simulate (default: real)")
    resolution.add_argument("--limit", type=float, default=None, help="WER delta limit (default: the report's)")
    resolution.add_argument("--runs", type=int, default=2000, help="simulated runs per true delta (default: 2000)")
    resolution.add_argument("--png", type=Path, default=None, help="draw the operating characteristic here")
    args, extra = parser.parse_known_args(argv)
    if extra and args.command != "check":
        parser.error(f"unrecognized arguments: {' '.join(extra)}")

    try:
        if args.command == "fetch":
            from pytest_whisperq.models.resolve import resolve
            from pytest_whisperq.models.spec import parse_model_spec

            cache = Cache(args.cache_dir or default_cache_root())
            print(resolve(parse_model_spec(args.model), cache, args.allow_pickle).path)
            return 0
        if args.command == "quantize":
            return _quantize(args)
        if args.command == "resolution":
            return _resolution(args)
        if args.command == "fidelity":
            return _fidelity(args)
        from pytest_whisperq.resources import conformance_dir

        if args.command == "suite-path":
            print(conformance_dir())
            return 0
        import pytest

        return int(pytest.main([str(conformance_dir()), f"--whisperq-model={args.model}", *extra]))
    except WhisperqError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


def _quantize(args: argparse.Namespace) -> int:
    import shutil

    from pytest_whisperq.cache import MANIFEST_NAME
    from pytest_whisperq.session import WhisperqSession
    from pytest_whisperq.settings import build_settings

    if args.out.exists() and (not args.out.is_dir() or any(args.out.iterdir())):
        print(f"error: {args.out} exists and is not an empty directory; refusing to overwrite it", file=sys.stderr)
        return 2
    # The CLI's values go through the same parsing and defaults as the plugin's ini keys.
    cli: dict[str, object] = {}
    ini = {"whisperq_base": args.base, "whisperq_device": args.device, "whisperq_calib_data": args.calib_data,
           "whisperq_calib_samples": None if args.samples is None else str(args.samples),
           "whisperq_scheme": args.scheme, "whisperq_group_size": args.group_size, "whisperq_actorder": args.actorder,
           "whisperq_cache_dir": None if args.cache_dir is None else str(args.cache_dir)}
    flags = {"whisperq_base": "BASE", "whisperq_device": "--device", "whisperq_calib_data": "--calib-data",
             "whisperq_calib_samples": "--samples", "whisperq_scheme": "--scheme", "whisperq_group_size": "--group-size",
             "whisperq_actorder": "--actorder", "whisperq_cache_dir": "--cache-dir"}
    try:
        settings = build_settings(cli, ini)
    except ConfigError as error:  # name the command's own argument, not the ini key it travelled as
        message = str(error)
        for key, flag in flags.items():
            message = message.replace(f"ini key {key}:", f"{flag}:")
        raise ConfigError(message) from None
    session = WhisperqSession(settings)
    produced = session.resolved("model").path
    shutil.copytree(produced, args.out, dirs_exist_ok=True, ignore=shutil.ignore_patterns(MANIFEST_NAME))
    print(args.out)
    return 0


def _fidelity(args: argparse.Namespace) -> int:
    """The fidelity check's figures, layer by layer, as the suite computes them (dequantized as declared)."""
    from pytest_whisperq.checks.fidelity import Tolerance, check_dequantized_close, layer_errors
    from pytest_whisperq.checks.scheme import AUTO, resolve_scheme
    from pytest_whisperq.models.resolve import resolve
    from pytest_whisperq.models.spec import parse_model_spec
    from pytest_whisperq.models.tensors import CheckpointTensors

    cache = Cache(args.cache_dir or default_cache_root())
    model, base = (CheckpointTensors.open(resolve(parse_model_spec(name), cache).path) for name in (args.model, args.base))
    scheme = resolve_scheme(AUTO, model.config)
    errors = layer_errors(model, base, scheme)
    print(f"{args.model}: {scheme.label} [{scheme.source}]")
    print(f"{'layer':48s} {'error':>7s} {'floor':>7s} {'x floor':>8s}")
    for error in sorted(errors, key=lambda e: -(e.ratio or 0))[: args.top]:
        if error.error is None:
            print(f"{error.name:48s} not dequantized: {error.reason}")
        else:
            print(f"{error.name:48s} {error.error:7.4f} {error.floor or 0:7.4f} {error.ratio or 0:8.2f}")
    print(check_dequantized_close(errors, Tolerance()).describe())
    return 0


def _resolution(args: argparse.Namespace) -> int:
    import json

    from pytest_whisperq.decision import Rule
    from pytest_whisperq.simulation import PairedErrors, draw_operating_characteristic, operating_characteristic

    try:
        run = json.loads(args.report.read_text(encoding="utf-8"))
        rows = [row for row in run.get("utterances") or () if row.get("pool") == args.pool]
        settings = run.get("settings") or {}
    except (OSError, ValueError, AttributeError) as error:
        raise WhisperqError(f"{args.report} cannot be read as a pytest-whisperq report: {error}") from None
    if not rows:
        raise WhisperqError(f"{args.report} has no per-utterance errors in the {args.pool!r} pool: write the report "
                            "with --whisperq-json from a run that measured WER (pytest-whisperq >= schema 2)")
    limit = args.limit if args.limit is not None else float(settings.get("max_wer_delta") or 0.5)
    rule = Rule(alpha=round(1 - float(settings.get("confidence") or 0.95), 12))
    population = PairedErrors.from_rows(rows)
    deltas = [round(limit * k / 4, 4) for k in range(-2, 11)]
    points = operating_characteristic(population, deltas, limit, rule, args.runs)
    print(f"{args.pool} pool: {len(population)} utterances, {int(population.words.sum())} words, observed delta "
          f"{population.delta():+.2f} points; limit {limit:g}, error rate {rule.alpha:g} per side, {args.runs} runs")
    print("true delta  P(pass)  P(fail)  P(inconclusive)  interval coverage")
    for point in points:
        print(f"{point.true_delta:+10.2f}  {point.passed:7.3f}  {point.failed:7.3f}  {point.inconclusive:15.3f}  "
              f"{point.coverage:17.3f}")
    if args.png is not None:
        draw_operating_characteristic(points, limit, f"WER gate on {len(population)} utterances "
                                                     f"({int(population.words.sum())} words, {args.pool})", str(args.png))
        print(f"drawn to {args.png}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
