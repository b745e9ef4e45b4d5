"""Hostile and broken input to the service: each gets a 4xx that names what and where, a log line, and leaves
the served model and the stored feedback as they were."""

from __future__ import annotations

import logging
import numpy as np
import pytest

from classifier.predictor import Predictor
from classifier.registry import Registry
from tests.conftest import HashingEmbedder
from tests.hostile_inputs import (SURROGATE_JSON, bundle_with_array, docx_bytes, docx_truncated,
                                  docx_understated_size, object_array_bundle)
from tests.service_fixtures import (ADMIN, REVIEWER, TEXT_WELLBEING, client, copy_version,  # noqa: F401
                                    hashing_registry, make_client, service_predictor)

FEEDBACK = '{"model_version": "unit", "decision": "accept", "suggested_laari": "tyohyvinvointi", "text": %s}'


# --------------------------------------------------------------------------- uploads
@pytest.mark.parametrize("data, words", [
    (docx_understated_size(), "Bad CRC-32"),
    (docx_truncated(), "not a readable zip archive"),
])
def test_damaged_docx_is_a_422_naming_the_file(client, caplog, data, words):
    with caplog.at_level(logging.WARNING, logger="laari.service"):
        r = client.post("/v1/extract", files={"file": ("hanke.docx", data)})
    assert r.status_code == 422, r.text
    body = r.json()
    assert body["detail"].startswith("file: ") and words in body["detail"]
    assert body["errors"][0]["field"] == "file"
    assert any("rejected POST /v1/extract with 422" in m and words in m for m in caplog.messages)


def test_undamaged_docx_still_reads(client):
    r = client.post("/v1/extract", files={"file": ("hanke.docx", docx_bytes())})
    assert r.status_code == 200 and r.json()["text"].startswith("Hankkeessa kehitetään")


# --------------------------------------------------------------------------- feedback with a lone surrogate
def test_feedback_with_a_lone_surrogate_is_a_422_naming_the_field(client, caplog):
    with caplog.at_level(logging.WARNING, logger="laari.service"):
        r = client.post("/v1/feedback", headers={**REVIEWER, "Content-Type": "application/json"},
                        content=(FEEDBACK % SURROGATE_JSON).encode("ascii"))
    assert r.status_code == 422, r.text
    body = r.json()
    assert body["errors"][0]["field"] == "text"
    assert "lone surrogate U+D800 at character 18" in body["detail"]
    assert any("rejected POST /v1/feedback with 422" in m for m in caplog.messages)
    export = client.get("/v1/feedback", headers=ADMIN)
    assert export.status_code == 200 and export.text == ""  # nothing stored


@pytest.mark.parametrize("field", ["title", "comment", "reviewer", "project_id"])
def test_every_feedback_string_is_checked(client, field):
    body = FEEDBACK % '"%s"' % TEXT_WELLBEING
    body = body[:-1] + f', "{field}": "x\\udfff"}}'
    r = client.post("/v1/feedback", headers={**REVIEWER, "Content-Type": "application/json"},
                    content=body.encode("utf-8"))
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == field, r.text


def test_feedback_store_refuses_a_lone_surrogate_by_column(tmp_path):
    from classifier.feedback import FeedbackStore, FeedbackValueError

    store = FeedbackStore(tmp_path / "f.sqlite")
    with pytest.raises(FeedbackValueError, match="comment: not valid Unicode") as info:
        store.add({"text_sha256": "0" * 64, "model_version": "v", "decision": "accept", "comment": "a\ud800"})
    assert info.value.field == "comment" and store.count() == 0


def test_predict_with_a_lone_surrogate_is_a_422(client):
    r = client.post("/v1/predict", headers={"Content-Type": "application/json"},
                    content=('{"description": %s}' % SURROGATE_JSON).encode("ascii"))
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "description", r.text


def test_batch_item_with_a_lone_surrogate_id_is_an_error_entry(client):
    body = '{"items": [{"id": "a\\ud800", "description": "%s"}, {"id": "ok", "description": "%s"}]}' % (
        TEXT_WELLBEING, TEXT_WELLBEING)
    r = client.post("/v1/predict/batch", headers={"Content-Type": "application/json"},
                    content=body.encode("utf-8"))
    assert r.status_code == 200, r.text
    first, second = r.json()["results"]
    assert first["id"] is None and first["error"].startswith("id: ")  # the id is not echoed back
    assert second["prediction"] is not None


# --------------------------------------------------------------------------- reload of broken bundles
@pytest.fixture()
def own_registry(tmp_path, hashing_registry) -> Registry:
    reg = Registry(tmp_path / "models")
    copy_version(hashing_registry.root / "unit", reg.root, "unit")
    reg.promote("unit")
    return reg


def test_reload_of_an_object_array_bundle_is_a_422_naming_the_array(make_client, own_registry, caplog):
    object_array_bundle(own_registry.root / "unit", own_registry.root / "objarr", version="objarr")
    c = make_client(models_dir=own_registry.root)
    with caplog.at_level(logging.WARNING, logger="laari.service"):
        r = c.post("/v1/admin/reload", headers=ADMIN, json={"model": "objarr"})
    assert r.status_code == 422, r.text
    detail = r.json()["detail"]
    assert "array dtype '|O'" in detail and "is not allowed" in detail
    first = sorted((own_registry.root / "objarr" / "arrays").glob("*.npy"))[0].name
    assert first in detail and r.json()["errors"][0]["field"] == "model"
    assert any("rejected POST /v1/admin/reload with 422" in m for m in caplog.messages)
    assert c.get("/v1/model").json()["version"] == "unit"


def test_reload_of_a_complex_array_bundle_is_refused_by_dtype(make_client, own_registry):
    src = own_registry.root / "unit"
    name = sorted((src / "arrays").glob("*.npy"))[0].stem
    bundle_with_array(src, own_registry.root / "cplx", name, np.zeros(3, dtype=np.complex64), version="cplx")
    c = make_client(models_dir=own_registry.root)
    r = c.post("/v1/admin/reload", headers=ADMIN, json={"model": "cplx"})
    assert r.status_code == 422 and "complex64" in r.json()["detail"], r.text


def test_reload_of_an_array_with_the_wrong_shape_is_a_422(make_client, own_registry):
    src = own_registry.root / "unit"
    name = "router.lexical.coef"  # used by every model here (lexical share 1 in the session's model)
    bundle_with_array(src, own_registry.root / "shape", name, np.zeros((2, 2), dtype=np.float32), version="shape")
    c = make_client(models_dir=own_registry.root)
    r = c.post("/v1/admin/reload", headers=ADMIN, json={"model": "shape"})
    assert r.status_code == 422 and "fails on a check prediction" in r.json()["detail"], r.text
    assert c.get("/v1/model").json()["version"] == "unit"
    assert c.post("/v1/predict", json={"description": TEXT_WELLBEING}).status_code == 200


@pytest.mark.parametrize("model", ["/tmp", "../unit", "unit/../unit", "a b"])
def test_reload_takes_only_a_version_name(make_client, own_registry, model):
    c = make_client(models_dir=own_registry.root)
    r = c.post("/v1/admin/reload", headers=ADMIN, json={"model": model})
    assert r.status_code == 422 and "invalid model version name" in r.json()["detail"], r.text
    assert r.json()["errors"][0]["field"] == "model"


def test_reload_refuses_a_model_folder_outside_the_models_folder(make_client, own_registry, tmp_path):
    outside = copy_version(own_registry.root / "unit", tmp_path / "elsewhere", "outside")
    c = make_client(models_dir=own_registry.root)
    r = c.post("/v1/admin/reload", headers=ADMIN, json={"model": str(outside)})
    assert r.status_code == 422, r.text
    r = c.post("/v1/admin/reload", headers=ADMIN, json={"model": "outside"})
    assert r.status_code == 404 and "no model version 'outside'" in r.json()["detail"], r.text


# --------------------------------------------------------------------------- the prediction cache and a swap
def test_a_bundle_swapped_under_the_same_version_is_not_answered_from_the_cache(make_client, own_registry, tmp_path):
    import shutil

    c = make_client(models_dir=own_registry.root)
    before = c.post("/v1/predict", json={"description": TEXT_WELLBEING})
    assert before.status_code == 200 and before.json()["model_version"] == "unit"
    # the same version name, another model: the router's intercepts pushed towards the second laari
    src = own_registry.root / "unit"
    intercept = np.load(src / "arrays" / "router.lexical.intercept.npy")
    shifted = intercept.copy()
    shifted[1] += 8.0
    bundle_with_array(src, tmp_path / "swapped", "router.lexical.intercept", shifted)
    shutil.rmtree(src)
    shutil.move(tmp_path / "swapped", src)
    r = c.post("/v1/admin/reload", headers=ADMIN, json={"model": "unit"})
    assert r.status_code == 200, r.text
    after = c.post("/v1/predict", json={"description": TEXT_WELLBEING}).json()
    direct = Predictor.load("unit", registry=own_registry, embedder=HashingEmbedder()).predict_one(
        TEXT_WELLBEING).to_dict()
    assert after["laari_scores"] == pytest.approx(direct["laari_scores"])
    assert after["laari_scores"] != pytest.approx(before.json()["laari_scores"])


def test_unreadable_model_json_is_a_bundle_error(own_registry, tmp_path):
    import shutil

    from classifier.bundle import BundleError, load_bundle
    from tests.hostile_inputs import rehash_manifest

    dst = tmp_path / "badjson"
    shutil.copytree(own_registry.root / "unit", dst)
    (dst / "model.json").write_bytes(b"\xff\xfe{not json")
    rehash_manifest(dst)
    with pytest.raises(BundleError, match="model.json cannot be read as JSON"):
        load_bundle(dst)


@pytest.mark.parametrize("doctype", [
    '<!DOCTYPE w:document [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]>',  # expansion
    '<!DOCTYPE w:document SYSTEM "file:///etc/passwd">',  # an external DTD
])
def test_a_docx_with_a_dtd_is_refused_by_the_xml_parser(client, doctype):  # noqa: F811
    xml = ('<?xml version="1.0" encoding="UTF-8"?>' + doctype
           + '<w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"><w:body>'
           '<w:p><w:r><w:t>&b;</w:t></w:r></w:p></w:body></w:document>').replace("&b;", "teksti"
                                                                                 if "SYSTEM" in doctype else "&b;")
    r = client.post("/v1/extract", files={"file": ("hanke.docx", docx_bytes(xml))})
    assert r.status_code == 422 and "DTD" in r.json()["detail"]
