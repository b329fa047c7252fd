"""Expression speed: our compiled rule expressions against hand-written Python lambdas.

    python bench/expressions.py [--runs 5]

Prints, per expression, the median nanoseconds per evaluation of the compiled expression
and of the equivalent lambda (the floor), and their ratio, measured in one run.
"""

from __future__ import annotations

import argparse
import statistics
import timeit
from collections.abc import Callable
from typing import Any

from taggers.durations import DAY_MS
from taggers.expr import DURATION, INT, STRING, compile_expression

NAMES = {"orders": INT, "shares_30d": INT, "purchase_gap": DURATION, "stage": STRING}
VALUES: dict[str, Any] = {
    "orders": 8,
    "shares_30d": 3,
    "purchase_gap": 10 * DAY_MS,
    "stage": "loyal",
}
CASES: list[tuple[str, Callable[[dict[str, Any]], Any]]] = [
    ("orders >= 7 && shares_30d >= 3", lambda v: v["orders"] >= 7 and v["shares_30d"] >= 3),
    ("stage in ['active', 'loyal']", lambda v: v["stage"] in ("active", "loyal")),
    ("stage == 'loyal'", lambda v: v["stage"] == "loyal"),
    (
        "max(2 * purchase_gap, 14d)",
        lambda v: max(2 * v["purchase_gap"], 14 * DAY_MS),
    ),
]


def per_call_ns(function: Callable[[dict[str, Any]], Any], runs: int, number: int) -> float:
    times = timeit.repeat(lambda: function(VALUES), number=number, repeat=runs)
    return statistics.median(times) / number * 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--number", type=int, default=200_000)
    args = parser.parse_args()
    print(f"{'expression':34} {'compiled ns':>12} {'lambda ns':>10} {'ratio':>6}")
    for source, reference in CASES:
        compiled = compile_expression(source, NAMES)
        assert compiled.evaluate(VALUES) == reference(VALUES)
        ours = per_call_ns(compiled.evaluate, args.runs, args.number)
        floor = per_call_ns(reference, args.runs, args.number)
        print(f"{source:34} {ours:12.0f} {floor:10.0f} {ours / floor:6.1f}")


if __name__ == "__main__":
    main()
