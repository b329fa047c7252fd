"""A synthetic shop stream: realistic private-domain customers, reproducible by seed.

Each user follows a persona (browser, one-time buyer, repeat buyer, loyal big spender,
churner, win-back, KOC, new member who never orders, group chatter) plus habits everyone
may have (coupons, surveys, points, store visits, refunds, check-ins). The stream is
sorted by event time, as a Kafka topic replayed from the start would be.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, Final

import orjson

from taggers.durations import DAY_MS
from taggers.events import format_ts, to_epoch_ms

DEFAULT_START: Final = "2026-01-01T00:00:00Z"
CHANNELS: Final = (
    ("wecom", 35),
    ("mini_program", 25),
    ("app", 15),
    ("official_account", 10),
    ("store", 10),
    ("sms", 5),
)
CATEGORIES: Final = ("美妆", "母婴", "食品", "服饰", "数码", "家居", "个护")
CHAT: Final = (
    "请问这款有货吗",
    "谢谢客服",
    "什么时候发货",
    "这个活动怎么参加",
    "已下单,期待",
    "好用,推荐给朋友了",
    "有没有优惠券",
)
COMPLAINTS: Final = ("我要投诉你们的客服", "这是骗子吧,钱扣了没发货", "再不退款就去举报")
STAFF: Final = ("您好,已为您安排发货", "这款今天有满减活动", "亲,有问题随时找我")
STAFF_SLIPS: Final = ("别理他,就是个骗子", "嫌贵就去举报啊")
"""What staff (a guide) write in a customer's chat, now and then unwisely."""
_SHANGHAI: Final = timezone(timedelta(hours=8))


@dataclass(frozen=True, slots=True)
class SimulationConfig:
    """What to simulate. ``malformed`` is the share of extra, deliberately bad lines."""

    users: int = 1000
    days: int = 180
    seed: int = 1
    start_ms: int = field(default_factory=lambda: to_epoch_ms(DEFAULT_START))
    malformed: float = 0.0
    # Shares of users met under a second id first and then identified (``wx`` + index),
    # who ask to be forgotten (their events stop then), and who opt out of marketing.
    identities: float = 0.0
    forgets: float = 0.0
    opt_outs: float = 0.0


class _User:
    """Writes one user's events; ``day`` offsets are fractional days from the start."""

    def __init__(self, index: int, rng: random.Random, config: SimulationConfig) -> None:
        self.index = index
        self.id = f"u{index:06d}"
        self.rng = rng
        self.config = config
        self.channel = rng.choices([c for c, _ in CHANNELS], [w for _, w in CHANNELS])[0]
        self.favourite = rng.choice(CATEGORIES)
        self.events: list[tuple[int, dict[str, Any]]] = []
        self.count = 0
        self.group: str | None = None

    def emit(self, type_: str, day: float, **props: Any) -> int | None:
        """Add an event ``day`` days in; events past the end of the run are dropped."""
        if not 0 <= day < self.config.days:
            return None
        ts = self.ts(day)
        self.count += 1
        channel = self.channel if self.rng.random() < 0.8 else self.rng.choice(CHANNELS)[0]
        event = {
            "event_id": f"{self.id}-{self.config.seed}-{self.count}",
            "user_id": self.id,
            "type": type_,
            "ts": self.timestamp(ts),
            "channel": channel,
            "props": props,
        }
        self.events.append((ts, event))
        return ts

    def join(self, day: float) -> None:
        """Join the membership; two members in three give a birthday (from the index, so
        that it takes no draw: the rest of the stream stays as it was)."""
        index = self.index
        if index % 3 == 0:
            self.emit("member_join", day)
            return
        birthday = f"{1970 + index % 35}-{1 + index % 12:02d}-{1 + index * 7 % 28:02d}"
        self.emit("member_join", day, birthday=birthday if index % 3 == 1 else birthday[5:])

    def ts(self, day: float) -> int:
        """Epoch ms of a day offset. Shoppers are awake 08:00-23:00 Shanghai time."""
        return self.config.start_ms + int(day) * DAY_MS + int((day % 1) * 15 * 3_600_000)

    def timestamp(self, ts: int) -> str | int:
        """Mostly ISO-8601 (UTC or Shanghai time), sometimes epoch ms, as producers differ."""
        roll = self.rng.random()
        if roll < 0.1:
            return ts
        moment = datetime.fromtimestamp(ts / 1000, UTC)
        if roll < 0.55:
            return moment.astimezone(_SHANGHAI).isoformat(timespec="milliseconds")
        return format_ts(ts)

    def emit_at(self, type_: str, ts: int, **props: Any) -> None:
        """Add an event at an exact time (an identity or consent event)."""
        self.count += 1
        event = {
            "event_id": f"{self.id}-{self.config.seed}-{self.count}",
            "user_id": self.id,
            "type": type_,
            "ts": self.timestamp(ts),
            "channel": self.channel,
            "props": props,
        }
        self.events.append((ts, event))

    def identity(self, rng: random.Random) -> None:
        """Who the user is, over time: first met under a second id as well (then linked
        by an identify), opting out of marketing, asking to be forgotten. Drawn from its
        own ``rng``, so that a config without them gives the stream it always gave."""
        config = self.config
        times = sorted(ts for ts, _ in self.events)
        if len(times) >= 2 and rng.random() < config.identities:
            other = f"wx{self.index:06d}"
            linked = times[len(times) // 2] + 1
            for ts, event in self.events:
                if ts < linked and rng.random() < 0.5:
                    event["user_id"] = other
            self.emit_at("identify", linked, ids=[other])
        if times and rng.random() < config.opt_outs:
            self.emit_at("marketing_opt_out", rng.choice(times) + 2)
        if len(times) >= 2 and rng.random() < config.forgets:
            gone = times[-1 - len(times) // 4] + 3
            self.events = [(ts, e) for ts, e in self.events if ts < gone]
            self.emit_at("forget", gone)

    def category(self) -> str:
        return self.favourite if self.rng.random() < 0.6 else self.rng.choice(CATEGORIES)

    def browse(self, day: float, views: int = 3) -> None:
        for i in range(views):
            sku = f"sku-{self.rng.randrange(500)}"
            self.emit("view", day + i * 0.01, category=self.category(), sku=sku)
        if self.rng.random() < 0.3:
            self.emit("add_to_cart", day + 0.05, category=self.category(), sku="sku-1")

    def purchase(self, day: float, scale: float = 1.0) -> None:
        self.browse(day - 0.1, self.rng.randint(1, 3))
        amount = round(min(50_000.0, self.rng.lognormvariate(5.2, 0.7) * scale), 2)
        order = f"o-{self.id}-{self.count}"
        if self.emit("purchase", day, amount=amount, order_id=order, category=self.category()):
            self.emit("points_earned", day + 0.001, points=int(amount))
            if self.rng.random() < 0.04:
                self.emit("refund", day + self.rng.uniform(1, 10), amount=amount, order_id=order)

    def purchases(self, first: float, last: float, gap: tuple[float, float], scale: float) -> None:
        day = first
        while day < last:
            self.purchase(day, scale)
            day += self.rng.uniform(*gap)

    def habits(self, start: float) -> None:
        """What any customer may do besides their persona."""
        rng = self.rng
        friend = rng.random() < 0.3 and self.emit("friend_add", start - 0.2) is not None
        if rng.random() < 0.25:
            for _ in range(rng.randint(1, 3)):
                day = rng.uniform(start, self.config.days)
                coupon = f"c-{self.id}-{self.count}"
                expires = format_ts(self.ts(day) + rng.randint(5, 14) * DAY_MS)
                issued = self.emit("coupon_issued", day, coupon_id=coupon, expires_at=expires)
                if issued is not None and rng.random() < 0.5:
                    self.emit("coupon_redeemed", day + rng.uniform(0.1, 4), coupon_id=coupon)
        if rng.random() < 0.2:
            score = rng.choices(range(11), [2, 1, 1, 2, 2, 4, 6, 10, 14, 14, 10])[0]
            self.emit("survey", rng.uniform(start, self.config.days), score=score)
        if rng.random() < 0.15:
            for _ in range(rng.randint(1, 4)):
                self.emit("store_visit", rng.uniform(start, self.config.days))
        if rng.random() < 0.15:
            for _ in range(rng.randint(1, 10)):
                self.emit("check_in", rng.uniform(start, self.config.days))
        # Drawn last, so that adding them left the rest of each user's stream as it was.
        if friend and rng.random() < 0.15:
            self.emit("friend_delete", rng.uniform(start, self.config.days))
        if self.group is not None and rng.random() < 0.5:
            slip = rng.random() < 0.1
            text = rng.choice(STAFF_SLIPS if slip else STAFF)
            day = rng.uniform(start, self.config.days)
            self.emit("message", day, text=text, group_id=self.group, sender_role="staff")

    def chat(self, start: float, messages: int) -> None:
        group = self.group = f"g-{self.rng.randrange(40)}"
        self.emit("group_join", start, group_id=group)
        for _ in range(messages):
            text = self.rng.choice(COMPLAINTS if self.rng.random() < 0.08 else CHAT)
            self.emit(
                "message", self.rng.uniform(start, self.config.days), text=text, group_id=group
            )
        if self.rng.random() < 0.2:
            self.emit("group_leave", self.rng.uniform(start, self.config.days), group_id=group)


def _browser(user: _User, start: float, days: int) -> None:
    day = start
    while day < days:
        user.browse(day, user.rng.randint(1, 5))
        day += user.rng.uniform(3, 25)


def _one_time(user: _User, start: float, days: int) -> None:
    user.browse(start, 4)
    user.purchase(start + 0.5)
    _browser(user, start + user.rng.uniform(10, 60), days)


def _repeat(user: _User, start: float, days: int) -> None:
    user.purchases(start, days, (15, 45), 1.0)


def _loyal(user: _User, start: float, days: int) -> None:
    user.join(start - 0.1)
    user.purchases(start, days, (4, 14), 3.0)


def _churner(user: _User, start: float, days: int) -> None:
    stop = start + user.rng.uniform(20, max(30, days / 3))
    user.purchases(start, stop, (5, 20), 1.5)


def _win_back(user: _User, start: float, days: int) -> None:
    stop = start + user.rng.uniform(10, 40)
    user.purchases(start, stop, (5, 12), 1.2)
    back = stop + user.rng.uniform(65, 200)
    user.purchases(back, days, (10, 30), 1.0)


def _koc(user: _User, start: float, days: int) -> None:
    user.purchases(start, days, (3, 9), 1.0)
    day = start
    while day < days:
        if user.rng.random() < 0.7:
            user.emit("share", day, sku=f"sku-{user.rng.randrange(500)}")
        else:
            user.emit("referral", day, invitee_id=f"x-{user.id}-{user.count}")
        day += user.rng.uniform(2, 8)


def _new_member(user: _User, start: float, days: int) -> None:
    user.join(start)
    user.browse(start + 1, 2)
    if user.rng.random() < 0.4:
        user.purchase(start + user.rng.uniform(1, 20))


def _chatter(user: _User, start: float, days: int) -> None:
    user.chat(start, user.rng.randint(3, 20))
    if user.rng.random() < 0.5:
        user.purchases(start + 2, days, (20, 60), 1.0)


Persona = Callable[[_User, float, int], None]
PERSONAS: Final[tuple[tuple[Persona, int], ...]] = (
    (_browser, 25),
    (_one_time, 14),
    (_repeat, 18),
    (_loyal, 8),
    (_churner, 10),
    (_win_back, 6),
    (_koc, 4),
    (_new_member, 8),
    (_chatter, 7),
)


def _malformed(rng: random.Random, good: str) -> str:
    """One bad line of a kind producers really send."""
    kind = rng.randrange(8)
    if kind == 0:
        return good[: rng.randrange(1, len(good) - 1)]  # truncated JSON
    event = orjson.loads(good)
    if kind == 1:
        del event["user_id"]
    elif kind == 2:
        event["ts"] = "2026-03-01 10:00:00"  # no time zone
    elif kind == 3:
        event["type"] = "purchase"
        event["props"] = {"amount": "lots"}
    elif kind == 4:
        event["props"] = {"text": "x" * 70_000}  # over the size limit
    elif kind == 5:
        nested: dict[str, Any] = {}
        for _ in range(20):
            nested = {"a": nested}
        event["props"] = nested
    elif kind == 6:
        return "[1, 2, 3]"
    else:
        event["user_id"] = 12345
    return orjson.dumps(event).decode()


def simulate(config: SimulationConfig) -> Iterator[str]:
    """Yield the stream as JSON lines (no newline), in event-time order.

    The same config always gives the same lines. With ``malformed`` > 0, about that share
    of extra bad lines is mixed in; every good event is still there.
    """
    rng = random.Random(config.seed)
    who = random.Random(config.seed ^ 0x1D)
    personas = [p for p, _ in PERSONAS]
    weights = [w for _, w in PERSONAS]
    events: list[tuple[int, int, dict[str, Any]]] = []
    for index in range(config.users):
        user = _User(index, random.Random(rng.getrandbits(64)), config)
        start = user.rng.uniform(0, config.days * 0.7)
        persona = user.rng.choices(personas, weights)[0]
        user.emit("view", start - 0.3, category=user.favourite, sku="sku-0")
        persona(user, start, config.days)
        user.habits(start)
        user.identity(who)
        events.extend((ts, index, event) for ts, event in user.events)
    events.sort(key=lambda item: (item[0], item[1]))
    bad = random.Random(config.seed ^ 0x5EED)
    for _, _, event in events:
        line = orjson.dumps(event).decode()
        yield line
        if config.malformed and bad.random() < config.malformed:
            yield _malformed(bad, line)
