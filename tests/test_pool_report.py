"""Pool homogeneity report: the figures are exact (checked against scikit-learn and brute force), the verdicts
follow the thresholds, outliers are found, keywords come from the pool's texts, and the report is written as
HTML with real images and JSON, from labelled data and from a batch output."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.batch_fixtures import HashingFactory, register_rows, write_rows
from classifier.pools import class_keywords, pool_geometry, prepare_space
from training.pool_report import PoolData, Thresholds, compute_report
from training.pool_report_page import write_report

PNG = b"\x89PNG\r\n\x1a\n"


def blobs(sizes, dim=24, spread=0.35, seed=0):
    """Points around random directions on the sphere, one blob per size; labels 'p0', 'p1', ..."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(len(sizes), dim))
    X, y = [], []
    for i, n in enumerate(sizes):
        X.append(centres[i] + spread * rng.normal(size=(n, dim)) * np.linalg.norm(centres[i]) / np.sqrt(dim))
        y += [f"p{i}"] * n
    return np.vstack(X), y


def test_geometry_matches_sklearn_and_brute_force():
    from sklearn.metrics import silhouette_samples

    X, y = blobs([30, 20, 25], spread=1.2)
    Z = prepare_space(X)
    pools = ["p0", "p1", "p2"]
    g = pool_geometry(Z, y, pools)
    assert np.allclose(g["silhouette"], silhouette_samples(Z, y, metric="cosine"), atol=1e-9)
    y = np.asarray(y)
    for a, pa in enumerate(pools):
        for b, pb in enumerate(pools):
            S = Z[y == pa] @ Z[y == pb].T
            expected = (S.sum() - np.trace(S)) / (S.size - len(S)) if a == b else S.mean()
            assert g["pairwise"][a, b] == pytest.approx(expected)
        c = Z[y == pa].mean(axis=0)
        assert np.allclose(g["sim"][y == pa], Z[y == pa] @ (c / np.linalg.norm(c)))


def data_for(X, y, texts=None):
    n = len(y)
    return PoolData(ids=[f"id{i}" for i in range(n)], titles=[f"title {i}" for i in range(n)],
                    texts=texts or [f"teksti {lab} sana{i % 3}" for i, lab in enumerate(y)], labels=list(y),
                    vectors=X, space="test", source="test", kind="labelled data")


def test_verdicts_follow_the_thresholds_and_outliers_are_listed():
    X, y = blobs([40, 40, 40, 6], spread=0.3)
    y = list(y)
    y[0] = "p1"  # a p0 point labelled p1: closer to p0 than to its own pool
    rep = compute_report(data_for(X, y), pools=["p0", "p1", "p2", "p3"], thresholds=Thresholds(min_size=10))
    pools = {b["id"]: b for b in rep["pools"]}
    assert pools["p0"]["verdict"] == pools["p2"]["verdict"] == "homogeneous"
    assert pools["p3"]["verdict"] == "too small"
    assert pools["p1"]["outliers"][0]["id"] == "id0" and "closer to p0" in pools["p1"]["outliers"][0]["reason"]
    assert pools["p1"]["size"] == 41 and pools["p0"]["size"] == 39
    assert {b["nearest"] for b in rep["pools"]} <= set(pools)
    assert all(b["separation"] > 0 for b in rep["pools"])
    strict = compute_report(data_for(X, y), pools=["p0", "p1", "p2", "p3"],
                            thresholds=Thresholds(min_silhouette=0.99, min_size=10))
    assert {b["id"]: b["verdict"] for b in strict["pools"]} == {"p0": "review", "p1": "review", "p2": "review",
                                                                 "p3": "too small"}
    assert "silhouette" in strict["pools"][0]["verdict_reasons"][0]
    # mixing two pools' members makes both less homogeneous
    rng = np.random.default_rng(1)
    mixed = [("p0" if rng.random() < 0.5 else "p1") if lab in ("p0", "p1") else lab for lab in y]
    rep2 = compute_report(data_for(X, mixed), pools=["p0", "p1", "p2", "p3"])
    sil = {b["id"]: b["silhouette"] for b in rep2["pools"]}
    assert sil["p0"] < pools["p0"]["silhouette"] and sil["p1"] < pools["p1"]["silhouette"]
    assert {b["id"]: b["verdict"] for b in rep2["pools"]}["p0"] == "review"


def test_out_of_theme_is_reported_but_is_not_a_pool():
    X, y = blobs([30, 30, 30], spread=0.3)
    y = ["out" if lab == "p2" else lab for lab in y]
    rep = compute_report(data_for(X, y), pools=["p0", "p1"], out_id="out")
    assert [b["id"] for b in rep["pools"]] == ["p0", "p1"]
    assert rep["out_of_theme"]["size"] == 30 and rep["summary"]["out_of_theme"] == 30
    assert rep["pools"][0]["nearest"] == "p1"


def test_keywords_are_the_pools_own_words():
    texts, labels = [], []
    for i in range(12):
        texts.append(f"Hankkeessa otetaan käyttöön robotteja ja tekoälyä tehtaassa {i}.")
        labels.append("digi")
        texts.append(f"Hankkeessa vähennetään kuormitusta ja tuetaan jaksamista työyhteisössä {i}.")
        labels.append("hyvinvointi")
    kw = class_keywords(texts, labels, ["digi", "hyvinvointi"], n=4)
    digi = [k["term"] for k in kw["digi"]]
    hyv = [k["term"] for k in kw["hyvinvointi"]]
    assert "robotti" in digi and "kuormitus" in hyv
    assert not set(digi) & set(hyv)
    assert "hanke" not in digi  # in every project: says nothing about the pool


def test_report_files_are_html_with_real_images_and_json(tmp_path, taxonomy):
    X, y = blobs([25, 25, 25, 25, 25], spread=0.4)
    y = [taxonomy.laari_ids[int(lab[1:])] for lab in y]
    rep = compute_report(data_for(X, y), pools=taxonomy.laari_ids, taxonomy=taxonomy)
    paths = write_report(rep, tmp_path / "rep")
    html = (tmp_path / "rep" / "report.html").read_text(encoding="utf-8")
    assert html.count('<img src="data:image/png;base64,') == 3
    for name in ("map.png", "similarity.png", "homogeneity.png"):
        assert (tmp_path / "rep" / name).read_bytes()[:8] == PNG
    data = json.loads((tmp_path / "rep" / "report.json").read_text(encoding="utf-8"))
    assert "_plot" not in data and len(data["pools"]) == 5
    first = taxonomy.laarit[0]
    assert data["pools"][0]["assessment"] == list(first.assessment) and first.assessment[0] in html
    assert data["map"]["points_shown"] == 125 and data["pairwise_similarity"]["labels"] == taxonomy.laari_ids
    assert set(paths) >= {"html", "json", "map.png"}


def test_report_from_a_batch_output_and_from_labelled_data(tmp_path, monkeypatch, trained_bundle, corpus_train,
                                                            taxonomy):
    import typer
    from typer.testing import CliRunner

    from tests.conftest import take
    from batch.run import run_batch
    from batch.settings import BatchSettings
    from training import cli_pools

    monkeypatch.setattr(cli_pools, "_predictor", lambda model: HashingFactory(str(trained_bundle.path))())
    app = typer.Typer()
    cli_pools.register(app)
    inp = write_rows(register_rows(corpus_train, 90), tmp_path / "register.csv")
    predictor = HashingFactory(str(trained_bundle.path))()
    run_batch(inp, tmp_path / "out.parquet", predictor=predictor, settings=BatchSettings(chunk_size=32))
    res = CliRunner().invoke(app, ["report", str(tmp_path / "out.parquet"), "--out", str(tmp_path / "rep"), "--json",
                                   "--min-size", "3"])
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout[res.stdout.index("{"):])
    data = json.loads((tmp_path / "rep" / "report.json").read_text(encoding="utf-8"))
    assert data["source_kind"] == "batch output" and data["error_rows"] == 3 and data["n"] == 87
    assert {p["id"] for p in summary["pools"]} <= set(taxonomy.laari_ids)
    assert sum(p["size"] for p in data["pools"]) + data["summary"]["out_of_theme"] == 87
    assert (tmp_path / "rep" / "report.html").exists()

    small = take(corpus_train, 6)
    rows = [{"id": i, "title": t, "description": d, "laari": lab}
            for i, t, d, lab in zip(small.ids, small.titles, small.descriptions, small.laari)]
    write_rows(rows, tmp_path / "labelled.jsonl")
    (tmp_path / "labelled.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows),
                                             encoding="utf-8")
    res = CliRunner().invoke(app, ["report", str(tmp_path / "labelled.jsonl"), "--out", str(tmp_path / "rep2"),
                                   "--min-size", "3"])
    assert res.exit_code == 0, res.output
    data = json.loads((tmp_path / "rep2" / "report.json").read_text(encoding="utf-8"))
    assert data["source_kind"] == "labelled data" and data["n"] == 36
    assert [b["id"] for b in data["pools"]] == taxonomy.laari_ids and data["out_of_theme"]["size"] == 6
