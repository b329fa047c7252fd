"""The tagging engine as pure logic: events in, tag changes, transitions and alerts out.

No I/O here: the engine is a function of (profile, event, now) giving (profile', outputs);
``streams`` wires it to Kafka and Redis. The names below are the public surface; test
helpers live in ``taggers.testing``.
"""

from taggers.engine import Engine
from taggers.events import BehaviourEvent, EventError, decode_event, event_json_schema
from taggers.outputs import Alert, Output, Reason, TagChange, Transition, output_to_dict
from taggers.profile import Profile
from taggers.replay import BadLine, Replay, sweep
from taggers.ruleset import RuleSet, load_rules
from taggers.settings import Settings
from taggers.simulate import SimulationConfig, simulate
from taggers.store import MemoryStore, ProfileStore
from taggers.yaml_source import Problem, RuleSetError

__all__ = [
    "Alert",
    "BadLine",
    "BehaviourEvent",
    "Engine",
    "EventError",
    "MemoryStore",
    "Output",
    "Problem",
    "Profile",
    "ProfileStore",
    "Reason",
    "Replay",
    "RuleSet",
    "RuleSetError",
    "Settings",
    "SimulationConfig",
    "TagChange",
    "Transition",
    "decode_event",
    "event_json_schema",
    "load_rules",
    "output_to_dict",
    "simulate",
    "sweep",
]
