"""The ``tagger`` command line, as a user runs it."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest

from streams.cli import main
from streams.produce import user_key
from streams.settings import Settings, unknown_variables
from taggers.bundled import BUNDLED_RULES
from taggers.durations import DAY_MS
from taggers.events import decode_event, to_epoch_ms
from taggers.simulate import SimulationConfig, simulate

TAGGER = [sys.executable, "-m", "streams.cli"]


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_rules_check_accepts_the_default_pack(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "rules", "check", "--rules", str(BUNDLED_RULES))
    assert code == 0
    assert out.startswith("ok: ") and "7 stages" in out


def test_rules_check_reports_file_line_column(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    (tmp_path / "tags.yaml").write_text(
        'aggregates:\n  orders: {count: purchase}\ntags:\n  vip: {when: "oders >= 5"}\n',
        encoding="utf-8",
    )
    code, _, err = run(capsys, "rules", "check", "--rules", str(tmp_path))
    assert code == 1
    assert f"error: {tmp_path}/tags.yaml:4:16: unknown name 'oders'" in err
    assert "did you mean 'orders'?" in err
    assert "nothing was loaded" in err


def test_the_older_spelling_of_a_rule_directory_still_works(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """``rules check DIR`` (the runbooks say so) and ``rules diff OLD NEW`` as before;
    naming two different directories, or a diff with no live rules, is refused."""
    code, out, _ = run(capsys, "rules", "check", str(BUNDLED_RULES))
    assert code == 0 and out.startswith(f"ok: {BUNDLED_RULES}:")
    code, out, _ = run(capsys, "rules", "check", str(BUNDLED_RULES), "--rules", str(BUNDLED_RULES))
    assert code == 0
    with pytest.raises(SystemExit) as refused:
        main(["rules", "check", str(BUNDLED_RULES), "--rules", str(tmp_path)])
    assert refused.value.code == 2
    assert "name the rule directory once" in capsys.readouterr().err
    events = tmp_path / "events.jsonl"
    events.write_text("", encoding="utf-8")
    older = run(
        capsys, "rules", "diff", "--events", str(events), str(BUNDLED_RULES), str(BUNDLED_RULES)
    )
    newer = run(
        capsys,
        "rules",
        "diff",
        "--against",
        str(BUNDLED_RULES),
        "--rules",
        str(BUNDLED_RULES),
        "--events",
        str(events),
    )
    assert older == newer and older[0] == 0
    for wrong in (["--events", str(events)], ["--events", str(events), str(BUNDLED_RULES)]):
        with pytest.raises(SystemExit) as refused:
            main(["rules", "diff", *wrong])
        assert refused.value.code == 2


def test_rules_test_passes_on_the_default_pack(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "rules", "test", "--rules", str(BUNDLED_RULES))
    passed = int(out.strip().splitlines()[-1].split()[0])
    assert code == 0, out
    assert passed >= 40
    assert out.strip().endswith(f"{passed} passed, 0 failed")


def test_rules_test_fails_with_a_diff(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    rules = tmp_path / "rules"
    shutil.copytree(BUNDLED_RULES, rules)
    (rules / "tests" / "extra.yaml").write_text(
        "tests:\n"
        "  - name: one purchase is not loyal\n"
        "    events:\n"
        "      - {type: purchase, at: +0d, props: {amount: 10}}\n"
        "    expect: {stage: loyal}\n",
        encoding="utf-8",
    )
    code, out, _ = run(capsys, "rules", "test", "--rules", str(rules))
    assert code == 1
    assert f"FAIL one purchase is not loyal ({rules}/tests/extra.yaml:2:5)" in out
    assert "expected: 'loyal'" in out and "actual:   'new'" in out
    assert "1 failed" in out


def test_replay_json_prints_kinds_errors_and_profiles(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    events = tmp_path / "events.jsonl"
    events.write_text(
        '{"event_id": "e1", "user_id": "u1", "type": "purchase", "ts": "2026-01-01T10:00:00Z",'
        ' "channel": "wecom", "props": {"amount": 1200}}\n'
        "not json\n"
        '{"event_id": "e2", "user_id": "u1", "type": "purchase", "ts": "2026-01-03T10:00:00Z",'
        ' "props": {"amount": "lots"}}\n'
        '{"event_id": "e3", "user_id": "u2", "type": "message", "ts": 1767261600000,'
        ' "props": {"text": "我要投诉"}}\n',
        encoding="utf-8",
    )
    code, out, _ = run(capsys, "replay", str(events), "--json")
    assert code == 0
    records = [orjson.loads(line) for line in out.splitlines()]
    outputs = [r for r in records if r["kind"] in ("tag_change", "transition", "alert")]
    assert {(r["user_id"], r["person_id"]) for r in outputs} == {("u1", "u1"), ("u2", "u2")}
    errors = [r for r in records if r["kind"] == "error"]
    assert [(e["line"], e["reason"]) for e in errors] == [(2, "invalid_json"), (3, "schema")]
    assert "props of purchase: amount" in errors[1]["message"]
    kinds = {r["kind"] for r in records}
    assert kinds == {"tag_change", "transition", "alert", "error", "profile"}
    alert = next(r for r in records if r["kind"] == "alert")
    assert (alert["user_id"], alert["name"]) == ("u2", "sensitive_message")
    profiles = {r["user_id"]: r for r in records if r["kind"] == "profile"}
    assert records[-2:] == [profiles["u1"], profiles["u2"]]
    # The text summary counts every kind, a rare one (identity merges) only when there are.
    code, _, err = run(capsys, "replay", str(events), "-q")
    (line,) = [line for line in err.splitlines() if line.startswith("outputs: ")]
    kinds_counted, bad = line.removeprefix("outputs: ").split("; ")
    assert [count.split()[0] for count in kinds_counted.split(", ")] == [
        "tag_change",
        "transition",
        "alert",
    ]
    assert bad == "bad lines 2"
    assert profiles["u1"]["stage"] == "new"
    assert {"high_value", "source_wecom"} <= set(profiles["u1"]["tags"])
    assert profiles["u1"]["aggregates"]["orders"] == 1
    assert profiles["u1"]["aggregates"]["spend_90d"] == 1200


def test_replay_takes_the_lines_as_sent_now_or_at_now(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    events = tmp_path / "events.jsonl"
    events.write_text(
        '{"event_id": "e1", "user_id": "u1", "type": "view", "ts": "2026-01-01T10:00:00Z"}\n'
        '{"event_id": "e2", "user_id": "u1", "type": "view", "ts": "2099-01-01T10:00:00Z"}\n',
        encoding="utf-8",
    )
    code, out, _ = run(capsys, "replay", str(events), "--json")
    errors = [r for r in map(orjson.loads, out.splitlines()) if r["kind"] == "error"]
    assert code == 0 and [(e["line"], e["reason"]) for e in errors] == [(2, "future")]
    assert "2099-01-01T10:00:00.000Z is " in errors[0]["message"]
    # Sent as the first event happened, with no skew allowed: that one is on time.
    monkeypatch.setenv("TAGGER_MAX_FUTURE_SKEW", "0")
    for now in ("2026-01-01T10:00:00Z", "1767261600000"):
        code, out, _ = run(capsys, "replay", str(events), "--json", "--now", now)
        errors = [r for r in map(orjson.loads, out.splitlines()) if r["kind"] == "error"]
        assert code == 0 and [(e["line"], e["reason"]) for e in errors] == [(2, "future")]
    code, out, _ = run(capsys, "replay", str(events), "--json", "--now", "2026-01-01T09:59:59Z")
    errors = [r for r in map(orjson.loads, out.splitlines()) if r["kind"] == "error"]
    assert [e["line"] for e in errors] == [1, 2]
    code, _, err = run(capsys, "replay", str(events), "--now", "yesterday")
    assert code == 2 and "--now: not an ISO-8601 timestamp" in err


def test_replay_until_lets_time_pass_after_the_last_event(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "rules.yaml").write_text(
        "timezone: Asia/Shanghai\n"
        "aggregates:\n  birthday: {last: props.birthday, of: member_join}\n"
        'alerts:\n  birthday_soon: {calendar: {yearly: birthday, before: 3d, time: "09:00"}}\n',
        encoding="utf-8",
    )
    events = tmp_path / "events.jsonl"
    events.write_text(
        '{"event_id": "e1", "user_id": "u1", "type": "member_join", "ts": "2026-01-01T10:00:00Z",'
        ' "props": {"birthday": "1990-03-10"}}\n',
        encoding="utf-8",
    )
    replay = ("replay", str(events), "--rules", str(rules), "--json")
    code, out, _ = run(capsys, *replay)
    assert code == 0 and not [
        r for r in map(orjson.loads, out.splitlines()) if r["kind"] == "alert"
    ]
    code, out, _ = run(capsys, *replay, "--until", "2026-04-01T00:00:00Z")
    alerts = [r for r in map(orjson.loads, out.splitlines()) if r["kind"] == "alert"]
    assert code == 0 and [(a["name"], a["at"], a["details"]) for a in alerts] == [
        ("birthday_soon", "2026-03-07T01:00:00.000Z", {"date": "2026-03-10"})
    ]
    code, _, err = run(capsys, *replay, "--until", "later")
    assert code == 2 and "--until: not an ISO-8601 timestamp" in err


def test_replay_of_a_missing_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, _, err = run(capsys, "replay", str(tmp_path / "nope.jsonl"))
    assert code == 1
    assert "no such file" in err


def test_schema_events_lists_every_type(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "schema", "events")
    schema = orjson.loads(out)
    assert code == 0
    assert schema["required"] == ["event_id", "user_id", "type", "ts"]
    types = [rule["if"]["properties"]["type"]["const"] for rule in schema["allOf"]]
    assert len(types) == 22 and {"purchase", "identify"} <= set(types)
    assert "amount" in schema["$defs"]["PurchaseProps"]["properties"]
    assert schema["$defs"]["IdentifyProps"]["properties"]["ids"]["maxItems"] == 32


def test_forget_sends_a_forget_event_keyed_by_the_id(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    sent: list[tuple[str, list[bytes]]] = []

    def produce_lines(settings: Settings, lines: list[bytes]) -> int:
        sent.append((settings.events_topic, list(lines)))
        return len(lines)

    monkeypatch.setattr("streams.produce.produce_lines", produce_lines)
    monkeypatch.setenv("TAGGER_EVENTS_TOPIC", "in-events")
    code, out, _ = run(capsys, "forget", "wecom:wmXyz", "--at", "2026-03-01T10:00:00+08:00")
    assert (code, out) == (0, "sent a forget event for wecom:wmXyz to in-events\n")
    before = int(time.time() * 1000)
    assert run(capsys, "forget", "member:8812")[0] == 0
    after = int(time.time() * 1000)
    (topic, [first]), (_, [second]) = sent
    assert topic == "in-events"
    event = decode_event(first)
    assert (event.user_id, event.type, event.ts) == ("wecom:wmXyz", "forget", 1_772_330_400_000)
    assert user_key(first) == b"wecom:wmXyz"  # produce_lines keys it by the id
    later = decode_event(second)
    assert (later.user_id, later.type) == ("member:8812", "forget")
    assert before <= later.ts <= after  # now, without --at
    assert event.event_id != later.event_id  # a fresh id each time: never a retry's


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["a}b"], "tagger forget: not a valid id: must not contain { or }"),
        (["a\x01b"], "tagger forget: not a valid id: must not contain control characters"),
        (["x" * 129], "tagger forget: not a valid id: String should have at most 128"),
        ([""], "tagger forget: not a valid id: String should have at least 1"),
        (["u1", "--at", "yesterday"], "tagger forget: --at: not an ISO-8601 timestamp"),
        (["u1", "--at", "1767225600"], "looks like seconds"),
        (["u1", "--at", "2026-01-01T00:00:00"], "has no time zone"),
    ],
)
def test_forget_refuses_a_bad_id_or_time_and_sends_nothing(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    argv: list[str],
    message: str,
) -> None:
    def produce_lines(settings: Settings, lines: list[bytes]) -> int:
        raise AssertionError("nothing may be sent")

    monkeypatch.setattr("streams.produce.produce_lines", produce_lines)
    code, out, err = run(capsys, "forget", *argv)
    assert (code, out) == (2, "")
    assert message in err


def test_forget_needs_an_id(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["forget"])
    assert exited.value.code == 2
    assert "the following arguments are required: id" in capsys.readouterr().err


def test_schema_rules(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "schema", "rules")
    assert code == 0
    assert {"aggregates", "tags", "lifecycle", "alerts"} <= set(orjson.loads(out)["properties"])


def test_simulate_is_reproducible_by_seed(capsys: pytest.CaptureFixture[str]) -> None:
    first = run(capsys, "simulate", "--users", "30", "--days", "60", "--seed", "5")[1]
    again = run(capsys, "simulate", "--users", "30", "--days", "60", "--seed", "5")[1]
    other = run(capsys, "simulate", "--users", "30", "--days", "60", "--seed", "6")[1]
    assert first == again
    assert first != other
    expected = [*simulate(SimulationConfig(users=30, days=60, seed=5))]
    assert first.splitlines() == expected


def test_simulate_start_moves_the_history(capsys: pytest.CaptureFixture[str]) -> None:
    args = ("simulate", "--users", "20", "--days", "10", "--seed", "3")
    at = run(capsys, *args, "--start", "2025-05-01T00:00:00Z")[1]
    times = [decode_event(line).ts for line in at.splitlines()]
    start = to_epoch_ms("2025-05-01T00:00:00Z")
    assert min(times) >= start and max(times) < start + 11 * DAY_MS
    before = time.time() * 1000
    now_lines = run(capsys, *args, "--start", "now")[1].splitlines()
    recent = [decode_event(line).ts for line in now_lines]
    # A history that ends now: its last day is today (the workers' wall clock).
    assert before - 10 * DAY_MS <= min(recent) and before - DAY_MS <= max(recent)
    assert max(recent) <= time.time() * 1000 + DAY_MS
    with pytest.raises(SystemExit) as exit_:
        main([*args, "--start", "yesterday"])
    assert exit_.value.code == 2
    assert "--start: must be 'now' or an ISO-8601 time" in capsys.readouterr().err


def test_simulated_event_ids_differ_by_seed(capsys: pytest.CaptureFixture[str]) -> None:
    # Rounds of a generator with new seeds must not look like a producer's retries.
    outs = [run(capsys, "simulate", "--users", "5", "--days", "20", "--seed", s)[1] for s in "12"]
    ids = [{decode_event(line).event_id for line in out.splitlines()} for out in outs]
    assert ids[0] and ids[1] and not ids[0] & ids[1]


def test_the_console_script_pipeline(tmp_path: Path) -> None:
    """`tagger simulate | tagger replay -`, as the README shows it."""
    simulated = subprocess.run(
        [*TAGGER, "simulate", "--users", "50", "--days", "120", "--malformed", "0.05"],
        check=True,
        capture_output=True,
    )
    replayed = subprocess.run(
        [*TAGGER, "replay", "-", "--json"],
        input=simulated.stdout,
        check=True,
        capture_output=True,
    )
    records = [orjson.loads(line) for line in replayed.stdout.splitlines()]
    errors = [r for r in records if r["kind"] == "error"]
    assert errors, "malformed lines are reported"
    lines = simulated.stdout.splitlines()
    for error in errors:
        assert error["reason"] in {"too_large", "invalid_json", "too_deep", "schema"}
        assert 1 <= error["line"] <= len(lines)
    assert len([r for r in records if r["kind"] == "profile"]) == 50


def test_a_bad_setting_is_named_and_nothing_starts(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TAGGER_PARTITIONS", "eight")
    code, _, err = run(capsys, "run")
    assert code == 2
    assert "tagger run: bad settings: TAGGER_PARTITIONS:" in err
    assert "valid integer" in err


def test_unknown_variables_are_reported_with_the_setting_they_resemble() -> None:
    environ = {"TAGGER_REDIS_ULR": "x", "TAGGER_BATCH_SIZE": "10", "TAGGER_NOPE": "1", "HOME": "/"}
    assert unknown_variables(environ) == [
        "TAGGER_NOPE",
        "TAGGER_REDIS_ULR (did you mean TAGGER_REDIS_URL?)",
    ]
