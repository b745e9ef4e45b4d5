"""A micro-batcher: requests arriving within a few milliseconds are processed together by one call in a worker
thread, so the embedding model sees small batches and the event loop never runs CPU-bound work.

``submit(key, payload, client=..., weight=...)`` queues a payload; the collector takes the first waiting payload,
then waits up to ``wait_ms`` for more (up to ``max_items``, and up to ``max_weight`` in total weight, e.g.
characters), groups them by ``key`` (e.g. the model they must run on) and calls ``process(key, payloads)`` once per
group in the executor. While a batch runs, new requests queue up and form the next batch, so under load batches
fill by themselves and a lone request waits at most ``wait_ms``.

Fairness: each client has its own queue and the collector takes one payload per client in turn (round-robin), so
a client that queued many payloads, or long ones, never stands in front of the others. A payload heavier than the
batch's remaining weight waits for the next batch (it keeps its turn); one heavier than ``max_weight`` runs alone,
and never right after another such batch while light payloads wait (a batch already running cannot be
interrupted, so light payloads wait for at most one heavy batch at a time).

Long payloads in steps: with ``prepare(key, payload)`` given, a heavy payload is first prepared in steps (an
iterator whose every ``next`` is one short piece of work in the executor, e.g. embedding two chunks of a long text
into the cache); between the steps, light payloads that are waiting run as batches of their own. So a light
request waits for at most one step, not for a whole long text.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any, Callable, Hashable, Iterator, Sequence

log = logging.getLogger("laari.service.batching")


@dataclass
class _Job:
    key: Hashable
    payload: Any
    future: asyncio.Future
    client: Hashable = None
    weight: int = 1
    queued: float = field(default_factory=time.perf_counter)


class _FairQueue:
    """One FIFO queue per client and a ring of the clients that have something queued."""

    def __init__(self, max_weight: float | None = None):
        self.queues: dict[Hashable, deque[_Job]] = {}
        self.ring: deque[Hashable] = deque()
        self.ready = asyncio.Event()
        self.max_weight = max_weight
        self.last_heavy = False  # the previous batch was one payload over max_weight

    def heavy(self, job: _Job) -> bool:
        return self.max_weight is not None and job.weight > self.max_weight

    def __len__(self) -> int:
        return sum(len(q) for q in self.queues.values())

    def put(self, job: _Job) -> None:
        q = self.queues.get(job.client)
        if q is None:
            q = self.queues[job.client] = deque()
            self.ring.append(job.client)
        q.append(job)
        self.ready.set()

    def take(self, room: float | None) -> _Job | None:
        """The next client's oldest job that fits in ``room`` weight (None: any); that client goes to the back of
        the ring. Clients whose job does not fit keep their place. Right after a heavy batch, a light job goes
        first when one is waiting."""
        if room is None and self.last_heavy:
            job = self.take(self.max_weight)
            if job is not None:
                return job
        idx = 0
        while idx < len(self.ring):
            client = self.ring[idx]
            q = self.queues[client]
            while q and q[0].future.done():  # a cancelled request needs no work
                q.popleft()
            if not q:
                del self.ring[idx]
                del self.queues[client]
                continue
            if room is not None and q[0].weight > room:
                idx += 1
                continue
            job = q.popleft()
            del self.ring[idx]
            if q:
                self.ring.append(client)
            else:
                del self.queues[client]
            return job
        if not self.queues:
            self.ready.clear()
        return None


class MicroBatcher:
    def __init__(self, process: Callable[[Any, Sequence[Any]], Sequence[Any]], executor: Executor, *,
                 max_items: int = 8, wait_ms: float = 5.0, max_weight: float = 0,
                 prepare: Callable[[Any, Any], Iterator[Any] | None] | None = None):
        self.process = process
        self.prepare = prepare
        self.steps = 0  # preparation steps run for heavy payloads
        self.executor = executor
        self.max_items = max(1, int(max_items))
        self.wait = max(0.0, float(wait_ms)) / 1000.0
        self.max_weight = float(max_weight) if max_weight and max_weight > 0 else None
        self._queue: _FairQueue | None = None
        self._task: asyncio.Task | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.batches = 0
        self.items = 0
        self.largest = 0
        self.busy_seconds = 0.0

    def stats(self) -> dict[str, float]:
        return {"batches": self.batches, "items": self.items, "largest_batch": self.largest,
                "mean_batch": round(self.items / self.batches, 2) if self.batches else 0.0,
                "busy_seconds": round(self.busy_seconds, 3),
                "queued": len(self._queue) if self._queue is not None else 0}

    def _ensure_started(self) -> _FairQueue:
        loop = asyncio.get_running_loop()
        if self._loop is not loop or self._task is None or self._task.done():
            self._loop = loop
            self._queue = _FairQueue(self.max_weight)
            self._task = loop.create_task(self._run(self._queue), name="laari-micro-batcher")
        return self._queue  # type: ignore[return-value]

    async def submit(self, key: Hashable, payload: Any, *, client: Hashable = None, weight: int = 1) -> Any:
        """Queue one payload; returns its result (or raises the exception ``process`` raised for its batch)."""
        queue = self._ensure_started()
        future = asyncio.get_running_loop().create_future()
        queue.put(_Job(key, payload, future, client, weight))
        return await future

    async def submit_many(self, key: Hashable, payloads: Sequence[Any], *, client: Hashable = None,
                          weights: Sequence[int] | None = None) -> list[Any]:
        """Queue several payloads at once (a batch request): they are processed in batches of ``max_items``,
        taking turns with the other clients' payloads."""
        queue = self._ensure_started()
        loop = asyncio.get_running_loop()
        futures = []
        for i, p in enumerate(payloads):
            f = loop.create_future()
            futures.append(f)
            queue.put(_Job(key, p, f, client, weights[i] if weights is not None else 1))
        return list(await asyncio.gather(*futures))

    async def _collect(self, queue: _FairQueue) -> list[_Job]:
        batch: list[_Job] = []
        while not batch:
            await queue.ready.wait()
            first = queue.take(None)
            if first is not None:
                batch.append(first)
        weight = batch[0].weight
        queue.last_heavy = queue.heavy(batch[0])
        deadline = time.perf_counter() + self.wait
        while len(batch) < self.max_items:
            room = None if self.max_weight is None else self.max_weight - weight
            if room is not None and room <= 0:
                break
            job = queue.take(room)
            if job is not None:
                batch.append(job)
                weight += job.weight
                continue
            remaining = deadline - time.perf_counter()
            if remaining <= 0:
                break
            queue.ready.clear()
            try:
                await asyncio.wait_for(queue.ready.wait(), remaining)
            except asyncio.TimeoutError:
                break
        if len(queue):
            queue.ready.set()
        return batch

    def _waiting_light(self, queue: _FairQueue) -> list[_Job]:
        """The light payloads queued right now, as one batch (round-robin, within the weight budget)."""
        batch: list[_Job] = []
        weight = 0.0
        while len(batch) < self.max_items and self.max_weight is not None and weight < self.max_weight:
            job = queue.take(self.max_weight - weight)
            if job is None:
                break
            batch.append(job)
            weight += job.weight
        if len(queue):
            queue.ready.set()
        return batch

    async def _prepare_in_steps(self, queue: _FairQueue, job: _Job) -> None:
        """Run ``prepare`` for a heavy payload one step at a time, with the waiting light payloads in between."""
        loop = asyncio.get_running_loop()
        try:
            steps = self.prepare(job.key, job.payload)
        except Exception:  # preparing is an optimisation: the payload is processed as it is
            log.exception("preparing a heavy payload failed")
            return
        if steps is None:
            return
        done = object()
        while not job.future.done():
            started = time.perf_counter()
            try:
                step = await loop.run_in_executor(self.executor, next, steps, done)
            except Exception:
                log.exception("a preparation step failed")
                return
            finally:
                self.busy_seconds += time.perf_counter() - started
            if step is done:
                return
            self.steps += 1
            light = self._waiting_light(queue)
            if light:
                await self._run_batch(light)

    async def _run(self, queue: _FairQueue) -> None:
        while True:
            batch = await self._collect(queue)
            if self.prepare is not None and len(batch) == 1 and queue.heavy(batch[0]):
                await self._prepare_in_steps(queue, batch[0])
            await self._run_batch(batch)

    async def _run_batch(self, batch: list[_Job]) -> None:
        loop = asyncio.get_running_loop()
        batch = [job for job in batch if not job.future.done()]  # a cancelled request needs no work
        groups: dict[Hashable, list[_Job]] = {}
        for job in batch:
            groups.setdefault(job.key, []).append(job)
        for key, jobs in groups.items():
            started = time.perf_counter()
            try:
                results = await loop.run_in_executor(self.executor, self.process, key,
                                                     [j.payload for j in jobs])
                if len(results) != len(jobs):
                    raise RuntimeError(f"batch processor returned {len(results)} results for {len(jobs)} items")
            except asyncio.CancelledError:
                for job in jobs:
                    if not job.future.done():
                        job.future.cancel()
                raise
            except Exception as exc:  # one failing batch fails its own requests, never the collector
                log.exception("batch of %d failed", len(jobs))
                for job in jobs:
                    if not job.future.done():
                        job.future.set_exception(exc)
                continue
            finally:
                self.busy_seconds += time.perf_counter() - started
            self.batches += 1
            self.items += len(jobs)
            self.largest = max(self.largest, len(jobs))
            for job, result in zip(jobs, results):
                if not job.future.done():
                    job.future.set_result(result)

    async def aclose(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):
                pass
        self._task = None
