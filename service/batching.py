"""A micro-batcher: requests arriving within a few milliseconds are processed together by one call in a worker
thread, so the embedding model sees small batches and the event loop never runs CPU-bound work.

``submit(key, payload)`` queues a payload; the collector takes the first waiting payload, then waits up to
``wait_ms`` for more (up to ``max_items``), groups them by ``key`` (e.g. the model they must run on) and calls
``process(key, payloads)`` once per group in the executor. While a batch runs, new requests queue up and form the
next batch, so under load batches fill by themselves and a lone request waits at most ``wait_ms``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any, Callable, Hashable, Sequence

log = logging.getLogger("laari.service.batching")


@dataclass
class _Job:
    key: Hashable
    payload: Any
    future: asyncio.Future
    queued: float = field(default_factory=time.perf_counter)


class MicroBatcher:
    def __init__(self, process: Callable[[Any, Sequence[Any]], Sequence[Any]], executor: Executor, *,
                 max_items: int = 8, wait_ms: float = 5.0):
        self.process = process
        self.executor = executor
        self.max_items = max(1, int(max_items))
        self.wait = max(0.0, float(wait_ms)) / 1000.0
        self._queue: asyncio.Queue[_Job] | None = None
        self._task: asyncio.Task | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.batches = 0
        self.items = 0
        self.largest = 0
        self.busy_seconds = 0.0

    def stats(self) -> dict[str, float]:
        return {"batches": self.batches, "items": self.items, "largest_batch": self.largest,
                "mean_batch": round(self.items / self.batches, 2) if self.batches else 0.0,
                "busy_seconds": round(self.busy_seconds, 3)}

    def _ensure_started(self) -> asyncio.Queue:
        loop = asyncio.get_running_loop()
        if self._loop is not loop or self._task is None or self._task.done():
            self._loop = loop
            self._queue = asyncio.Queue()
            self._task = loop.create_task(self._run(self._queue), name="laari-micro-batcher")
        return self._queue  # type: ignore[return-value]

    async def submit(self, key: Hashable, payload: Any) -> Any:
        """Queue one payload; returns its result (or raises the exception ``process`` raised for its batch)."""
        queue = self._ensure_started()
        future = asyncio.get_running_loop().create_future()
        queue.put_nowait(_Job(key, payload, future))
        return await future

    async def submit_many(self, key: Hashable, payloads: Sequence[Any]) -> list[Any]:
        """Queue several payloads at once (a batch request): they are processed in batches of ``max_items``."""
        queue = self._ensure_started()
        loop = asyncio.get_running_loop()
        futures = []
        for p in payloads:
            f = loop.create_future()
            futures.append(f)
            queue.put_nowait(_Job(key, p, f))
        return list(await asyncio.gather(*futures))

    async def _collect(self, queue: asyncio.Queue) -> list[_Job]:
        first = await queue.get()
        batch = [first]
        deadline = time.perf_counter() + self.wait
        while len(batch) < self.max_items:
            try:
                batch.append(queue.get_nowait())
                continue
            except asyncio.QueueEmpty:
                pass
            remaining = deadline - time.perf_counter()
            if remaining <= 0:
                break
            try:
                batch.append(await asyncio.wait_for(queue.get(), remaining))
            except asyncio.TimeoutError:
                break
        return batch

    async def _run(self, queue: asyncio.Queue) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = await self._collect(queue)
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
