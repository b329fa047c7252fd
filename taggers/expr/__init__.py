"""The rule expression language: a typed subset of CEL with duration literals (``14d``).

Rule text is parsed and type-checked once, then compiled to closures; it is never run
through Python's eval. Evaluation never raises (see ``compiler`` for null and error rules).
"""

from taggers.expr.calls import FUNCTIONS, METHODS
from taggers.expr.compiler import CompiledExpr, compile_expression
from taggers.expr.parser import MACROS, ExprError
from taggers.expr.types import (
    BOOL,
    DOUBLE,
    DURATION,
    DYN,
    INT,
    NULL,
    STRING,
    TIMESTAMP,
    Type,
    list_of,
    map_of,
    object_of,
)

__all__ = [
    "BOOL",
    "DOUBLE",
    "DURATION",
    "DYN",
    "FUNCTIONS",
    "INT",
    "MACROS",
    "METHODS",
    "NULL",
    "STRING",
    "TIMESTAMP",
    "CompiledExpr",
    "ExprError",
    "Type",
    "compile_expression",
    "list_of",
    "map_of",
    "object_of",
]
