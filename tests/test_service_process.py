"""A real `laari serve` process on a loopback port: start-up, readiness, a prediction, feedback, shutdown."""

from __future__ import annotations

import signal
import sqlite3

import httpx

from tests.service_fixtures import (ADMIN_KEY, REVIEWER, REVIEWER_KEY, TEXT_WELLBEING, lexical_registry,  # noqa: F401
                                    live_server)


def test_serve_process_end_to_end(live_server):
    url = live_server.url
    assert httpx.get(url + "/health").json() == {"status": "ok"}
    ready = httpx.get(url + "/ready").json()
    assert ready["ready"] is True and ready["model_version"] == "lex"

    p = httpx.post(url + "/v1/predict", json={"title": "Jaksava kotihoito", "description": TEXT_WELLBEING},
                   timeout=30)
    assert p.status_code == 200, p.text
    body = p.json()
    assert body["model_version"] == "lex" and body["laari"] in body["laari_scores"]
    assert body["explanation"]["terms"]

    pools = httpx.get(url + "/v1/laarit").json()
    assert pools["space"] == "lexical" and all(l["keywords"] for l in pools["laarit"])

    r = httpx.post(url + "/v1/feedback", headers=REVIEWER, json={
        "project_id": "LIVE-1", "title": "Jaksava kotihoito", "text": TEXT_WELLBEING, "model_version": "lex",
        "decision": "accept", "suggested_laari": body["laari"], "suggested_tags": body["tags"]})
    assert r.status_code == 201, r.text
    con = sqlite3.connect(live_server.feedback_path)
    row = con.execute("SELECT project_id, decision, laari FROM feedback WHERE id = ?", (r.json()["id"],)).fetchone()
    con.close()
    assert row == ("LIVE-1", "accept", body["laari"])

    assert httpx.post(url + "/v1/admin/reload", headers=REVIEWER).status_code == 403
    r = httpx.post(url + "/v1/admin/reload", headers={"X-API-Key": ADMIN_KEY}, timeout=60)
    assert r.status_code == 200 and r.json()["model_version"] == "lex"


def test_serve_process_stops_cleanly_and_logs_no_keys(live_server):
    proc = live_server.proc
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=20) == 0
    log = live_server.log()
    assert "serving model lex" in log and "ready: model lex loaded" in log
    assert "POST /v1/feedback 201" in log
    assert REVIEWER_KEY not in log and ADMIN_KEY not in log
