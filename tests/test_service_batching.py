"""The micro-batcher, the event loop staying free during predictions, and a reload under concurrent load."""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from classifier.bundle import load_bundle
from classifier.predictor import Predictor
from service.app import create_app
from service.batching import MicroBatcher
from tests.conftest import HashingEmbedder
from tests.service_fixtures import (ADMIN, TEXT_DIGITAL, TEXT_WELLBEING, hashing_registry,  # noqa: F401
                                    make_settings, service_predictor)


def run(coro):
    return asyncio.run(coro)


# --------------------------------------------------------------------------- the batcher itself
def test_concurrent_submissions_are_processed_together():
    calls = []

    def process(key, payloads):
        calls.append((key, list(payloads)))
        time.sleep(0.02)
        return [p * 10 for p in payloads]

    async def main():
        b = MicroBatcher(process, ThreadPoolExecutor(1), max_items=4, wait_ms=20)
        out = await asyncio.gather(*(b.submit("m", i) for i in range(10)))
        await b.aclose()
        return out, b.stats()

    out, stats = run(main())
    assert out == [i * 10 for i in range(10)]  # each caller gets its own result
    assert [len(p) for _, p in calls] == [4, 4, 2]
    assert stats["batches"] == 3 and stats["largest_batch"] == 4


def test_a_lone_request_waits_at_most_the_window():
    def process(key, payloads):
        return payloads

    async def main():
        b = MicroBatcher(process, ThreadPoolExecutor(1), max_items=8, wait_ms=30)
        started = time.perf_counter()
        await b.submit("m", 1)
        elapsed = time.perf_counter() - started
        await b.aclose()
        return elapsed

    elapsed = run(main())
    assert 0.025 <= elapsed < 0.5


def test_batches_are_grouped_by_key_and_errors_stay_in_their_batch():
    def process(key, payloads):
        if key == "broken":
            raise RuntimeError("model exploded")
        return [f"{key}:{p}" for p in payloads]

    async def main():
        b = MicroBatcher(process, ThreadPoolExecutor(1), max_items=8, wait_ms=10)
        results = await asyncio.gather(b.submit("a", 1), b.submit("broken", 2), b.submit("b", 3), b.submit("a", 4),
                                       return_exceptions=True)
        after = await b.submit("a", 5)  # the collector survived the failure
        await b.aclose()
        return results, after

    results, after = run(main())
    assert results[0] == "a:1" and results[2] == "b:3" and results[3] == "a:4"
    assert isinstance(results[1], RuntimeError) and "exploded" in str(results[1])
    assert after == "a:5"


def test_light_requests_run_between_the_preparation_steps_of_a_heavy_one():
    """A heavy payload is prepared in steps; a light payload that arrives meanwhile is answered before the heavy
    one's preparation is over, not after it."""
    events = []

    def prepare(key, payload):
        if payload != "heavy":
            return None

        def steps():
            for i in range(6):
                time.sleep(0.05)
                events.append(f"step {i}")
                yield

        return steps()

    def process(key, payloads):
        events.extend(f"done {p}" for p in payloads)
        return payloads

    async def main():
        b = MicroBatcher(process, ThreadPoolExecutor(1), max_items=4, wait_ms=1, max_weight=100, prepare=prepare)
        heavy = asyncio.create_task(b.submit("m", "heavy", client="a", weight=1000))
        await asyncio.sleep(0.08)  # the heavy payload's preparation has begun
        light = await b.submit("m", "light", client="b", weight=10)
        assert light == "light"
        assert await heavy == "heavy"
        await b.aclose()
        return b.steps

    steps = run(main())
    assert steps == 6
    assert events.index("done light") < events.index("step 5") < events.index("done heavy")


def test_a_failing_preparation_still_processes_the_payload():
    def prepare(key, payload):
        def steps():
            yield
            raise RuntimeError("preparation broke")

        return steps()

    async def main():
        b = MicroBatcher(lambda k, ps: [p.upper() for p in ps], ThreadPoolExecutor(1), max_weight=10,
                         prepare=prepare)
        out = await b.submit("m", "heavy", weight=100)
        await b.aclose()
        return out

    assert run(main()) == "HEAVY"


def test_the_event_loop_runs_while_a_batch_computes():
    def process(key, payloads):
        time.sleep(0.4)  # CPU-bound work stands in the worker thread, not in the loop
        return payloads

    async def main():
        b = MicroBatcher(process, ThreadPoolExecutor(1), max_items=8, wait_ms=1)
        ticks = 0

        async def ticker():
            nonlocal ticks
            while True:
                await asyncio.sleep(0.01)
                ticks += 1

        t = asyncio.get_running_loop().create_task(ticker())
        await b.submit("m", 1)
        t.cancel()
        await b.aclose()
        return ticks

    assert run(main()) >= 15


# --------------------------------------------------------------------------- through the app
class SlowHashingEmbedder(HashingEmbedder):
    """The hashing embedder with the cost of a real model: a fixed delay per call (holding the GIL-free sleep)."""

    def __init__(self, delay: float):
        super().__init__()
        self.delay = delay
        self.batch_sizes = []
        self.lock = threading.Lock()

    def encode(self, texts, kind=None, *, progress=False):
        with self.lock:
            self.batch_sizes.append(len(texts))
        time.sleep(self.delay)
        return super().encode(texts)


def _texts(n: int) -> list[str]:
    return [f"{TEXT_WELLBEING} Hanke numero {i} toimii alueella {i * 7}." for i in range(n)]


def _async_client(app) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://laari.test", timeout=60)


def test_concurrent_requests_are_embedded_together(tmp_path, hashing_registry):
    emb = SlowHashingEmbedder(0.05)
    predictor = Predictor(load_bundle(hashing_registry.path("unit")), emb)
    app = create_app(make_settings(tmp_path, hashing_registry, batch_max_items=8, batch_wait_ms=20), predictor)

    async def main():
        async with _async_client(app) as c:
            rs = await asyncio.gather(*(c.post("/v1/predict?explain=false", json={"description": t})
                                        for t in _texts(16)))
            return rs, app.state.service.batcher.stats()

    rs, stats = run(main())
    assert all(r.status_code == 200 for r in rs), [r.text for r in rs if r.status_code != 200]
    assert stats["items"] == 16 and stats["batches"] <= 4  # 16 requests, a handful of predict_many calls
    assert max(emb.batch_sizes) >= 4  # the embedder really saw several documents at once


def test_health_answers_while_predictions_compute(tmp_path, hashing_registry):
    emb = SlowHashingEmbedder(0.6)
    predictor = Predictor(load_bundle(hashing_registry.path("unit")), emb)
    app = create_app(make_settings(tmp_path, hashing_registry), predictor)

    async def main():
        async with _async_client(app) as c:
            slow = asyncio.ensure_future(c.post("/v1/predict?explain=false", json={"description": TEXT_DIGITAL}))
            await asyncio.sleep(0.1)  # the prediction is now inside the embedder
            started = time.perf_counter()
            health = await c.get("/health")
            health_time = time.perf_counter() - started
            r = await slow
            return health.status_code, health_time, r.status_code, slow

    status, health_time, pred_status, _ = run(main())
    assert status == 200 and pred_status == 200
    assert health_time < 0.3  # not stuck behind the 0.6 s embedding


def test_reload_under_load_fails_no_request(tmp_path, hashing_registry):
    emb = SlowHashingEmbedder(0.01)
    predictor = Predictor(load_bundle(hashing_registry.path("unit")), emb)
    app = create_app(make_settings(tmp_path, hashing_registry, prediction_cache_items=0), predictor)
    texts = _texts(60)

    async def main():
        async with _async_client(app) as c:
            async def worker(k):
                out = []
                for t in texts[k::6]:
                    out.append(await c.post("/v1/predict", json={"description": t}))
                return out

            async def reloader():
                out = []
                for model in ("unit-b", "unit", "unit-b"):
                    await asyncio.sleep(0.05)
                    out.append(await c.post("/v1/admin/reload", headers=ADMIN, json={"model": model}))
                return out

            results = await asyncio.gather(*(worker(k) for k in range(6)), reloader())
            return [r for rs in results[:-1] for r in rs], results[-1]

    responses, reloads = run(main())
    assert [r.status_code for r in reloads] == [200, 200, 200]
    assert len(responses) == 60
    failed = [r.text for r in responses if r.status_code != 200]
    assert not failed
    versions = {r.json()["model_version"] for r in responses}
    assert versions <= {"unit", "unit-b"} and "unit-b" in versions
    assert app.state.service.handle.version == "unit-b"
