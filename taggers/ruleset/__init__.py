"""Load, validate and compile a rule directory into a ``RuleSet`` the engine runs.

Compilation happens once per load. Every problem found is reported with file:line:column
and a hint; a rule set with any problem is rejected as a whole (``RuleSetError``).

``model`` is what a compiled rule set is made of; ``base`` what compiling every section
shares (problems, names, params, word lists, the time zone); ``aggregates``,
``calendars`` and ``compiler`` compile the sections in layers, each over the one before;
``loading`` reads a directory and gives its version.
"""

from taggers.ruleset.loading import load_rules, rule_files, rules_version
from taggers.ruleset.model import (
    ANY,
    EVENT_FIELDS,
    EVENT_TYPE,
    LIST_SUFFIX,
    MAX_EXPRESSION_CHARS,
    MAX_LIST_BYTES,
    MAX_LIST_WORDS,
    MAX_PROBLEMS,
    MAX_RULE_FILES,
    MAX_WORD_CHARS,
    NOW,
    RESERVED_NAMES,
    STRING_FIELDS,
    Aggregate,
    Alert,
    Extractor,
    Filter,
    Lifecycle,
    RuleSet,
    Tag,
    Timer,
    Transition,
    field_extractor,
)

__all__ = [
    "ANY",
    "EVENT_FIELDS",
    "EVENT_TYPE",
    "LIST_SUFFIX",
    "MAX_EXPRESSION_CHARS",
    "MAX_LIST_BYTES",
    "MAX_LIST_WORDS",
    "MAX_PROBLEMS",
    "MAX_RULE_FILES",
    "MAX_WORD_CHARS",
    "NOW",
    "RESERVED_NAMES",
    "STRING_FIELDS",
    "Aggregate",
    "Alert",
    "Extractor",
    "Filter",
    "Lifecycle",
    "RuleSet",
    "Tag",
    "Timer",
    "Transition",
    "field_extractor",
    "load_rules",
    "rule_files",
    "rules_version",
]
