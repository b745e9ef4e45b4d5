"""API keys and roles, the open-predict setting, and keys kept out of logs and reprs."""

from __future__ import annotations

import logging

import pytest
from pydantic import ValidationError

from service.settings import Role, Settings
from tests.service_fixtures import (ADMIN, ADMIN_KEY, REVIEWER, REVIEWER_KEY, TEXT_WELLBEING, client,  # noqa: F401
                                    hashing_registry, make_client, service_predictor)

FEEDBACK = {"project_id": "S9", "text": TEXT_WELLBEING, "model_version": "unit", "decision": "accept",
            "suggested_laari": "tyohyvinvointi", "suggested_tags": []}


def test_feedback_needs_a_reviewer_key(client):
    r = client.post("/v1/feedback", json=FEEDBACK)
    assert r.status_code == 401
    assert "X-API-Key" in r.json()["detail"] and "reviewer" in r.json()["detail"]
    assert r.headers["www-authenticate"] == "X-API-Key"
    r = client.post("/v1/feedback", json=FEEDBACK, headers={"X-API-Key": "wrong-key-123456"})
    assert r.status_code == 401 and "not recognised" in r.json()["detail"]
    assert "wrong-key" not in r.text
    assert client.post("/v1/feedback", json=FEEDBACK, headers=REVIEWER).status_code == 201
    assert client.post("/v1/feedback", json=FEEDBACK, headers=ADMIN).status_code == 201  # admin may too


@pytest.mark.parametrize("method, path, body", [
    ("post", "/v1/admin/reload", {}),
    ("get", "/v1/feedback", None),
])
def test_admin_endpoints_need_the_admin_role(client, method, path, body):
    kwargs = {"json": body} if body is not None else {}
    assert getattr(client, method)(path, **kwargs).status_code == 401
    r = getattr(client, method)(path, headers=REVIEWER, **kwargs)
    assert r.status_code == 403
    assert r.json()["detail"] == "this needs role admin; your key has role reviewer"
    assert getattr(client, method)(path, headers=ADMIN, **kwargs).status_code == 200


def test_predict_open_or_closed_by_setting(make_client):
    open_ = make_client(predict_open=True)
    assert open_.post("/v1/predict", json={"description": TEXT_WELLBEING}).status_code == 200
    closed = make_client(predict_open=False)
    r = closed.post("/v1/predict", json={"description": TEXT_WELLBEING})
    assert r.status_code == 401 and "API key required" in r.json()["detail"]
    assert closed.post("/v1/predict/batch", json={"items": [{"description": "x"}]}).status_code == 401
    assert closed.post("/v1/extract", files={"file": ("a.txt", b"abc")}).status_code == 401
    assert closed.post("/v1/predict", json={"description": TEXT_WELLBEING}, headers=REVIEWER).status_code == 200
    # a wrong key is refused even where predictions are open
    assert open_.post("/v1/predict", json={"description": "x"}, headers={"X-API-Key": "nope-nope-nope"}).status_code == 401


def test_no_keys_configured_says_how_to_configure(make_client):
    c = make_client(api_keys="")
    r = c.post("/v1/feedback", json=FEEDBACK)
    assert r.status_code == 401 and "LAARI_API_KEYS" in r.json()["detail"]


def test_keys_never_reach_the_logs(client, caplog):
    caplog.set_level(logging.DEBUG)
    client.post("/v1/feedback", json=FEEDBACK, headers=REVIEWER)
    client.get("/v1/feedback", headers={"X-API-Key": ADMIN_KEY})
    client.get(f"/v1/model?key={ADMIN_KEY}")  # even a key pasted into a URL by mistake
    logging.getLogger("laari.service").info("a message that mentions %s", REVIEWER_KEY)
    server = [r for r in caplog.records if r.name.startswith(("laari", "uvicorn", "fastapi", "starlette"))]
    text = "\n".join(r.getMessage() for r in server)  # (the test's own HTTP client logs its URLs itself)
    assert "/v1/feedback" in text  # requests are logged...
    assert REVIEWER_KEY not in text and ADMIN_KEY not in text  # ...without the keys


def test_settings_parse_keys_and_hide_them(monkeypatch):
    monkeypatch.setenv("LAARI_API_KEYS", f"{REVIEWER_KEY}:reviewer, {ADMIN_KEY}:ADMIN")
    monkeypatch.setenv("LAARI_PREDICT_OPEN", "false")
    monkeypatch.setenv("LAARI_CORS_ORIGINS", "http://localhost:3000,https://a.example")
    s = Settings()
    assert {k.get_secret_value(): r for k, r in s.api_keys.items()} == {REVIEWER_KEY: Role.reviewer,
                                                                         ADMIN_KEY: Role.admin}
    assert s.predict_open is False
    assert s.cors_origins == ["http://localhost:3000", "https://a.example"]
    assert REVIEWER_KEY not in repr(s) and ADMIN_KEY not in str(s) and "2 key(s)" in repr(s)


@pytest.mark.parametrize("value, words", [
    ("justakey", "expected 'key:role'"),
    ("longenoughkey:superuser", "unknown role 'superuser'"),
    ("short:admin", "at least 8 characters"),
])
def test_bad_key_settings_are_refused_clearly(monkeypatch, value, words):
    monkeypatch.setenv("LAARI_API_KEYS", value)
    with pytest.raises(ValidationError) as info:
        Settings()
    assert words in str(info.value)


def test_feedback_url_password_is_hidden(monkeypatch):
    s = Settings(feedback_url="postgresql://laari:salasana@db.example/laari")
    assert "salasana" not in repr(s)


def test_api_keys_are_secret_strings_that_never_print():
    from pydantic import SecretStr

    from service.settings import Settings

    s = Settings(api_keys="avain-123:reviewer,toinen-456:admin")
    assert all(isinstance(k, SecretStr) for k in s.api_keys)
    shown = repr(s.api_keys) + repr(s) + str(s.model_dump())
    assert "avain-123" not in shown and "toinen-456" not in shown
    assert {k.get_secret_value(): r.value for k, r in s.api_keys.items()} == {"avain-123": "reviewer",
                                                                                "toinen-456": "admin"}
