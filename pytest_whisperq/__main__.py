"""Command line: `python -m pytest_whisperq COMMAND`.

  fetch MODEL        resolve a model (built-in, hub id or directory) and print its local path
  suite-path         print the directory of the installed conformance suite
  check MODEL [...]  run the conformance suite on MODEL (extra arguments go to pytest)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pytest_whisperq.cache import Cache, default_cache_root
from pytest_whisperq.errors import WhisperqError


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
        from pytest_whisperq.resources import conformance_dir

        if args.command == "suite-path":
            print(conformance_dir())
            return 0
        import pytest

        return int(pytest.main([str(conformance_dir()), f"--whisperq-model={args.model}", *extra]))
    except WhisperqError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
