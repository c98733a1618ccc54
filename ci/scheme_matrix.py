"""`./dev schemes`: every scheme the quantize engine makes, quantized from the base here, gated by the suite.

Each scheme is gated by the whole suite as the scheme it declares (`--whisperq-scheme`), then its checkpoint
as another scheme, which must fail the format suite naming the deviation. A table of the verdicts at the end; the exit status is non-zero
unless every scheme passed and every wrong declaration failed.

Each scheme costs one quantization (cached by content) and one transcription of the data by its checkpoint
(5 to 11 minutes per whisper-base scheme on the shipped real and long-form speech on 2 CPU cores, measured once
each; the base's transcripts are cached after the first). Arguments after the options go to every suite run, e.g.
`./dev schemes --schemes W8A8,FP8_DYNAMIC --whisperq-data=DIR`. docs/format-checks.md has a measured table.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

from gpu_check import ROOT, suite

# each scheme, and a scheme its checkpoint is not (the wrong declaration must fail naming the deviation)
DEFAULT_SCHEMES = "W4A16,W4A16:64:weight,W8A16,W8A8,FP8_DYNAMIC,NVFP4A16"
NOT = {"W4A16": "W4A16_ASYM", "W4A16_ASYM": "W4A16", "W8A16": "W4A16", "W8A8": "W8A16", "FP8": "FP8_DYNAMIC",
       "FP8_DYNAMIC": "FP8", "NVFP4A16": "NVFP4", "NVFP4": "NVFP4A16"}


@dataclass(frozen=True)
class Entry:
    scheme: str
    group_size: int | None = None
    actorder: str | None = None

    @property
    def label(self) -> str:
        return "-".join([self.scheme] + ([f"G{self.group_size}"] if self.group_size else [])
                        + ([self.actorder] if self.actorder else []))

    def options(self) -> list[str]:
        return ([f"--whisperq-scheme={self.scheme}"]
                + ([f"--whisperq-group-size={self.group_size}"] if self.group_size else [])
                + ([f"--whisperq-actorder={self.actorder}"] if self.actorder else []))


def parse_entries(text: str) -> list[Entry]:
    """`SCHEME[:GROUP_SIZE[:ACTORDER]]`, comma-separated: W4A16:64:weight is W4A16, group 64, act-order weight."""
    entries = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        scheme, group, actorder = (item.split(":") + ["", ""])[:3]
        if scheme not in NOT:
            raise argparse.ArgumentTypeError(f"{scheme}: no other scheme to declare it as is known here; one of "
                                             f"{', '.join(NOT)}")
        if group and not group.isdigit():
            raise argparse.ArgumentTypeError(f"{item}: the group size must be a number, e.g. W4A16:64:weight")
        entries.append(Entry(scheme, int(group) if group else None, actorder or None))
    if not entries:
        raise argparse.ArgumentTypeError("no scheme named")
    return entries


def check(name: str, run: dict | None) -> dict | None:
    return next((c for c in (run or {}).get("checks", []) if c["name"] == name), None)


def row(entry: Entry, run: dict | None, wrong: dict | None) -> tuple[list[str], bool]:
    """The table's row for one scheme, and whether it is as it must be (its run passed, the wrong
    declaration failed the quantization config check)."""
    if run is None:
        return [entry.label, "no report: the run failed before writing one", "", "", "", ""], False
    delta, fidelity = check("wer_delta[real]", run), check("dequantized_weights_close", run)
    decision = (delta or {}).get("decision") or {}
    shown = (f"{delta['observed']:+.2f} [{decision['low']:+.2f}, {decision['high']:+.2f}]"
             if delta and decision.get("low") is not None else "not measured")
    wrong_config = check("quantization_config", wrong)
    refused = bool(wrong_config and not wrong_config["ok"])
    deviations = (f"fails: {wrong_config['observed']} deviations, e.g. {wrong_config['evidence'][0]}"
                  if refused and wrong_config["evidence"] else "NOT refused" if wrong else "not run")
    cells = [entry.label, (run.get("scheme") or {}).get("label", "?"), shown,
             f"{fidelity['observed']} x" if fidelity else "not measured", run["verdict"].upper(), deviations]
    return cells, run["verdict"] == "pass" and refused


def table(rows: list[list[str]]) -> list[str]:
    header = ["scheme", "gated as", "WER delta [interval]", "fidelity (median x RTN)", "verdict",
              "declared as another"]
    return ["| " + " | ".join(cells) + " |" for cells in [header, ["---"] * len(header), *rows]]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="./dev schemes", description=__doc__.splitlines()[0])
    parser.add_argument("--schemes", type=parse_entries, default=parse_entries(DEFAULT_SCHEMES),
                        help=f"SCHEME[:GROUP_SIZE[:ACTORDER]],... (default: {DEFAULT_SCHEMES})")
    parser.add_argument("--base", default="whisper-base", help="the base (default: whisper-base, built in)")
    parser.add_argument("--out", type=Path, default=ROOT / "scheme-matrix", help="where the reports go")
    args, pytest_args = parser.parse_known_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    rows, good = [], []
    for entry in args.schemes:
        _, run, _ = suite(args.out, entry.label, sys.executable, f"--whisperq-base={args.base}", *entry.options(),
                          *pytest_args)
        made = ((run or {}).get("models", {}).get("model") or {}).get("path")
        wrong = None
        if made:
            _, wrong, _ = suite(args.out, f"{entry.label}-as-{NOT[entry.scheme]}", sys.executable,
                                f"--whisperq-base={args.base}", f"--whisperq-model={made}",
                                f"--whisperq-scheme={NOT[entry.scheme]}", *pytest_args, "-k", "format")
        cells, ok = row(entry, run, wrong)
        rows.append(cells)
        good.append(ok)
    print("\n".join(["", f"== every scheme, quantized from {args.base} here and gated:", *table(rows)]), flush=True)
    failed = [entry.label for entry, ok in zip(args.schemes, good) if not ok]
    print(f"\nschemes: {'all passed, each wrong declaration refused' if not failed else 'NOT as they must be: ' + ', '.join(failed)}"
          f" (reports in {args.out})")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
