"""The HTTP routes with FastAPI's TestClient, on a small trained model with the hashing embedder."""

from __future__ import annotations

import csv
import io
import json
import zipfile

import pytest

from classifier.text import content_hash, document_text
from tests.service_fixtures import (ADMIN, REVIEWER, TEXT_DIGITAL, TEXT_WELLBEING, client, hashing_registry,  # noqa: F401
                                    make_client, service_predictor)


# --------------------------------------------------------------------------- health, model, taxonomy, pools
def test_health_and_ready(client, service_predictor):
    assert client.get("/health").json() == {"status": "ok"}
    r = client.get("/ready")
    assert r.status_code == 200
    body = r.json()
    assert body["ready"] is True and body["model_version"] == service_predictor.version


def test_ready_is_503_while_no_model(tmp_path, hashing_registry):
    from fastapi.testclient import TestClient

    from service.app import create_app
    from tests.service_fixtures import make_settings

    empty = type(hashing_registry)(tmp_path / "empty-registry")
    app = create_app(make_settings(tmp_path, empty, load_in_background=False))
    with TestClient(app) as c:
        r = c.get("/ready")
        assert r.status_code == 503
        assert r.json()["status"] == "failed" and "no current model" in r.json()["error"]
        r = c.post("/v1/predict", json={"description": TEXT_WELLBEING})
        assert r.status_code == 503 and "no model loaded" in r.json()["detail"]
        assert c.get("/health").status_code == 200


def test_model_info_comes_from_the_manifest(client, service_predictor):
    m = client.get("/v1/model").json()
    manifest = service_predictor.bundle.manifest
    assert m["version"] == manifest["version"]
    assert m["created"] == manifest["created"]
    assert m["channel_choice"] == manifest["channel_choice"]
    assert m["metrics"] == manifest["metrics"]
    assert m["taxonomy"]["version"] == service_predictor.taxonomy.version
    assert m["training_data"]["rows"] == manifest["training_data"]["rows"]


def test_taxonomy_lists_laarit_with_assessment(client, service_predictor):
    t = client.get("/v1/taxonomy").json()
    tax = service_predictor.taxonomy
    assert [l["id"] for l in t["laarit"]] == tax.laari_ids
    assert all(l["assessment"] for l in t["laarit"])
    assert [x["id"] for x in t["tags"]] == tax.tag_ids
    assert t["out_of_theme"]["id"] == tax.out_of_theme.id
    assert t["hash"] == tax.content_hash()
    assert isinstance(t["facets"], list)


def test_laarit_statistics(client, service_predictor):
    body = client.get("/v1/laarit").json()
    ref = service_predictor.reference
    assert body["model_version"] == service_predictor.version
    by_id = {l["id"]: l for l in body["laarit"]}
    assert list(by_id) == service_predictor.taxonomy.laari_ids
    for lid, pool in by_id.items():
        assert pool["size"] == ref.labels.count(lid)
        assert pool["cohesion"] == pytest.approx(float(ref.member_sims[lid].mean()), abs=1e-3)
        assert pool["nearest"]["laari"] in by_id and pool["nearest"]["laari"] != lid
        assert pool["keywords"] and all(k["weight"] > 0 for k in pool["keywords"])
        reps, outs = pool["representatives"], pool["outliers"]
        assert 0 < len(reps) <= 5
        assert all(ref.labels[ref.ids.index(m["id"])] == lid for m in reps + outs)
        assert reps[0]["similarity"] >= reps[-1]["similarity"]  # most central first
        assert outs[0]["similarity"] <= reps[0]["similarity"]
        assert outs[0]["similarity"] == pytest.approx(float(ref.member_sims[lid][0]), abs=1e-3)
    assert body["out_of_theme"]["size"] == ref.labels.count(service_predictor.taxonomy.out_of_theme.id)


def test_one_laari_and_unknown_laari(client):
    r = client.get("/v1/laarit/tyokyky")
    assert r.status_code == 200 and r.json()["id"] == "tyokyky"
    assert len(r.json()["representatives"]) <= 15
    r = client.get("/v1/laarit/eiole")
    assert r.status_code == 404 and "eiole" in r.json()["detail"] and "tyokyky" in r.json()["detail"]


def test_map_has_every_training_project(client, service_predictor):
    m = client.get("/v1/laarit/map").json()
    ref = service_predictor.reference
    assert [p["id"] for p in m["points"]] == ref.ids
    xs = [p["x"] for p in m["points"]] + [p["y"] for p in m["points"]]
    assert max(abs(v) for v in xs) == pytest.approx(1.0, abs=1e-3)
    assert len(set((p["x"], p["y"]) for p in m["points"])) > len(ref.ids) // 2  # really spread out
    assert {c["laari"] for c in m["centroids"]} == set(ref.centroid_ids)
    assert 0 < sum(m["explained_variance"]) <= 1


# --------------------------------------------------------------------------- predict
def test_predict_matches_the_predictor(client, service_predictor):
    r = client.post("/v1/predict", json={"id": "S1", "title": "Jaksava kotihoito", "description": TEXT_WELLBEING})
    assert r.status_code == 200, r.text
    body = r.json()
    direct = service_predictor.predict_one(TEXT_WELLBEING, title="Jaksava kotihoito", id="S1").to_dict()
    for key in direct:  # every field of `laari predict --json`, with the same values
        assert body[key] == direct[key], key
    assert body["text_sha256"] == content_hash(document_text("Jaksava kotihoito", TEXT_WELLBEING))
    assert body["highlights"]["sentences"] == [s["text"] for s in direct["explanation"]["sentences"]]
    for term in body["highlights"]["terms"]:
        assert term["weight"] > 0
        assert all(form in TEXT_WELLBEING or form in "Jaksava kotihoito" for form in term["forms"])


def test_predict_repeated_text_is_cached(client):
    svc = client.app.state.service
    first = client.post("/v1/predict", json={"description": TEXT_DIGITAL}).json()
    batches = svc.batcher.batches
    second = client.post("/v1/predict", json={"description": TEXT_DIGITAL}).json()
    assert second == first
    assert svc.batcher.batches == batches  # answered without the model
    assert svc.cache.hits >= 1
    # one cache: the predictor keeps no second copy of the service's answer
    assert not any(TEXT_DIGITAL in key[0] for key in svc.handle.predictor._memo)


def test_predict_without_explanation(client):
    body = client.post("/v1/predict?explain=false", json={"description": TEXT_DIGITAL}).json()
    assert "terms" not in body["explanation"] and body["highlights"] is None
    assert body["laari"] in body["laari_scores"] or body["laari"] == "ei_teemassa"


@pytest.mark.parametrize("payload, field", [
    ({}, "description"),
    ({"description": 5}, "description"),
    ({"description": "   "}, "description"),
    ({"description": "teksti", "title": ["x"]}, "title"),
    ({"description": "teksti", "descriptoin": "x"}, "descriptoin"),
    ({"description": "teksti", "id": "x" * 201}, "id"),
])
def test_predict_schema_errors_name_the_field(client, payload, field):
    r = client.post("/v1/predict", json=payload)
    assert r.status_code == 422
    body = r.json()
    assert field in body["detail"]
    assert field in [e["field"] for e in body["errors"]]


def test_predict_invalid_json(client):
    r = client.post("/v1/predict", content=b"{not json", headers={"Content-Type": "application/json"})
    assert r.status_code == 422 and "JSON" in r.json()["detail"]


def test_description_limit_is_413_with_the_limit(make_client):
    c = make_client(max_description_chars=500)
    r = c.post("/v1/predict", json={"description": "työhyvinvointi " * 40})
    assert r.status_code == 413
    assert "500" in r.json()["detail"] and "description" in r.json()["detail"]
    assert c.post("/v1/predict", json={"description": "työhyvinvointi " * 30}).status_code == 200


def test_body_limit_is_413(make_client):
    c = make_client(max_body_bytes=4096)
    r = c.post("/v1/predict", json={"description": "a" * 5000})
    assert r.status_code == 413 and "4096" in r.json()["detail"]

    def chunks():  # no Content-Length: counted while reading
        for _ in range(10):
            yield b" " * 1000

    r = c.post("/v1/predict", content=chunks(), headers={"Content-Type": "application/json"})
    assert r.status_code == 413


def test_batch_one_bad_item_does_not_fail_the_request(client, service_predictor):
    items = [{"id": "a", "description": TEXT_WELLBEING}, {"id": "b", "title": 3, "description": "x"},
             {"id": "c", "description": "  "}, "not an object", {"id": "e", "description": TEXT_DIGITAL}]
    r = client.post("/v1/predict/batch", json={"items": items})
    assert r.status_code == 200, r.text
    body = r.json()
    res = body["results"]
    assert [x["index"] for x in res] == [0, 1, 2, 3, 4]
    assert body["predicted"] == 2 and body["failed"] == 3
    assert res[0]["prediction"]["laari"] == service_predictor.predict_one(TEXT_WELLBEING, id="a").laari
    assert res[1]["error"].startswith("title") and res[1]["id"] == "b"
    assert "description" in res[2]["error"]
    assert res[3]["error"] and res[3]["id"] is None
    assert res[4]["prediction"]["id"] == "e"


def test_batch_limits(make_client):
    c = make_client(max_batch_items=3, max_description_chars=100)
    r = c.post("/v1/predict/batch", json={"items": [{"description": "työ"}] * 4})
    assert r.status_code == 413 and "3" in r.json()["detail"] and "items" in r.json()["detail"]
    r = c.post("/v1/predict/batch", json={"items": [{"description": "työ " * 50}, {"description": TEXT_DIGITAL[:90]}]})
    assert r.status_code == 200
    assert "100" in r.json()["results"][0]["error"] and r.json()["results"][1]["prediction"]
    assert c.post("/v1/predict/batch", json={"items": []}).status_code == 422


# --------------------------------------------------------------------------- extraction
def _docx(paragraphs: list[str]) -> bytes:
    ns = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"
    body = "".join(f"<w:p><w:r><w:t>{p}</w:t></w:r></w:p>" for p in paragraphs)
    xml = f'<?xml version="1.0" encoding="UTF-8"?><w:document xmlns:w="{ns}"><w:body>{body}</w:body></w:document>'
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("[Content_Types].xml", "<Types/>")
        z.writestr("word/document.xml", xml)
    return buf.getvalue()


def test_extract_txt_and_docx(client):
    r = client.post("/v1/extract", files={"file": ("hanke.txt", TEXT_WELLBEING.encode("utf-8"), "text/plain")})
    assert r.status_code == 200 and r.json()["text"] == TEXT_WELLBEING and r.json()["format"] == "txt"
    r = client.post("/v1/extract", files={"file": ("vanha.txt", "Työhyvinvointi ja jaksaminen".encode("cp1252"))})
    assert r.json()["text"] == "Työhyvinvointi ja jaksaminen" and r.json()["warnings"]
    r = client.post("/v1/extract", files={"file": ("hanke.docx", _docx(["Jaksava kotihoito", TEXT_WELLBEING]))})
    assert r.status_code == 200, r.text
    assert r.json()["text"] == "Jaksava kotihoito\n" + TEXT_WELLBEING and r.json()["format"] == "docx"


@pytest.mark.parametrize("name, data, words", [
    ("hanke.docx", b"not a zip", "not a valid .docx"),
    ("hanke.pdf", b"%PDF-1.4", "unsupported file type"),
    ("hanke.doc", b"\xd0\xcf\x11\xe0", ".doc files are not supported"),
    ("tyhja.txt", b"   ", "no text"),
])
def test_extract_refuses_bad_files(client, name, data, words):
    r = client.post("/v1/extract", files={"file": (name, data)})
    assert r.status_code == 422 and words in r.json()["detail"]


# --------------------------------------------------------------------------- feedback
def _accept_body(prediction: dict, **extra) -> dict:
    body = {"project_id": "S1", "title": "Jaksava kotihoito", "text": TEXT_WELLBEING,
            "model_version": prediction["model_version"], "decision": "accept",
            "suggested_laari": prediction["laari"], "suggested_tags": prediction["tags"]}
    body.update(extra)
    return body


def test_feedback_roundtrip_and_export(client):
    p = client.post("/v1/predict", json={"title": "Jaksava kotihoito", "description": TEXT_WELLBEING}).json()
    r = client.post("/v1/feedback", headers=REVIEWER, json=_accept_body(p, comment="=SUM(A1) näyttää oikealta"))
    assert r.status_code == 201, r.text
    row = r.json()
    assert row["laari"] == p["laari"] and row["tags"] == sorted(p["tags"])
    assert row["text_sha256"] == p["text_sha256"] and row["key_id"] and "rev-key" not in json.dumps(row)
    correction = {"project_id": "S2", "text_sha256": "a" * 64, "model_version": p["model_version"],
                  "decision": "correct", "suggested_laari": "osaaminen", "laari": "digitalisaatio",
                  "tags": ["digitaaliset_ratkaisut"], "reviewer": "AK"}
    assert client.post("/v1/feedback", headers=REVIEWER, json=correction).status_code == 201

    r = client.get("/v1/feedback", headers=ADMIN)
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/x-ndjson")
    rows = [json.loads(line) for line in r.text.splitlines()]
    assert [x["project_id"] for x in rows] == ["S1", "S2"]
    assert rows[1]["laari"] == "digitalisaatio" and rows[1]["text"] is None

    r = client.get("/v1/feedback?format=csv&project_id=S1", headers=ADMIN)
    assert r.headers["content-type"].startswith("text/csv")
    table = list(csv.DictReader(io.StringIO(r.text)))
    assert len(table) == 1 and table[0]["text"] == TEXT_WELLBEING
    assert table[0]["comment"].startswith("'=")  # no formula runs in a spreadsheet
    assert table[0]["tags"] == ";".join(sorted(p["tags"]))


def test_feedback_database_is_sqlite_in_wal_mode(client, tmp_path):
    store = client.app.state.service.feedback
    assert store.journal_mode() == "wal"
    assert (tmp_path / "feedback.sqlite").exists()


@pytest.mark.parametrize("change, status, words", [
    ({"laari": "eiole", "decision": "correct"}, 422, "laari: unknown laari 'eiole'"),
    ({"tags": ["tuntematon"], "decision": "correct"}, 422, "tags: unknown tag(s) ['tuntematon']"),
    ({"text_sha256": "0" * 64}, 422, "text_sha256: does not match"),
    ({"text_sha256": "XYZ"}, 422, "text_sha256"),
    ({"laari": "tyokyky", "suggested_laari": "osaaminen"}, 422, "use decision correct"),
    ({"decision": "correct"}, 422, "give the corrected laari"),
    ({"decision": "maybe"}, 422, "decision"),
    ({"text": None}, 422, "give the text or its text_sha256"),
    ({"model_version": ""}, 422, "model_version"),
])
def test_feedback_validation(client, change, status, words):
    body = {"project_id": "S1", "text": TEXT_WELLBEING, "model_version": "unit", "decision": "accept",
            "suggested_laari": "tyohyvinvointi", "suggested_tags": []}
    body.update(change)
    r = client.post("/v1/feedback", headers=REVIEWER, json=body)
    assert r.status_code == status, r.text
    assert words in r.json()["detail"]


def test_feedback_text_limit_is_413(make_client):
    c = make_client(max_description_chars=100)
    body = {"text": "työ " * 40, "model_version": "unit", "decision": "accept", "suggested_laari": "tyokyky"}
    r = c.post("/v1/feedback", headers=REVIEWER, json=body)
    assert r.status_code == 413 and "100" in r.json()["detail"]


# --------------------------------------------------------------------------- reload
def test_reload_switches_the_model(client):
    assert client.get("/v1/model").json()["version"] == "unit"
    r = client.post("/v1/admin/reload", headers=ADMIN, json={"model": "unit-b"})
    assert r.status_code == 200, r.text
    assert r.json()["previous_version"] == "unit" and r.json()["model_version"] == "unit-b"
    assert client.get("/v1/model").json()["version"] == "unit-b"
    assert client.post("/v1/predict", json={"description": TEXT_WELLBEING}).json()["model_version"] == "unit-b"
    assert client.get("/ready").json()["model_version"] == "unit-b"
    r = client.post("/v1/admin/reload", headers=ADMIN)  # no body: the registry's current
    assert r.status_code == 200 and r.json()["model_version"] == "unit"


@pytest.mark.parametrize("model, status, words", [
    ("eiole", 404, "no model version 'eiole'"),
    ("../etc", 422, "invalid model version name"),
])
def test_reload_errors_keep_the_old_model(client, model, status, words):
    r = client.post("/v1/admin/reload", headers=ADMIN, json={"model": model})
    assert r.status_code == status and words in r.json()["detail"]
    assert client.get("/v1/model").json()["version"] == "unit"


def _reload_a_copy_recording(client, hashing_registry, version: str, embedder_id: str):
    """Reload a copy of the served version whose manifest says its vectors came from ``embedder_id``; the copy is
    removed again whatever the answer."""
    import shutil

    from tests.service_fixtures import copy_version

    dst = copy_version(hashing_registry.root / "unit", hashing_registry.root, version)
    manifest = json.loads((dst / "manifest.json").read_text())
    manifest["embedder_id"] = embedder_id
    (dst / "manifest.json").write_text(json.dumps(manifest))
    try:
        return client.post("/v1/admin/reload", headers=ADMIN, json={"model": version})
    finally:
        shutil.rmtree(dst)


def test_reload_refuses_a_model_for_another_embedder(client, hashing_registry, tmp_path, monkeypatch):
    monkeypatch.setenv("LAARI_EMBEDDER", str(tmp_path / "no-such-embedder"))
    r = _reload_a_copy_recording(client, hashing_registry, "other-embedder", "some-other-model@123")
    assert r.status_code == 409, r.text
    assert "embedding model" in r.json()["detail"]
    assert client.get("/v1/model").json()["version"] == "unit"


def test_reload_of_a_version_trained_on_another_engine_of_the_same_model_reuses_the_loaded_embedder(
        client, hashing_registry, tmp_path, monkeypatch):
    """A version whose training vectors came from another engine of the same embedding model (torch against ONNX)
    is served by the embedder already loaded: no second engine is loaded (here, loading one would fail)."""
    from classifier.embedders.backends import backend_id

    monkeypatch.setenv("LAARI_EMBEDDER", str(tmp_path / "no-such-embedder"))
    served = client.get("/v1/model").json()["embedder_id"]
    r = _reload_a_copy_recording(client, hashing_registry, "other-engine", backend_id(served, "onnx", "int8pc"))
    assert r.status_code == 200, r.text
    assert r.json()["model_version"] == "other-engine"


# --------------------------------------------------------------------------- web, docs, headers, CORS
def test_pages_and_assets_are_served_locally(client):
    for path in ("/", "/pools"):
        r = client.get(path)
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
        assert "default-src 'self'" in r.headers["content-security-policy"]
        assert "http://" not in r.text and "https://" not in r.text  # no CDN
    for asset in ("/static/app.js", "/static/style.css"):
        r = client.get(asset)
        assert r.status_code == 200 and "https://" not in r.text
    docs = client.get("/docs")
    assert docs.status_code == 200 and "/static/swagger/swagger-ui-bundle.js" in docs.text
    assert "cdn" not in docs.text.lower()
    assert client.get("/static/swagger/swagger-ui-bundle.js").status_code == 200


def test_openapi_has_finnish_examples_and_the_key_scheme(client):
    spec = client.get("/openapi.json").json()
    text = json.dumps(spec, ensure_ascii=False)
    assert "työhyvinvointia" in text and "Hankkeessa" in text
    assert spec["components"]["securitySchemes"]["ApiKey"]["name"] == "X-API-Key"
    assert "/v1/predict/batch" in spec["paths"] and "/v1/admin/reload" in spec["paths"]


def test_cors_is_off_by_default_and_on_by_setting(make_client):
    origin = {"Origin": "https://example.org"}
    off = make_client()
    assert "access-control-allow-origin" not in off.get("/health", headers=origin).headers
    on = make_client(cors_origins="https://example.org")
    assert on.get("/health", headers=origin).headers["access-control-allow-origin"] == "https://example.org"
    assert "access-control-allow-origin" not in on.get("/health", headers={"Origin": "https://evil.example"}).headers
