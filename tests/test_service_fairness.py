"""Fair sharing: per-client limits on request rate, new characters per minute and queued characters (429 with
Retry-After), and the micro-batcher taking turns between clients."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from service.batching import MicroBatcher
from service.fairness import FairShare, RateLimited
from tests.service_fixtures import (REVIEWER, TEXT_DIGITAL, TEXT_WELLBEING, client, hashing_registry,  # noqa: F401
                                    make_client, service_predictor)

OTHER_REVIEWER = {"X-API-Key": "adm-key-9876543210"}  # the admin key: another client


# --------------------------------------------------------------------------- the limits
def test_request_rate_is_per_client():
    fair = FairShare(requests_per_minute=60, chars_per_minute=0, queued_chars=0)
    for _ in range(6):  # a burst of a tenth of the minute's requests
        fair.admit_request("a")
    with pytest.raises(RateLimited, match="60 per minute") as info:
        fair.admit_request("a")
    assert info.value.retry_after == 1 and info.value.limit == "requests_per_minute"
    fair.admit_request("b")  # another client is not touched
    assert fair.stats()["refused"]["requests_per_minute"] == 1


def test_new_characters_per_minute():
    fair = FairShare(requests_per_minute=0, chars_per_minute=6000, queued_chars=0)
    with fair.reserve("a", 9000):  # over a minute's worth: taken because the bucket is full
        pass
    with pytest.raises(RateLimited, match="6000 new characters per minute") as info:
        with fair.reserve("a", 1000):
            pass
    assert 39 <= info.value.retry_after <= 41  # 3000 in debt + 1000 at 100 characters per second
    with fair.reserve("b", 1000):
        pass
    with fair.reserve("a", 0):  # nothing new to read (answered from the cache): never refused
        pass


def test_queued_characters_and_their_release():
    fair = FairShare(requests_per_minute=0, chars_per_minute=0, queued_chars=5000)
    with fair.reserve("a", 4000):
        with pytest.raises(RateLimited, match="already has 4000 characters waiting"):
            with fair.reserve("a", 2000):
                pass
        with fair.reserve("b", 4000):
            assert fair.stats()["queued_chars"] == 8000
    with fair.reserve("a", 12000):  # longer than the limit, but nothing else queued: taken
        pass
    with pytest.raises(ValueError):
        with fair.reserve("a", 3000):
            raise ValueError("the prediction failed")
    assert fair.stats()["queued_chars"] == 0  # released on failure too


# --------------------------------------------------------------------------- the batcher's turns
def _recording_batcher(**kwargs):
    calls: list[list] = []
    gate = threading.Event()

    def process(key, payloads):
        gate.wait(5)
        calls.append(list(payloads))
        return list(payloads)

    return MicroBatcher(process, ThreadPoolExecutor(1), **kwargs), calls, gate


def test_clients_take_turns_instead_of_first_come():
    async def main():
        b, calls, gate = _recording_batcher(max_items=2, wait_ms=5)
        heavy = asyncio.ensure_future(b.submit_many("m", [f"a{i}" for i in range(6)], client="a"))
        light = asyncio.ensure_future(b.submit_many("m", ["b0", "b1"], client="b"))
        await asyncio.sleep(0.05)
        gate.set()
        await asyncio.gather(heavy, light)
        await b.aclose()
        return calls

    calls = asyncio.run(main())
    assert calls[0] == ["a0", "b0"] and calls[1] == ["a1", "b1"]  # first come would be a0..a5, then b
    assert [p for c in calls for p in c if p.startswith("a")] == [f"a{i}" for i in range(6)]  # order kept


def test_a_heavy_payload_runs_alone_and_light_ones_keep_batching():
    async def main():
        b, calls, gate = _recording_batcher(max_items=8, wait_ms=5, max_weight=100)
        jobs = [asyncio.ensure_future(b.submit("m", "heavy", client="h", weight=1000))]
        jobs += [asyncio.ensure_future(b.submit("m", f"l{i}", client=f"c{i}", weight=30)) for i in range(5)]
        await asyncio.sleep(0.05)
        gate.set()
        await asyncio.gather(*jobs)
        await b.aclose()
        return calls

    calls = asyncio.run(main())
    assert ["heavy"] in calls
    light_batches = [c for c in calls if c != ["heavy"]]
    assert all(len(c) <= 3 for c in light_batches)  # 3 x 30 fits in 100, 4 x 30 does not
    assert sorted(p for c in light_batches for p in c) == [f"l{i}" for i in range(5)]


def test_light_requests_go_between_two_heavy_ones():
    async def main():
        b, calls, gate = _recording_batcher(max_items=8, wait_ms=5, max_weight=100)
        jobs = [asyncio.ensure_future(b.submit("m", name, client=name, weight=1000)) for name in ("h1", "h2")]
        jobs += [asyncio.ensure_future(b.submit("m", f"l{i}", client=f"c{i}", weight=30)) for i in range(3)]
        await asyncio.sleep(0.05)
        gate.set()
        await asyncio.gather(*jobs)
        await b.aclose()
        return calls

    assert asyncio.run(main()) == [["h1"], ["l0", "l1", "l2"], ["h2"]]  # by turns alone h2 would come second


def test_a_cancelled_request_is_skipped():
    async def main():
        b, calls, gate = _recording_batcher(max_items=1, wait_ms=0)
        first = asyncio.ensure_future(b.submit("m", "first", client="a"))
        gone = asyncio.ensure_future(b.submit("m", "gone", client="b"))
        last = asyncio.ensure_future(b.submit("m", "last", client="c"))
        await asyncio.sleep(0.02)
        gone.cancel()
        gate.set()
        await asyncio.gather(first, last)
        await b.aclose()
        return calls

    assert asyncio.run(main()) == [["first"], ["last"]]


# --------------------------------------------------------------------------- over HTTP
def test_request_rate_limit_is_a_429_with_retry_after(make_client):
    c = make_client(client_requests_per_minute=10)  # a burst of one
    assert c.post("/v1/predict", json={"description": TEXT_WELLBEING}, headers=REVIEWER).status_code == 200
    r = c.post("/v1/predict", json={"description": TEXT_WELLBEING}, headers=REVIEWER)
    assert r.status_code == 429, r.text
    assert int(r.headers["Retry-After"]) >= 1 and "10 per minute" in r.json()["detail"]
    assert c.post("/v1/predict", json={"description": TEXT_WELLBEING}, headers=OTHER_REVIEWER).status_code == 200
    assert c.get("/ready").json()["fairness"]["refused"]["requests_per_minute"] == 1


def test_new_text_limit_counts_only_what_the_cache_cannot_answer(make_client):
    c = make_client(client_chars_per_minute=300, client_requests_per_minute=0)
    assert len(TEXT_WELLBEING) < 300 and len(TEXT_DIGITAL) < 300
    assert c.post("/v1/predict", json={"description": TEXT_WELLBEING}).status_code == 200
    assert c.post("/v1/predict", json={"description": TEXT_WELLBEING}).status_code == 200  # cached: free
    r = c.post("/v1/predict", json={"description": TEXT_DIGITAL})
    assert r.status_code == 429 and "new characters per minute" in r.json()["detail"], r.text
    assert int(r.headers["Retry-After"]) >= 1
    assert c.post("/v1/predict", json={"description": TEXT_DIGITAL}, headers=REVIEWER).status_code == 200


def test_limits_off_serve_as_before(make_client):
    c = make_client(client_chars_per_minute=0, client_requests_per_minute=0, client_queued_chars=0)
    texts = [f"{TEXT_WELLBEING} Hanke {i}." for i in range(12)]
    assert all(c.post("/v1/predict", json={"description": t}).status_code == 200 for t in texts)
    assert c.get("/ready").json()["fairness"]["refused"] == {"requests_per_minute": 0, "chars_per_minute": 0,
                                                             "queued_chars": 0}
