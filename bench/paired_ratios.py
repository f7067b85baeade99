#!/usr/bin/env python3
"""Summarises interleaved benchmark rounds as paired ratios (bench/capture.sh).

Input (stdin): TSV rows "group<TAB>mode<TAB>round<TAB>value", one per measurement. Modes of the
same group and round ran back to back, so their ratio cancels most of the drift of a shared,
loaded machine; the ratio of two medians would not.

  paired_ratios.py --unit us --target 0.05 --pair LABEL:GROUP:MODE:BASELINE:lower ... < raw.tsv

For every mode: median, min-max and spread ((max - min) / median) over the rounds. For every
pair: the per-round ratios MODE/BASELINE, their median and range, and a verdict against the
target: `lower` means MODE may cost at most (1 + target) x BASELINE (e.g. connect time),
`higher` means MODE must keep at least (1 - target) x BASELINE (e.g. requests per second).
"""
import argparse
import collections
import statistics
import sys


def parse_pair(text):
    parts = text.split(":")
    if len(parts) != 5 or parts[4] not in ("lower", "higher"):
        raise argparse.ArgumentTypeError(
            f"--pair {text!r}: expected LABEL:GROUP:MODE:BASELINE:lower|higher")
    return parts


def verdict(ratios, direction, target):
    def ok(ratio):
        return ratio <= 1 + target if direction == "lower" else ratio >= 1 - target

    median = statistics.median(ratios)
    if all(ok(r) for r in ratios):
        return "met in every round"
    if ok(median):
        return "met by the median, not in every round"
    if not any(ok(r) for r in ratios):
        return "MISSED in every round"
    return "MISSED by the median"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--unit", default="")
    parser.add_argument("--target", type=float, default=0.05)
    parser.add_argument("--pair", type=parse_pair, action="append", default=[])
    args = parser.parse_args()

    values = collections.defaultdict(dict)  # (group, mode) -> {round: value}
    order = []
    for line in sys.stdin:
        fields = line.split()
        if len(fields) != 4:
            continue
        group, mode, rnd, value = fields
        if (group, mode) not in values:
            order.append((group, mode))
        values[(group, mode)][rnd] = float(value)

    print(f"{'group':<8} {'mode':<18} {'median':>10} {'min':>10} {'max':>10} {'spread':>7}"
          f"  rounds ({args.unit})")
    for key in order:
        series = list(values[key].values())
        median = statistics.median(series)
        spread = (max(series) - min(series)) / median if median else 0
        print(f"{key[0]:<8} {key[1]:<18} {median:10.2f} {min(series):10.2f} {max(series):10.2f}"
              f" {spread:6.1%}  {len(series)}")
    if not args.pair:
        return
    print()
    print(f"{'ratio':<34} {'median':>7} {'min':>7} {'max':>7}  target {args.target:.0%}")
    for label, group, mode, baseline, direction in args.pair:
        a, b = values.get((group, mode), {}), values.get((group, baseline), {})
        rounds = sorted(set(a) & set(b), key=int)
        ratios = [a[r] / b[r] for r in rounds if b[r]]
        if not ratios:
            print(f"{label:<34} (no paired rounds)")
            continue
        print(f"{label:<34} {statistics.median(ratios):7.3f} {min(ratios):7.3f}"
              f" {max(ratios):7.3f}  {verdict(ratios, direction, args.target)}")


if __name__ == "__main__":
    main()
