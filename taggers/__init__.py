"""The tagging engine as pure logic: events in, tag changes, transitions, alerts, identity
merges and forgotten people out.

No I/O here, and a test holds it to that (tests/lint/test_import_contract.py): no Kafka,
Redis, HTTP, Prometheus or environment variables. The engine is a function of (profile,
event, now) giving (profile', outputs); ``pipeline`` is what a worker does with a batch of
one partition; ``streams`` wires them to Kafka and Redis. The names below are the public
surface.
"""

from taggers.engine import Engine
from taggers.events import BehaviourEvent, EventError, decode_event, event_json_schema
from taggers.outputs import (
    Alert,
    Forgotten,
    IdentityMerge,
    Output,
    Reason,
    TagChange,
    Transition,
    output_to_dict,
)
from taggers.pipeline import DeadLetter, Pipeline, Prepared, Record
from taggers.profile import Profile
from taggers.replay import BadLine, Replay, sweep
from taggers.ruleset import RuleSet, load_rules
from taggers.simulate import SimulationConfig, simulate
from taggers.store import MemoryStore, OperationsStore, ProfileStore, StoreConflictError
from taggers.yaml_source import Problem, RuleSetError

__all__ = [
    "Alert",
    "BadLine",
    "BehaviourEvent",
    "DeadLetter",
    "Engine",
    "EventError",
    "Forgotten",
    "IdentityMerge",
    "MemoryStore",
    "OperationsStore",
    "Output",
    "Pipeline",
    "Prepared",
    "Problem",
    "Profile",
    "ProfileStore",
    "Reason",
    "Record",
    "Replay",
    "RuleSet",
    "RuleSetError",
    "SimulationConfig",
    "StoreConflictError",
    "TagChange",
    "Transition",
    "decode_event",
    "event_json_schema",
    "load_rules",
    "output_to_dict",
    "simulate",
    "sweep",
]
