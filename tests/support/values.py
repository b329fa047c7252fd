"""A rule set with a value of each type, and events that give each one, for the tests of
how values read (tests/unit/test_display.py, and the profile views against Redis)."""

from __future__ import annotations

RULES = """\
aggregates:
  orders:  {count: purchase}
  spend:   {sum: props.amount, of: purchase}
  last_at: {last_ts: purchase}
  gap:     {avg_gap: purchase}
  joined:  {last_ts: member_join}
tags:
  buyer:   {when: "joined != null || spend > 0"}
  regular: {when: "gap != null && gap < 7d"}
alerts:
  second_order:
    severity: low
    upon: purchase
    when: "orders >= 2"
    details: [spend, gap, last_at, joined]
"""
# Two purchases 492642765 ms apart: their amounts sum to 0.30000000000000004.
EVENTS = (
    '{"event_id": "e1", "user_id": "u1", "type": "purchase", "ts": "2026-01-01T00:00:00Z",'
    ' "props": {"amount": 0.1}}\n'
    '{"event_id": "e2", "user_id": "u1", "type": "purchase", "ts": "2026-01-06T16:50:42.765Z",'
    ' "props": {"amount": 0.2}}\n'
)
