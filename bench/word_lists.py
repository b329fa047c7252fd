"""Sensitive-word lists: engine time per message event as the list grows.

    python bench/word_lists.py [--words 1000 100000] [--chars 200 10000]

The default pack with its ``sensitive_words`` list replaced by random words of 2 to 6
Chinese characters that occur in none of the messages (the slowest case: no early
match), and messages of random text. Prints milliseconds per message event, through
the engine (decode, aggregates, the ``sensitive_message`` alert's ``contains_any``).
"""

from __future__ import annotations

import argparse
import random
import shutil
import tempfile
import time
from pathlib import Path

import orjson

from taggers.bundled import BUNDLED_RULES
from taggers.engine import Engine
from taggers.events import to_epoch_ms
from taggers.replay import Replay
from taggers.ruleset import load_rules

ALPHABET = "的一是在不了有和人这中大为上个国我以要他时来用们生到作地于出就分对成会可主发年动"
ALPHABET += "同工也能下过子说产种面而方后多定行学法所民得经十三之进着等部度家电力里如水化高自二"
ALPHABET += "理起小物现实加量都两体制机当使点从业本去把性好应开它合还因由其些然前外天政四日那社"
EVENTS = 40


def per_message_ms(words: int, chars: int, folder: Path) -> float:
    """Milliseconds per message event with a list of ``words`` and ``chars``-long texts."""
    rng = random.Random(words * 31 + chars)
    texts = ["".join(rng.choice(ALPHABET) for _ in range(chars)) for _ in range(10)]
    found: set[str] = set()
    while len(found) < words:
        word = "".join(rng.choice(ALPHABET) for _ in range(rng.randint(2, 6)))
        if not any(word in text for text in texts):
            found.add(word)
    directory = folder / f"rules-{words}-{chars}"
    shutil.copytree(BUNDLED_RULES, directory, ignore=shutil.ignore_patterns("tests"))
    listed = "\n".join(sorted(found)) + "\n"
    (directory / "lists" / "sensitive_words.txt").write_text(listed, encoding="utf-8")
    start = to_epoch_ms("2026-01-01T00:00:00Z")
    lines = [
        orjson.dumps(
            {
                "event_id": f"m{i}",
                "user_id": f"u{i % 5}",
                "type": "message",
                "ts": start + i * 1000,
                "channel": "wecom",
                "props": {"text": texts[i % len(texts)]},
            }
        )
        for i in range(EVENTS)
    ]
    replay = Replay(Engine(load_rules(directory)))
    started = time.perf_counter()
    for _ in replay.run(lines):
        pass
    return (time.perf_counter() - started) / EVENTS * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--words", type=int, nargs="+", default=[1_000, 100_000])
    parser.add_argument("--chars", type=int, nargs="+", default=[200, 10_000])
    args = parser.parse_args()
    print(f"{'words':>8} {'chars':>7} {'ms per message event':>21}")
    with tempfile.TemporaryDirectory() as folder:
        for words in args.words:
            for chars in args.chars:
                ms = per_message_ms(words, chars, Path(folder))
                print(f"{words:8} {chars:7} {ms:21.2f}")


if __name__ == "__main__":
    main()
