"""Traffic for the chaos suite: a paced publisher that survives broker outages, and poison.

``PacedPublisher`` generates valid routing events (keyed by ``request_id``, event time =
wall clock at generation, a few routers and arms) at a fixed rate into an unbounded
in-process backlog; one sender task moves the backlog into an idempotent ``acks=all``
aiokafka producer. A send that fails (broker gone, batch expired) puts the event back at
the head of the backlog and is retried, so every generated event is eventually
acknowledged — and the ground truth is the topic anyway (a retried event that had in
fact been written appears twice in the topic and must then be counted twice).

``poison_records`` builds one record of each hostile kind; each says what the contract
intends for it (``dlq`` or ``count``), independently of what the decoder says.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from bifrost.schemas.codec import encode
from bifrost.schemas.events import Bucket, RoutingEvent

log = logging.getLogger("bifrost.chaos.traffic")

ROUTERS = ("router-a", "router-b", "router-c")
ARMS = {"v1": 0.6, "v2": 0.3, "v3": 0.1}
MODELS = (
    ("small-fast", "acme", Bucket.CHEAP),
    ("mid-general", "acme", Bucket.MID),
    ("large-reasoner", "frontier", Bucket.HARD),
)

# Records up to this size go through the producer (the broker's default limit is 1,048,588 B).
PRODUCER_MAX_REQUEST_BYTES = 2 * 1024 * 1024


class EventFactory:
    """Valid routing events, seeded; ``make(i)`` returns (key, value bytes)."""

    def __init__(
        self, seed: int, run_tag: str, routers: tuple[str, ...] = ROUTERS, arms: dict[str, float] = ARMS
    ) -> None:
        self._rng = random.Random(seed)
        self._tag = run_tag
        self.routers = routers
        self._arm_names = list(arms)
        self._arm_weights = list(arms.values())

    def make(self, i: int, ts: float | None = None) -> tuple[bytes, bytes]:
        rng = self._rng
        model, provider, bucket = MODELS[rng.randrange(len(MODELS))]
        failed = rng.random() < 0.02
        event = RoutingEvent(
            request_id=f"chaos-{self._tag}-{i}",
            ts=time.time() if ts is None else ts,
            router_id=self.routers[rng.randrange(len(self.routers))],
            arm=rng.choices(self._arm_names, self._arm_weights)[0],
            model=model,
            provider=provider,
            bucket=bucket,
            latency_ms=round(rng.lognormvariate(6.0, 0.5), 2),
            cost_usd=round(rng.random() * 0.01, 6),
            success=not failed,
            tokens_in=rng.randrange(10, 2000),
            tokens_out=0 if failed else rng.randrange(1, 800),
            http_status=502 if failed else 200,
            propensity=0.9,
        )
        return event.request_id.encode(), encode(event)


# --------------------------------------------------------------------------- poison


@dataclass(frozen=True, slots=True)
class Poison:
    """One hostile record: what to send and what the contract intends to happen to it."""

    name: str
    key: bytes | None
    value: bytes | None
    intended: str  # "dlq", "count", or "decoder" (either, as the decoder says, exactly once)
    note: str = ""
    headers: tuple[tuple[str, bytes], ...] = ()

    @property
    def size(self) -> int:
        return len(self.key or b"") + len(self.value or b"")


def _valid_body(factory: EventFactory, i: int) -> bytes:
    """A valid event's JSON without its closing brace, to append fields to."""
    return factory.make(i)[1][:-1]


def poison_records(seed: int, run_tag: str) -> list[Poison]:
    """Every hostile kind once (plus hostile-but-valid records that must be counted)."""
    f = EventFactory(seed + 1, f"{run_tag}-poison")
    body = lambda i: _valid_body(f, i)  # noqa: E731
    valid = lambda i: body(i) + b"}"  # noqa: E731

    def replace_field(i: int, name: bytes, raw: bytes) -> bytes:
        import re

        out = re.sub(rb'"' + name + rb'":[^,}]*', lambda _: b'"' + name + b'":' + raw, valid(i), count=1)
        assert out != valid(i) or raw in valid(i), name
        return out

    k = lambda name: f"poison-{run_tag}-{name}".encode()  # noqa: E731
    out = [
        Poison(
            "nested_1000",
            k("nested_1000"),
            body(1) + b',"unknown":' + b"[" * 1000 + b"]" * 1000 + b"}",
            "dlq",
            "1,000-deep nested arrays in an unknown field (2 KB: parsed)",
        ),
        Poison(
            "nested_100000",
            k("nested_100000"),
            body(2) + b',"unknown":' + b"[" * 100_000 + b"]" * 100_000 + b"}",
            "dlq",
            "100,000-deep nested arrays in an unknown field (200 KB: over the size limit)",
        ),
        Poison(
            "nested_objects_10000",
            k("nested_objects_10000"),
            body(3) + b',"unknown":' + b'{"a":' * 10_000 + b"1" + b"}" * 10_000 + b"}",
            "dlq",
            "10,000-deep nested objects, 60 KB: under the 64 KiB limit, so the parser does see it",
        ),
        Poison(
            "huge_900k",
            k("huge_900k"),
            body(4) + b',"pad":"' + b"x" * 900_000 + b'"}',
            "dlq",
            "~900 KB record (a dead letter with its full base64 would exceed 1 MB)",
        ),
        Poison(
            "schema_version_2_70",
            k("schema_version_2_70"),
            body(5) + b',"schema_version":' + str(2**70).encode() + b"}",
            "dlq",
            "schema_version 2**70 (no int64 fits it)",
        ),
        Poison("nan", k("nan"), replace_field(6, b"cost_usd", b"NaN"), "dlq", "NaN literal"),
        Poison("infinity", k("infinity"), replace_field(7, b"latency_ms", b"Infinity"), "dlq", "Infinity literal"),
        Poison(
            "overflow_1e999",
            k("overflow_1e999"),
            replace_field(8, b"cost_usd", b"1e999"),
            "dlq",
            "1e999 (parses to inf)",
        ),
        Poison(
            "invalid_utf8",
            k("invalid_utf8"),
            replace_field(9, b"router_id", b'"r\xff\xfe\xc3"'),
            "dlq",
            "invalid UTF-8 in a string",
        ),
        Poison(
            "invalid_utf8_key",
            b"\xff\xfe\xfd" + k("invalid_utf8_key"),
            valid(10),
            "count",
            "invalid UTF-8 key with a valid value: keys are not validated, must be counted",
        ),
        Poison(
            "invalid_utf8_ignored_field",
            k("invalid_utf8_ignored_field"),
            body(30) + b',"unknown":"\xc0\x80\xff"}',
            "decoder",
            "invalid UTF-8 inside an unknown (skipped) field: either outcome, as long as it is exactly one",
        ),
        Poison(
            "ts_future_1d",
            k("ts_future_1d"),
            replace_field(31, b"ts", str(int(time.time()) + 86_400).encode()),
            "dlq",
            "event time a day ahead (invalid_value)",
        ),
        Poison(
            "lone_surrogate",
            k("lone_surrogate"),
            replace_field(11, b"router_id", b'"r\\ud800"'),
            "dlq",
            "lone UTF-16 surrogate escape",
        ),
        Poison("tombstone", k("tombstone"), None, "dlq", "null value (tombstone)"),
        Poison("empty_value", k("empty_value"), b"", "dlq", "zero-length value"),
        Poison("json_array", k("json_array"), b"[1,2,3]", "dlq", "non-object JSON (array)"),
        Poison("json_string", k("json_string"), b'"hello"', "dlq", "non-object JSON (string)"),
        Poison("json_null", k("json_null"), b"null", "dlq", "non-object JSON (null)"),
        Poison("json_number", k("json_number"), b"1e308", "dlq", "non-object JSON (number)"),
        Poison(
            "key_1mb_invalid",
            b"K" * 1_000_000,
            b"{}",
            "dlq",
            "1 MB key (1,000,000 B; the broker's record limit is 1,048,588 B) with an invalid value",
        ),
        Poison("truncated", k("truncated"), valid(12)[:-20], "dlq", "valid event cut short"),
        Poison(
            "trailing_garbage",
            k("trailing_garbage"),
            valid(13) + b" trailing",
            "dlq",
            "trailing bytes after the object",
        ),
        Poison("utf8_bom", k("utf8_bom"), b"\xef\xbb\xbf" + valid(14), "dlq", "UTF-8 byte-order mark before the JSON"),
        Poison("utf16", k("utf16"), valid(15).decode().encode("utf-16"), "dlq", "the event encoded as UTF-16"),
        Poison(
            "ts_milliseconds",
            k("ts_milliseconds"),
            replace_field(16, b"ts", str(int(time.time() * 1000)).encode()),
            "dlq",
            "event time in milliseconds (invalid_value, far future)",
        ),
        Poison("ts_negative", k("ts_negative"), replace_field(17, b"ts", b"-1"), "dlq", "negative event time"),
        Poison("ts_string", k("ts_string"), replace_field(18, b"ts", b'"now"'), "dlq", "event time as a string"),
        Poison(
            "int_2_64", k("int_2_64"), replace_field(19, b"tokens_in", str(2**64).encode()), "dlq", "tokens_in = 2**64"
        ),
        Poison(
            "router_id_129",
            k("router_id_129"),
            replace_field(20, b"router_id", b'"' + b"r" * 129 + b'"'),
            "dlq",
            "router_id one char over its 128 limit",
        ),
        Poison(
            "features_513",
            k("features_513"),
            replace_field(21, b"features", b"[" + b",".join([b"0.5"] * 513) + b"]"),
            "dlq",
            "513 features (limit 512)",
        ),
        Poison("oversized_65537", k("oversized_65537"), b"", "dlq", "one byte over BIFROST_MAX_EVENT_BYTES (64 KiB)"),
        Poison(
            "many_keys",
            k("many_keys"),
            body(22) + b"," + b",".join(b'"u%d":%d' % (j, j) for j in range(4800)) + b"}",
            "count",
            "a valid event with 4,800 unknown fields (~60 KB): must be counted",
        ),
        Poison("exactly_65536", k("exactly_65536"), b"", "count", "a valid event of exactly 64 KiB: must be counted"),
        Poison(
            "key_1mb_valid",
            b"V" * 1_000_000,
            valid(23),
            "count",
            "1 MB key with a valid value: keys are not validated, must be counted",
        ),
        Poison(
            "nul_in_string",
            k("nul_in_string"),
            replace_field(24, b"provider", b'"p\\u0000q"'),
            "count",
            "escaped NUL in a string: valid",
        ),
        Poison(
            "duplicate_field",
            k("duplicate_field"),
            body(25) + b',"arm":"v1"}',
            "count",
            "a duplicated field (last wins): valid",
        ),
        Poison(
            "headers_100",
            k("headers_100"),
            valid(26),
            "count",
            "valid event with 100 record headers",
            headers=tuple((f"h{j}", b"x" * 10) for j in range(100)),
        ),
        Poison("null_key_valid", None, valid(27), "count", "valid event without a key"),
    ]
    # Fill the two size-boundary records to their exact sizes.
    fixed = []
    for p in out:
        if p.name in ("oversized_65537", "exactly_65536"):
            target = 65_537 if p.name == "oversized_65537" else 65_536
            head = body(28 if target == 65_537 else 29) + b',"pad":"'
            value = head + b"x" * (target - len(head) - 2) + b'"}'
            assert len(value) == target
            p = Poison(p.name, p.key, value, p.intended, p.note)
        fixed.append(p)
    return fixed


# --------------------------------------------------------------------------- publisher


@dataclass(slots=True)
class PublishStats:
    """What the publisher did (``acked`` events are in the topic for sure)."""

    target_events: int = 0
    rate: float = 0.0
    generated: int = 0
    acked: int = 0
    send_failures: int = 0
    retried: int = 0
    poison_sent: int = 0
    poison_acked: int = 0
    unacked: int = 0  # left when the publisher gave up (bounded wait for acks)
    started_at: float = 0.0  # wall clock
    generation_done_at: float = 0.0
    acked_all_at: float = 0.0
    max_backlog: int = 0
    first_error: str = ""
    # (seconds since start, generated, acked) once a second
    timeline: list[tuple[float, int, int]] = field(default_factory=list)

    @property
    def generation_rate(self) -> float:
        span = self.generation_done_at - self.started_at
        return self.generated / span if span > 0 else 0.0

    @property
    def ack_rate(self) -> float:
        span = self.acked_all_at - self.started_at
        return self.acked / span if span > 0 else 0.0

    def as_dict(self) -> dict[str, object]:
        return {
            "target_events": self.target_events,
            "rate_target": self.rate,
            "generated": self.generated,
            "acked": self.acked,
            "send_failures": self.send_failures,
            "retried": self.retried,
            "poison_sent": self.poison_sent,
            "poison_acked": self.poison_acked,
            "unacked": self.unacked,
            "generation_seconds": round(self.generation_done_at - self.started_at, 2),
            "generation_rate": round(self.generation_rate, 1),
            "ack_seconds": round(self.acked_all_at - self.started_at, 2),
            "ack_rate": round(self.ack_rate, 1),
            "max_backlog": self.max_backlog,
            "first_error": self.first_error,
        }


@dataclass(slots=True)
class _Item:
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...] = ()
    poison: bool = False


class PacedPublisher:
    """Publishes ``events`` valid events at ``rate``/s (plus ``poison`` at given indexes).

    Pacing is by wall clock in 10 ms ticks; generation never waits for Kafka (events
    queue in memory while the broker is away), so the fault never slows the offered load.
    """

    def __init__(
        self,
        bootstrap: str,
        topic: str,
        *,
        events: int,
        rate: float,
        seed: int,
        run_tag: str,
        poison: list[tuple[int, Poison]] | None = None,
        request_timeout_ms: int = 30_000,
        ack_timeout_s: float = 180.0,
    ) -> None:
        self.bootstrap = bootstrap
        self.topic = topic
        self.stats = PublishStats(target_events=events, rate=rate)
        self._factory = EventFactory(seed, run_tag)
        self._poison = sorted(poison or [], key=lambda p: p[0])
        self._backlog: collections.deque[_Item] = collections.deque()
        self._wake = asyncio.Event()
        self._done_generating = False
        self._in_flight = 0
        self._request_timeout_ms = request_timeout_ms
        self._ack_timeout_s = ack_timeout_s  # bound: give up this long after the last event was generated
        self.acked_keys: set[bytes] = set()  # request ids of acknowledged valid events
        self.on_progress: Callable[[int], None] | None = None

    async def run(self) -> PublishStats:
        producer = AIOKafkaProducer(
            bootstrap_servers=self.bootstrap,
            acks="all",
            enable_idempotence=True,
            linger_ms=5,
            max_batch_size=256 * 1024,
            max_request_size=PRODUCER_MAX_REQUEST_BYTES,
            request_timeout_ms=self._request_timeout_ms,
            client_id="bifrost-chaos-publisher",
        )
        await producer.start()
        stats = self.stats
        stats.started_at = time.time()
        sender = asyncio.create_task(self._send_loop(producer))
        try:
            await self._generate()
            await sender
        finally:
            if not sender.done():
                sender.cancel()
            try:
                await asyncio.wait_for(producer.stop(), 60)
            except Exception as exc:  # noqa: BLE001 - reported, the topic is the ground truth
                log.warning("publisher stop failed: %r", exc)
        return stats

    async def _generate(self) -> None:
        stats = self.stats
        rate, total = stats.rate, stats.target_events
        t0 = time.monotonic()
        poison = list(self._poison)
        last_tick = -1
        i = 0
        while i < total:
            due = min(total, int((time.monotonic() - t0) * rate) + 1)
            while i < due:
                while poison and poison[0][0] <= i:
                    p = poison.pop(0)[1]
                    self._backlog.append(_Item(p.key, p.value, p.headers, poison=True))
                    stats.poison_sent += 1
                key, value = self._factory.make(i)
                self._backlog.append(_Item(key, value))
                i += 1
            stats.generated = i
            stats.max_backlog = max(stats.max_backlog, len(self._backlog))
            self._wake.set()
            if self.on_progress is not None:
                self.on_progress(i)
            second = int(time.monotonic() - t0)
            if second != last_tick:
                last_tick = second
                stats.timeline.append((round(time.monotonic() - t0, 2), stats.generated, stats.acked))
            await asyncio.sleep(0.01)
        for _, p in poison:  # indexes past the end
            self._backlog.append(_Item(p.key, p.value, p.headers, poison=True))
            stats.poison_sent += 1
        stats.generation_done_at = time.time()
        self._done_generating = True
        self._wake.set()

    async def _send_loop(self, producer: AIOKafkaProducer) -> None:
        stats = self.stats
        backlog = self._backlog
        while True:
            if self._done_generating and time.time() - stats.generation_done_at > self._ack_timeout_s:
                unacked = stats.unacked = len(backlog) + self._in_flight
                stats.first_error = stats.first_error or f"gave up with {unacked} events unacknowledged"
                log.error(
                    "publisher: %d events still unacknowledged %.0f s after the last was generated; giving up",
                    unacked,
                    self._ack_timeout_s,
                )
                stats.acked_all_at = time.time()
                return
            if not backlog:
                if self._done_generating and self._in_flight == 0 and not backlog:
                    stats.acked_all_at = time.time()
                    return
                self._wake.clear()
                try:
                    await asyncio.wait_for(self._wake.wait(), 0.05)
                except TimeoutError:
                    pass
                continue
            item = backlog.popleft()
            try:
                future = await producer.send(
                    self.topic, value=item.value, key=item.key, headers=list(item.headers) or None
                )
            except (TimeoutError, KafkaError) as exc:
                # Not queued (buffer full for request_timeout, or the broker is away): retry.
                backlog.appendleft(item)
                self._failed(exc)
                await asyncio.sleep(0.5)
                continue
            self._in_flight += 1
            future.add_done_callback(lambda fut, item=item: self._delivered(fut, item))

    def _delivered(self, future: asyncio.Future[object], item: _Item) -> None:
        self._in_flight -= 1
        if future.cancelled() or future.exception() is not None:
            exc = future.exception() if not future.cancelled() else asyncio.CancelledError()
            self._failed(exc)
            self.stats.retried += 1
            self._backlog.appendleft(item)  # may already be in the topic; the topic is the truth
            self._wake.set()
            return
        self.stats.acked += 1
        if item.poison:
            self.stats.poison_acked += 1
        elif item.key is not None:
            self.acked_keys.add(item.key)

    def _failed(self, exc: BaseException | None) -> None:
        self.stats.send_failures += 1
        if not self.stats.first_error:
            self.stats.first_error = repr(exc)[:300]
        if self.stats.send_failures in (1, 10, 100, 1000, 10000):
            log.warning("publisher: send failed (%d so far, retrying): %r", self.stats.send_failures, exc)
