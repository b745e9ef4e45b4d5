"""Hostile input to a real `laari serve` process over one keep-alive connection: every refusal is a 4xx, the
connection stays open for the next request, and the server log has a line saying what was refused."""

from __future__ import annotations

import http.client
import json
import uuid
from urllib.parse import urlparse

from tests.hostile_inputs import SURROGATE_JSON, docx_understated_size
from tests.service_fixtures import ADMIN_KEY, REVIEWER_KEY, TEXT_WELLBEING, lexical_registry, live_server  # noqa: F401


def multipart(filename: str, data: bytes) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{filename}\"\r\n"
            f"Content-Type: application/octet-stream\r\n\r\n").encode() + data + f"\r\n--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


def test_refusals_keep_the_connection_and_leave_a_log_line(live_server):
    url = urlparse(live_server.url)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=60)
    docx, docx_type = multipart("hanke.docx", docx_understated_size())
    cases = [
        ("POST", "/v1/extract", docx, {"Content-Type": docx_type}, 422, "Bad CRC-32"),
        ("POST", "/v1/feedback",
         ('{"model_version": "lex", "decision": "accept", "suggested_laari": "tyohyvinvointi", "text": %s}'
          % SURROGATE_JSON).encode("ascii"),
         {"Content-Type": "application/json", "X-API-Key": REVIEWER_KEY}, 422, "lone surrogate"),
        ("POST", "/v1/admin/reload", json.dumps({"model": "/tmp"}).encode(),
         {"Content-Type": "application/json", "X-API-Key": ADMIN_KEY}, 422, "invalid model version name"),
        ("POST", "/v1/predict", b'{"description": ', {"Content-Type": "application/json"}, 422, "JSON"),
    ]
    sock = None
    for method, path, body, headers, status, words in cases:
        conn.request(method, path, body=body, headers=headers)
        resp = conn.getresponse()
        text = resp.read().decode("utf-8")
        assert resp.status == status and words in text, (path, resp.status, text)
        assert (resp.getheader("connection") or "").lower() != "close", path
        if sock is None:
            sock = conn.sock
        assert conn.sock is sock and sock is not None, f"{path}: the connection was closed"
    conn.request("POST", "/v1/predict", body=json.dumps({"description": TEXT_WELLBEING}).encode(),
                 headers={"Content-Type": "application/json"})
    resp = conn.getresponse()
    assert resp.status == 200 and json.loads(resp.read())["model_version"] == "lex"
    assert conn.sock is sock
    conn.close()

    log = live_server.log()
    for path in ("/v1/extract", "/v1/feedback", "/v1/admin/reload"):
        assert f"rejected POST {path} with 422" in log, log[-3000:]
    assert "Traceback" not in log and " 500 " not in log
