"""The lifecycle of a compiled rule set as a picture: Mermaid (in Markdown) and SVG.

Pure rendering, no I/O: ``tagger rules graph`` prints what these return. The SVG is drawn
here, with no layout program: the stages stand in a column in the order the rule file
lists them; a step to a later stage is an arc on the right, a step back (win-back) an
arc on the left, each labelled with its condition, and labels never overlap.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from typing import Final
from xml.sax.saxutils import escape

from taggers.ruleset import RuleSet
from taggers.ruleset.model import Transition


@dataclass(frozen=True, slots=True)
class Edge:
    """One arrow: a transition from one of its source stages, with its condition."""

    source: str
    target: str
    label: str
    alert: str | None
    order: int  # the transition's place in the rule file, from 1


def _order(rule: str) -> int:
    # A transition's rule is lifecycle.<from>-><to>#<n>, n its place in the file.
    return int(rule.rsplit("#", 1)[1])


def condition(step: Transition, rules: RuleSet) -> str:
    """What makes a transition happen, as a rule file writes it (and the alert it raises)."""
    parts: list[str] = []
    if step.on is not None:
        parts.append("upon " + ", ".join(sorted(step.on)))
    if step.timer is not None:
        anchor = rules.aggregates.get(step.timer.anchor)
        types = anchor.types if anchor is not None else None
        since = ", ".join(sorted(types)) if types else "any event"
        parts.append(f"after {step.timer.after.source} since {since}")
    if step.when is not None:
        parts.append(step.when.source)
    if step.alert is not None:
        parts.append(f"raises {step.alert}")
    return " · ".join(parts)


def edges(rules: RuleSet) -> list[Edge]:
    """Every arrow of the lifecycle, in the order of the rule file (none without one)."""
    lifecycle = rules.lifecycle
    if lifecycle is None:
        return []
    steps = {t.rule: t for ts in lifecycle.by_stage.values() for t in ts}
    found: list[Edge] = []
    for rule in sorted(steps, key=_order):
        step = steps[rule]
        label = condition(step, rules)
        for stage in lifecycle.stages:
            if stage in step.sources:
                found.append(Edge(stage, step.to, label, step.alert, _order(rule)))
    return found


# --- Mermaid ------------------------------------------------------------------------------


def _mermaid_text(text: str) -> str:
    """Text safe in a Mermaid label: its entity codes for the characters Mermaid reads."""
    return "".join(f"#{ord(c)};" if c in '#";{}' else c for c in text)


def mermaid(rules: RuleSet) -> str:
    """The lifecycle as a Mermaid state diagram in a Markdown code block."""
    lines = ["```mermaid", "stateDiagram-v2"]
    lifecycle = rules.lifecycle
    if lifecycle is not None:
        lines.append(f"    [*] --> {lifecycle.initial}")
        for stage, display in lifecycle.stages.items():
            shown = f"{stage} · {display}" if display else stage
            lines.append(f'    state "{_mermaid_text(shown)}" as {stage}')
        for edge in edges(rules):
            lines.append(f"    {edge.source} --> {edge.target}: {_mermaid_text(edge.label)}")
    lines.append("```")
    return "\n".join(lines) + "\n"


# --- SVG ----------------------------------------------------------------------------------

FONT: Final = 13  # px
BOX_W: Final = 200
BOX_H: Final = 46
ROW: Final = 96  # from one box's top to the next
ARC: Final = 34  # how far an arc reaches out per stage it spans
MARGIN: Final = 24
LINE: Final = FONT + 5


def text_width(text: str) -> float:
    """About how wide ``text`` is drawn at FONT px: wide (CJK) characters count double."""
    return sum(FONT * (1.0 if unicodedata.east_asian_width(c) in ("W", "F") else 0.6) for c in text)


@dataclass(slots=True)
class _Labels:
    """Placed labels' boxes, so that the next one moves until it overlaps none."""

    placed: list[tuple[float, float, float, float]]

    def place(self, x: float, y: float, width: float, leftward: bool) -> float:
        """The y (baseline) at or below ``y`` where a label starting (or, leftward,
        ending) at ``x`` overlaps no placed one."""
        left = x - width if leftward else x
        while any(
            left < r and left + width > lo and y - FONT < bottom and y + 4 > top
            for lo, top, r, bottom in self.placed
        ):
            y += LINE
        self.placed.append((left, y - FONT, left + width, y + 4))
        return y


def _box(x: float, y: float, stage: str, display: str | None, initial: bool) -> list[str]:
    stroke = 'stroke="#1f4e79" stroke-width="2.5"' if initial else 'stroke="#1f4e79"'
    parts = [
        f'<g class="stage" id="stage-{escape(stage)}">',
        f'<rect x="{x:.0f}" y="{y:.0f}" width="{BOX_W}" height="{BOX_H}" rx="8"'
        f' fill="#e8f0fa" {stroke}/>',
        f'<text x="{x + BOX_W / 2:.0f}" y="{y + 19:.0f}" text-anchor="middle"'
        f' font-weight="bold">{escape(stage)}</text>',
    ]
    if display:
        parts.append(
            f'<text x="{x + BOX_W / 2:.0f}" y="{y + 37:.0f}" text-anchor="middle"'
            f' fill="#333">{escape(display)}</text>'
        )
    parts.append("</g>")
    return parts


def _reach(edge: Edge, rows: dict[str, int]) -> float:
    """How far an arc goes out from the column: further the more stages it spans, and a
    little apart for steps of the same span."""
    return ARC * max(abs(rows[edge.target] - rows[edge.source]), 1) + 10 * (edge.order % 3)


def _arc(edge: Edge, rows: dict[str, int], x0: float, labels: _Labels) -> list[str]:
    """An arrow between two boxes of the column, and its label at the arc's far point."""
    a, b = rows[edge.source], rows[edge.target]
    down = b >= a
    side = 1 if down else -1
    edge_x = x0 + (BOX_W if down else 0)
    # Arrows leave and enter a box a little apart, so that arrows at one box do not meet.
    y1 = MARGIN + a * ROW + BOX_H * (0.62 if down else 0.38)
    y2 = MARGIN + b * ROW + BOX_H * (0.38 if down else 0.62)
    if a == b:
        y2 = y1 + 12
    reach = edge_x + side * _reach(edge, rows)
    colour = "#2e7d32" if edge.alert else "#444"
    path = (
        f'<path d="M{edge_x:.0f},{y1:.0f} C{reach:.0f},{y1:.0f} {reach:.0f},{y2:.0f}'
        f' {edge_x + side * 2:.0f},{y2:.0f}" fill="none" stroke="{colour}"'
        f' stroke-width="1.5" marker-end="url(#{"win" if edge.alert else "arrow"})"/>'
    )
    width = text_width(edge.label)
    apex = edge_x + side * (_reach(edge, rows) * 0.75 + 4)
    y = labels.place(apex, (y1 + y2) / 2 + FONT / 3, width, leftward=not down)
    anchor = "start" if down else "end"
    label = (
        f'<text class="condition" x="{apex:.0f}" y="{y:.0f}" text-anchor="{anchor}"'
        f' fill="{colour}" stroke="white" stroke-width="4" paint-order="stroke">'
        f"{escape(edge.label)}</text>"
    )
    return [f'<g class="transition" data-from="{escape(edge.source)}"'
            f' data-to="{escape(edge.target)}">', path, label, "</g>"]  # fmt: skip


def svg(rules: RuleSet) -> str:
    """The lifecycle as an SVG picture (a box per stage, a labelled arrow per step)."""
    lifecycle = rules.lifecycle
    stages = lifecycle.stages if lifecycle is not None else {}
    rows = {stage: i for i, stage in enumerate(stages)}
    arrows = edges(rules)
    # Room on the left for the steps back: their arcs and their labels, which end there.
    x0 = MARGIN + max(
        [
            _reach(e, rows) * 0.75 + 4 + text_width(e.label)
            for e in arrows
            if rows[e.target] < rows[e.source]
        ]
        + [0.0]
    )
    labels = _Labels([])
    body: list[str] = []
    for stage, display in stages.items():
        initial = lifecycle is not None and stage == lifecycle.initial
        body += _box(x0, MARGIN + rows[stage] * ROW, stage, display, initial)
    for edge in arrows:
        body += _arc(edge, rows, x0, labels)
    right = max([r for _, _, r, _ in labels.placed] + [x0 + BOX_W]) + MARGIN
    bottom = max([b for _, _, _, b in labels.placed] + [MARGIN + len(stages) * ROW]) + MARGIN
    return (
        "\n".join(
            [
                f'<svg xmlns="http://www.w3.org/2000/svg" width="{right:.0f}" height="{bottom:.0f}"'
                f' viewBox="0 0 {right:.0f} {bottom:.0f}" font-family="sans-serif"'
                f' font-size="{FONT}">',
                "<title>lifecycle</title>",
                "<defs>",
                *(
                    f'<marker id="{name}" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7"'
                    f' markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z"'
                    f' fill="{colour}"/></marker>'
                    for name, colour in (("arrow", "#444"), ("win", "#2e7d32"))
                ),
                "</defs>",
                f'<rect width="{right:.0f}" height="{bottom:.0f}" fill="white"/>',
                *body,
                "</svg>",
            ]
        )
        + "\n"
    )
