"""Fair sharing of the embedder between clients: per-client limits on request rate, on fresh characters per
minute and on fresh characters queued at once. A client is its API key (by fingerprint), else its address.

Fresh characters are those of texts the prediction cache cannot answer, i.e. what the embedder must still read.
Over a limit the request is refused with 429 and a ``Retry-After`` estimate; nothing is queued for it. The
micro-batcher then serves the admitted requests round-robin by client (``service/batching.py``), so one client's
queue never stands in front of everyone else's.
"""

from __future__ import annotations

import math
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Iterator

MAX_CLIENTS = 10_000  # idle clients beyond this are forgotten (their buckets are full again anyway)


class RateLimited(Exception):
    """Over a per-client limit; ``retry_after`` in whole seconds, ``limit`` names the setting."""

    def __init__(self, message: str, retry_after: int, limit: str):
        super().__init__(message)
        self.message = message
        self.retry_after = max(1, int(retry_after))
        self.limit = limit


@dataclass
class _Bucket:
    """A token bucket: ``capacity`` tokens, refilled at ``rate`` per second; may go into debt by one request."""

    capacity: float
    rate: float
    tokens: float = field(init=False)
    stamp: float = field(default_factory=time.monotonic)

    def __post_init__(self):
        self.tokens = self.capacity

    def refill(self, now: float) -> None:
        if now > self.stamp:
            self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
            self.stamp = now

    def wait_for(self, amount: float) -> float:
        """Seconds until ``amount`` tokens are there (an amount over the capacity: until the bucket is full)."""
        need = min(amount, self.capacity) - self.tokens
        return max(0.0, need / self.rate) if self.rate > 0 else math.inf


@dataclass
class _Client:
    requests: _Bucket | None
    chars: _Bucket | None
    queued: int = 0


class FairShare:
    """The per-client limits; every figure 0 turns that limit off. Thread-safe."""

    def __init__(self, *, requests_per_minute: int = 600, chars_per_minute: int = 30_000, queued_chars: int = 30_000,
                 chars_per_second_estimate: float = 3_000.0):
        self.requests_per_minute = int(requests_per_minute)
        self.chars_per_minute = int(chars_per_minute)
        self.queued_chars = int(queued_chars)
        self.chars_per_second = float(chars_per_second_estimate)  # updated from what the embedder achieves
        self._clients: dict[str, _Client] = {}
        self._lock = threading.Lock()
        self.refused: dict[str, int] = {"requests_per_minute": 0, "chars_per_minute": 0, "queued_chars": 0}

    def _client(self, client: str, now: float) -> _Client:
        state = self._clients.get(client)
        if state is None:
            if len(self._clients) >= MAX_CLIENTS:
                self._forget_idle(now)
            rpm, cpm = self.requests_per_minute, self.chars_per_minute
            state = _Client(requests=_Bucket(max(1.0, rpm / 10), rpm / 60) if rpm > 0 else None,
                            chars=_Bucket(float(cpm), cpm / 60) if cpm > 0 else None)
            self._clients[client] = state
        for bucket in (state.requests, state.chars):
            if bucket is not None:
                bucket.refill(now)
        return state

    def _forget_idle(self, now: float) -> None:
        for name, state in list(self._clients.items()):
            for bucket in (state.requests, state.chars):
                if bucket is not None:
                    bucket.refill(now)
            full = all(b is None or b.tokens >= b.capacity for b in (state.requests, state.chars))
            if state.queued == 0 and full:
                del self._clients[name]

    def _refuse(self, limit: str, message: str, seconds: float) -> RateLimited:
        self.refused[limit] += 1
        return RateLimited(message, math.ceil(seconds) if math.isfinite(seconds) else 60, limit)

    def admit_request(self, client: str) -> None:
        """Count one request against the client's request rate, or raise RateLimited."""
        if self.requests_per_minute <= 0:
            return
        with self._lock:
            bucket = self._client(client, time.monotonic()).requests
            assert bucket is not None
            if bucket.tokens < 1:
                raise self._refuse("requests_per_minute", f"too many requests from this client: the limit is "
                                   f"{self.requests_per_minute} per minute", bucket.wait_for(1))
            bucket.tokens -= 1

    @contextmanager
    def reserve(self, client: str, fresh_chars: int) -> Iterator[None]:
        """Hold ``fresh_chars`` of the client's queue while its texts are embedded, or raise RateLimited.

        A request over the queue limit is taken when the client has nothing queued (so the longest allowed text
        always gets through), and one over a minute's characters when the client's bucket is full (it then waits
        correspondingly longer before its next fresh text)."""
        if fresh_chars <= 0:
            yield
            return
        with self._lock:
            state = self._client(client, time.monotonic())
            if self.queued_chars > 0 and state.queued > 0 and state.queued + fresh_chars > self.queued_chars:
                raise self._refuse("queued_chars", f"this client already has {state.queued} characters waiting to "
                                   f"be read; the limit is {self.queued_chars} at a time",
                                   state.queued / max(self.chars_per_second, 1.0))
            bucket = state.chars
            if bucket is not None and bucket.tokens < min(fresh_chars, bucket.capacity):
                raise self._refuse("chars_per_minute", f"this client sent more new text than its share: the limit "
                                   f"is {self.chars_per_minute} new characters per minute",
                                   bucket.wait_for(fresh_chars))
            if bucket is not None:
                bucket.tokens -= fresh_chars
            state.queued += fresh_chars
        try:
            yield
        finally:
            with self._lock:
                state.queued -= fresh_chars

    def observe(self, chars: int, seconds: float) -> None:
        """Feed the embedder's throughput (for Retry-After estimates), smoothed."""
        if chars > 0 and seconds > 0:
            self.chars_per_second = 0.8 * self.chars_per_second + 0.2 * (chars / seconds)

    def stats(self) -> dict:
        with self._lock:
            return {"clients": len(self._clients), "queued_chars": sum(c.queued for c in self._clients.values()),
                    "refused": dict(self.refused), "chars_per_second": round(self.chars_per_second, 1)}
