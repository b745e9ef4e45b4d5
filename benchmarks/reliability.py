"""The reliability table: every kind of bad input the service is known to meet, sent to the real application with
the default model, with its answer and what was lost.

For each case it records the status, the ``detail`` the client gets, and checks what was lost: the served model
(version and bundle hash) is the one before, the feedback table has the rows it had, the server logged a line
about the refusal, and a good prediction right after on the same client succeeds. Each row also names the test
that holds the same case in the suite.

    python benchmarks/reliability.py --json benchmarks/results/reliability.json --markdown

Runs in-process (FastAPI's test client); the hostile model folders are copies of the default model in a temporary
registry, so the real models folder is never touched.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.hostile_inputs import (SURROGATE_JSON, bundle_with_array, docx_bytes, docx_truncated,  # noqa: E402
                                  docx_understated_size, object_array_bundle)

REVIEWER_KEY = "reliability-reviewer-0123456789"
ADMIN_KEY = "reliability-admin-0123456789"
SIGNING_KEY = "reliability-signing-0123456789"
GOOD = ("Hankkeessa kehitetään kotihoidon työyhteisöjen työhyvinvointia ja vähennetään kiireen aiheuttamaa "
        "kuormitusta. Esihenkilöt saavat valmennusta.")
FEEDBACK = ('{"model_version": "v", "decision": "accept", "suggested_laari": "tyohyvinvointi", "text": %s}')
JSON = {"Content-Type": "application/json"}
REV = {"X-API-Key": REVIEWER_KEY}
ADM = {"X-API-Key": ADMIN_KEY}
HS = "tests/test_service_hostile.py::"
SR = "tests/test_service_routes.py::"


def prepare_registry(src: Path, root: Path) -> None:
    """The default model as 'base' (current), and hostile copies of it."""
    from classifier.registry import Registry

    reg = Registry(root)
    shutil.copytree(src, root / "base")
    reg.promote("base")
    object_array_bundle(root / "base", root / "objarr")
    first = sorted((root / "base" / "arrays").glob("*.npy"))[0].stem
    bundle_with_array(root / "base", root / "complex", first, np.zeros(3, dtype=np.complex64))
    bundle_with_array(root / "base", root / "shape", "router.lexical.coef", np.zeros((2, 2), dtype=np.float32))
    shutil.copytree(root / "base", root / "tampered")
    f = sorted((root / "tampered" / "arrays").glob("*.npy"))[0]
    f.write_bytes(f.read_bytes()[:-1] + bytes([f.read_bytes()[-1] ^ 0xFF]))
    shutil.copytree(root / "base", root / "foreign")
    np.save(root / "foreign" / "arrays" / "extra.npy", np.zeros(3))


def cases() -> list[dict]:
    big = "x" * 2_100_000
    return [
        {"case": ".docx whose zip header understates its size (Bad CRC-32)", "test": HS + "test_damaged_docx_is_a_422_naming_the_file",
         "req": ("POST", "/v1/extract", {"files": {"file": ("hanke.docx", docx_understated_size())}})},
        {"case": ".docx cut in half", "test": HS + "test_damaged_docx_is_a_422_naming_the_file",
         "req": ("POST", "/v1/extract", {"files": {"file": ("hanke.docx", docx_truncated())}})},
        {"case": ".docx with a DTD (entity expansion)",
         "test": HS + "test_a_docx_with_a_dtd_is_refused_by_the_xml_parser",
         "req": ("POST", "/v1/extract", {"files": {"file": ("hanke.docx", docx_bytes(
             '<?xml version="1.0"?><!DOCTYPE d [<!ENTITY a "aaaa">]><d>&a;</d>'))}})},
        {"case": "binary file named .txt", "test": SR + "test_extract_refuses_bad_files",
         "req": ("POST", "/v1/extract", {"files": {"file": ("kuvaus.txt", b"\x00\x01\x02" * 100)}})},
        {"case": "old Word .doc", "test": SR + "test_extract_refuses_bad_files",
         "req": ("POST", "/v1/extract", {"files": {"file": ("kuvaus.doc", b"\xd0\xcf\x11\xe0")}})},
        {"case": "feedback text with a lone surrogate (\\ud800)", "test": HS + "test_feedback_with_a_lone_surrogate_is_a_422_naming_the_field",
         "req": ("POST", "/v1/feedback", {"content": (FEEDBACK % SURROGATE_JSON).encode(), "headers": {**JSON, **REV}})},
        {"case": "feedback comment with a lone surrogate", "test": HS + "test_every_feedback_string_is_checked",
         "req": ("POST", "/v1/feedback", {"content": (FEEDBACK % json.dumps(GOOD))[:-1].encode()
                                          + b', "comment": "x\\udfff"}', "headers": {**JSON, **REV}})},
        {"case": "feedback with an unknown laari", "test": SR + "test_feedback_validation",
         "req": ("POST", "/v1/feedback", {"json": {"model_version": "v", "decision": "correct", "text": GOOD,
                                                   "suggested_laari": "tyohyvinvointi", "laari": "eiole"},
                                          "headers": REV})},
        {"case": "feedback without an API key", "test": "tests/test_service_auth.py::test_feedback_needs_a_reviewer_key",
         "req": ("POST", "/v1/feedback", {"json": {"model_version": "v", "decision": "accept", "text": GOOD,
                                                   "suggested_laari": "tyohyvinvointi"}})},
        {"case": "predict description with a lone surrogate", "test": HS + "test_predict_with_a_lone_surrogate_is_a_422",
         "req": ("POST", "/v1/predict", {"content": ('{"description": %s}' % SURROGATE_JSON).encode(), "headers": JSON})},
        {"case": "predict without a description", "test": SR + "test_predict_schema_errors_name_the_field",
         "req": ("POST", "/v1/predict", {"json": {"title": "x"}})},
        {"case": "predict with an unknown field", "test": SR + "test_predict_schema_errors_name_the_field",
         "req": ("POST", "/v1/predict", {"json": {"description": GOOD, "extra": 1}})},
        {"case": "predict with a whitespace-only description", "test": SR + "test_predict_schema_errors_name_the_field",
         "req": ("POST", "/v1/predict", {"json": {"description": "   "}})},
        {"case": "body that is not JSON", "test": SR + "test_predict_invalid_json",
         "req": ("POST", "/v1/predict", {"content": b'{"description": ', "headers": JSON})},
        {"case": "description over the length limit", "test": SR + "test_description_limit_is_413_with_the_limit",
         "req": ("POST", "/v1/predict", {"json": {"description": "sana " * 7000}})},
        {"case": "body over the byte limit", "test": SR + "test_body_limit_is_413",
         "req": ("POST", "/v1/predict", {"content": big.encode(), "headers": JSON})},
        {"case": "batch over the item limit", "test": SR + "test_batch_limits",
         "req": ("POST", "/v1/predict/batch", {"json": {"items": [{"description": GOOD}] * 65}})},
        {"case": "reload: bundle with an object array, hashes recomputed", "test": HS + "test_reload_of_an_object_array_bundle_is_a_422_naming_the_array",
         "req": ("POST", "/v1/admin/reload", {"json": {"model": "objarr"}, "headers": ADM})},
        {"case": "reload: bundle with a complex array, hashes recomputed", "test": HS + "test_reload_of_a_complex_array_bundle_is_refused_by_dtype",
         "req": ("POST", "/v1/admin/reload", {"json": {"model": "complex"}, "headers": ADM})},
        {"case": "reload: array of the wrong shape, hashes recomputed", "test": HS + "test_reload_of_an_array_with_the_wrong_shape_is_a_422",
         "req": ("POST", "/v1/admin/reload", {"json": {"model": "shape"}, "headers": ADM})},
        {"case": "reload: an array changed after saving", "test": "tests/test_bundle.py::test_tampered_array_is_refused",
         "req": ("POST", "/v1/admin/reload", {"json": {"model": "tampered"}, "headers": ADM})},
        {"case": "reload: a file the manifest does not list", "test": "tests/test_bundle.py::test_foreign_file_is_refused",
         "req": ("POST", "/v1/admin/reload", {"json": {"model": "foreign"}, "headers": ADM})},
        {"case": "reload: a folder path instead of a version name", "test": HS + "test_reload_takes_only_a_version_name",
         "req": ("POST", "/v1/admin/reload", {"json": {"model": "/tmp"}, "headers": ADM})},
        {"case": "reload: a version that does not exist", "test": SR + "test_reload_errors_keep_the_old_model",
         "req": ("POST", "/v1/admin/reload", {"json": {"model": "eiole"}, "headers": ADM})},
        {"case": "reload with a reviewer's key", "test": "tests/test_service_auth.py::test_admin_endpoints_need_the_admin_role",
         "req": ("POST", "/v1/admin/reload", {"json": {"model": "base"}, "headers": REV})},
        {"case": "reload: unsigned bundle while a signing key is set", "test": "tests/test_bundle_signing.py::test_service_reload_refuses_unsigned_and_serves_signed",
         "signed_app": True, "req": ("POST", "/v1/admin/reload", {"json": {"model": "base"}, "headers": ADM})},
        {"case": "a client over its request rate", "test": "tests/test_service_fairness.py::test_request_rate_limit_is_a_429_with_retry_after",
         "rate_app": True, "req": ("POST", "/v1/predict", {"json": {"description": GOOD}, "headers": REV})},
    ]


def run(models_dir: Path, version: str | None) -> list[dict]:
    from fastapi.testclient import TestClient

    from classifier.registry import Registry
    from service.app import create_app
    from service.settings import Settings

    src = Registry(models_dir).resolve(version)
    rows = []
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record):
            records.append(record)

    logging.getLogger("laari.service").addHandler(Keep(level=logging.WARNING))
    logging.getLogger("laari.service").setLevel(logging.INFO)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "models"
        prepare_registry(src, root)
        base = dict(api_keys=f"{REVIEWER_KEY}:reviewer,{ADMIN_KEY}:admin", models_dir=root,
                    feedback_url=str(Path(tmp) / "feedback.sqlite"), load_in_background=False)
        with TestClient(create_app(Settings(**base))) as main:
            predictor = main.app.state.service.handle.predictor
            others = {
                "signed_app": TestClient(create_app(Settings(**base, model_signing_key=SIGNING_KEY), predictor)),
                "rate_app": TestClient(create_app(Settings(**base, client_requests_per_minute=10), predictor)),
            }
            for c in others.values():
                c.__enter__()
            try:
                for case in cases():
                    name = next((k for k in others if case.get(k)), None)
                    client = others[name] if name else main
                    if name == "rate_app":  # the first request of the burst goes through
                        client.post("/v1/predict", json={"description": GOOD}, headers=REV)
                    rows.append(check(client, case, records))
            finally:
                for c in others.values():
                    c.__exit__(None, None, None)
    return rows


def check(client, case: dict, records: list) -> dict:
    service = client.app.state.service
    model_before = (service.handle.version, service.handle.content_id)
    feedback_before = service.feedback.count()
    seen = len(records)
    method, path, kwargs = case["req"]
    r = client.request(method, path, **kwargs)
    try:
        detail = r.json().get("detail")
    except ValueError:
        detail = r.text[:200]
    after = client.post("/v1/predict", json={"description": GOOD + f" {len(records)}"}, headers=ADM)
    logged = any(path in rec.getMessage() or "rejected" in rec.getMessage() for rec in records[seen:])
    lost = []
    if (service.handle.version, service.handle.content_id) != model_before:
        lost.append("the served model changed")
    if service.feedback.count() != feedback_before:
        lost.append("feedback rows changed")
    if after.status_code != 200:
        lost.append(f"the next prediction failed ({after.status_code})")
    return {"case": case["case"], "request": f"{method} {path}", "status": r.status_code,
            "retry_after": r.headers.get("Retry-After"), "detail": detail if isinstance(detail, str) else str(detail),
            "logged": logged, "lost": "; ".join(lost) or "nothing",
            "test": case["test"]}


def markdown(rows: list[dict]) -> str:
    out = ["| bad input | request | answer | what the client is told (start) | lost | test |", "|---|---|---|---|---|---|"]
    for row in rows:
        detail = row["detail"].replace("|", "\\|").replace("\n", " ")
        detail = detail if len(detail) <= 110 else detail[:107] + "..."
        answer = str(row["status"]) + (f", Retry-After {row['retry_after']}" if row["retry_after"] else "")
        out.append(f"| {row['case']} | `{row['request']}` | {answer} | {detail} | {row['lost']} | "
                   f"`{row['test'].split('::')[-1]}` |")
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models-dir", type=Path, default=ROOT / "models")
    ap.add_argument("--model", default=None, help="version (default: the registry's current)")
    ap.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "results" / "reliability.json")
    ap.add_argument("--markdown", action="store_true", help="print the table in Markdown")
    args = ap.parse_args()
    rows = run(args.models_dir, args.model)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"rows": rows}, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    print(markdown(rows) if args.markdown else json.dumps(rows, ensure_ascii=False, indent=1))
    bad = [r for r in rows if r["status"] >= 500 or r["lost"] != "nothing" or not r["logged"]]
    if bad:
        raise SystemExit(f"{len(bad)} case(s) answered 5xx, lost something or left no log line: "
                         f"{[r['case'] for r in bad]}")


if __name__ == "__main__":
    main()
