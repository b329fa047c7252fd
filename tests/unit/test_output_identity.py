"""What every output says of identity and consent: the id the event came under
(``user_id``), the person whose profile it is (``person_id``), and, on tag changes and
transitions, whether the person had opted out of marketing (``opted_out``)."""

from __future__ import annotations

import dataclasses

import pytest

from taggers.bundled import BUNDLED_RULES
from taggers.durations import DAY_MS
from taggers.engine import Engine
from taggers.outputs import Output, TagChange, Transition, output_to_dict
from taggers.profile import Profile
from taggers.ruleset import load_rules
from tests.support.core import START_MS, make_event

ENGINE = Engine(load_rules(BUNDLED_RULES))


def history(person: str, under: str, consent: list[object] | None = None) -> list[Output]:
    """A first purchase under ``under`` applied to ``person``'s profile, then a year."""
    profile = ENGINE.new_profile(person)
    profile.consent = consent
    outputs = ENGINE.apply(
        profile,
        make_event("purchase", user=under, event_id="e1", amount=2500.0, category="美妆"),
    )
    return outputs + ENGINE.advance(profile, START_MS + 365 * DAY_MS)


def test_an_event_under_a_linked_id_names_the_id_and_the_person() -> None:
    linked = history("p1", "wecom:wmXyz")
    own = history("p1", "p1")
    assert [o.id for o in linked] == [o.id for o in own]  # ids are the person's
    after_event = [o for o in linked if o.at == START_MS]
    timers = [o for o in linked if o.at > START_MS]
    assert after_event and timers, "the history has an event's outputs and a timer's"
    assert {(o.user_id, o.person_id) for o in after_event} == {("wecom:wmXyz", "p1")}
    # A deadline came under no id but the person's own.
    assert {(o.user_id, o.person_id) for o in timers} == {("p1", "p1")}
    for mine, theirs in zip(linked, own, strict=True):
        assert output_to_dict(mine) | {"user_id": "p1"} == output_to_dict(theirs)


@pytest.mark.parametrize(
    ("consent", "opted_out"),
    [(None, False), ([START_MS - 1, "in"], False), ([START_MS - 1, "out"], True)],
)
def test_tag_changes_and_transitions_say_whether_the_person_opted_out(
    consent: list[object] | None, opted_out: bool
) -> None:
    outputs = history("p1", "p1", consent)
    marked = [o for o in outputs if isinstance(o, TagChange | Transition)]
    assert {type(o) for o in marked} == {TagChange, Transition}
    assert {o.opted_out for o in marked} == {opted_out}
    assert {output_to_dict(o)["opted_out"] for o in marked} == {opted_out}


def test_a_stored_profile_without_consent_loads_with_none() -> None:
    stored = Profile("p1").to_dict()
    del stored["consent"]  # as written before the field existed
    assert Profile.from_dict(stored).consent is None
    assert dataclasses.replace(Profile("p1"), consent=[1, "out"]).to_dict()["consent"] == [
        1,
        "out",
    ]
