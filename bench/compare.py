"""Before and after in one invocation: the benchmarks of an earlier commit and of this
checkout, run in turns on the same machine, with the medians and their ratio.

    python bench/compare.py --before REV [--rounds 3] [--bench engine pipeline]
        [--engine-args "--runs 1"] [--pipeline-args "--rounds 1"]
    python bench/compare.py --before pure ...    # this checkout: pure Python vs compiled

The earlier commit is checked out into a temporary folder and run from there with its own
code first on the path (``PYTHONPATH``), so each side runs its own benchmark script on its
own code and rule pack. Each round runs both sides, in alternating order, so that a drift
in the machine's speed (these machines are noisy) weighs on both alike. Every rate a
benchmark prints (``... N events/s``, ``N users/s``) and every p99 latency is collected;
the table shows the median of the rounds per side and after / before.

``--before pure`` compares this checkout with itself: its pure Python core
(``TAGGER_PURE_PYTHON=1``) before, its compiled core after.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import statistics
import subprocess
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

HERE = Path(__file__).resolve().parents[1]
RATE = re.compile(r"([\d,]+(?:\.\d+)?) (events/s|users/s)")
P99 = re.compile(r"p99 ([\d,]+(?:\.\d+)?) ms")


def readings(output: str) -> dict[str, float]:
    """metric -> value for each line of a benchmark's output that gives a rate or a p99."""
    found: dict[str, float] = {}
    for line in output.splitlines():
        label = line.split(":", 1)[0].strip()
        if label.startswith("run "):  # one run of the several a median is taken over
            continue
        rates = RATE.findall(line.split(":", 1)[-1])
        if rates and ":" in line:
            value, unit = rates[-1]
            found[f"{label} ({unit})"] = float(value.replace(",", ""))
        latency = P99.search(line)
        if latency:
            found[f"{label} (p99 ms)"] = float(latency.group(1).replace(",", ""))
    return found


PURE = "pure"
"""``--before`` this: this checkout on its pure Python core."""


def run(tree: Path, bench: str, extra: list[str], pure: bool = False) -> dict[str, float]:
    """One run of ``bench/<bench>.py`` of ``tree`` on that tree's code (its pure Python
    core if ``pure``)."""
    env = {**os.environ, "PYTHONPATH": str(tree)} | ({"TAGGER_PURE_PYTHON": "1"} if pure else {})
    command = [sys.executable, str(tree / "bench" / f"{bench}.py"), *extra]
    result = subprocess.run(command, cwd=tree, env=env, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise SystemExit(f"{tree.name}: {shlex.join(command)} failed:\n{result.stderr[-2000:]}")
    return readings(result.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--before", required=True, help=f"the earlier commit (any git rev), or {PURE!r}"
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--bench", nargs="+", default=["engine", "pipeline"])
    parser.add_argument("--engine-args", default="--runs 1")
    parser.add_argument("--pipeline-args", default="--rounds 1")
    args = parser.parse_args()
    extra = {"engine": shlex.split(args.engine_args), "pipeline": shlex.split(args.pipeline_args)}
    with tempfile.TemporaryDirectory(prefix="bench-before-") as folder:
        before = HERE if args.before == PURE else checkout(args.before, Path(folder))
        sides = {"before": before, "after": HERE}
        results: dict[tuple[str, str], list[float]] = defaultdict(list)
        for round_ in range(args.rounds):
            order = list(sides) if round_ % 2 == 0 else list(reversed(sides))
            for bench in args.bench:
                for side in order:
                    pure = side == "before" and args.before == PURE
                    found = run(sides[side], bench, extra.get(bench, []), pure)
                    for metric, value in found.items():
                        results[(f"{bench}: {metric}", side)].append(value)
                    print(f"round {round_ + 1}: {bench} {side} done", flush=True)
    print(f"\n{'metric':<64} {'before':>10} {'after':>10} {'after/before':>12}")
    for metric in dict.fromkeys(m for m, _ in results):
        old = statistics.median(results[(metric, "before")] or [float("nan")])
        new = statistics.median(results[(metric, "after")] or [float("nan")])
        print(f"{metric:<64} {old:>10,.0f} {new:>10,.0f} {new / old:>12.2f}")
    print(f"(medians of {args.rounds} rounds; before = {args.before})")


def checkout(rev: str, folder: Path) -> Path:
    """``rev`` of this repository, extracted under ``folder``, ready to run from."""
    before = folder / "before"
    archive = subprocess.run(
        ["git", "archive", "--format=tar", rev], cwd=HERE, capture_output=True, check=False
    )
    if archive.returncode != 0:
        raise SystemExit(archive.stderr.decode())
    before.mkdir()
    subprocess.run(["tar", "-x", "-C", str(before)], input=archive.stdout, check=True)
    # The bundled pack is the package taggers.rules_pack, mapped from rules/ by the install
    # of this checkout: without its own mapping the earlier tree would run this checkout's
    # pack.
    (before / "taggers" / "rules_pack").symlink_to(before / "rules", target_is_directory=True)
    return before


if __name__ == "__main__":
    main()
