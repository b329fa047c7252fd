"""The engine: (profile, event, rules) -> (profile', outputs), with no I/O.

``Engine`` (in ``core``) orchestrates; each of its jobs is a module of this package:
``plan`` (a rule set's run-time indexes), ``folding`` (aggregates and the values rules
read), ``deadlines``, ``tags`` (tags, groups, families), ``lifecycle``, ``alerts``,
``presentation`` (describe, aggregate values) and ``merging`` (two profiles' aggregate
states, when ids of one person merge).
"""

from taggers.engine.core import MAX_DEADLINES_PER_ADVANCE, Engine
from taggers.engine.deadlines import MAX_DELAY_MS
from taggers.engine.plan import MAX_CACHED_FAMILY_NAMES, Plan
from taggers.engine.tags import EXPIRED, family_member
from taggers.profile import RECENT_EVENT_IDS

__all__ = [
    "EXPIRED",
    "MAX_CACHED_FAMILY_NAMES",
    "MAX_DEADLINES_PER_ADVANCE",
    "MAX_DELAY_MS",
    "RECENT_EVENT_IDS",
    "Engine",
    "Plan",
    "family_member",
]
