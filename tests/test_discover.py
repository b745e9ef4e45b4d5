"""Pool discovery: k is recovered on separable data, results are deterministic for a seed, agreement figures are
right, and the draft taxonomy is valid for ``load_taxonomy``."""

from __future__ import annotations

import json

import numpy as np
import pytest

from classifier.taxonomy import load_taxonomy
from tests.batch_fixtures import write_rows
from tests.conftest import HashingEmbedder, take
from training.discover import (Corpus, DiscoverSettings, agreement, ascii_id, choose_k, discover, load_corpus,
                               write_discovery, write_taxonomy_draft)
from classifier.pools import unit_rows


def sphere_blobs(k, n=30, dim=20, spread=0.25, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(k, dim))
    X = np.vstack([c + spread * rng.normal(size=(n, dim)) * np.linalg.norm(c) / np.sqrt(dim) for c in centres])
    return unit_rows(X), np.repeat(np.arange(k), n)


@pytest.mark.parametrize("k", [3, 5])
def test_choose_k_finds_separable_clusters(k):
    from sklearn.metrics import adjusted_rand_score

    F, truth = sphere_blobs(k)
    chosen, labels, table = choose_k(F, DiscoverSettings(k_min=2, k_max=7, bootstrap=3, n_init=4))
    assert chosen == k
    assert adjusted_rand_score(truth, labels) == 1.0
    assert [r["k"] for r in table] == list(range(2, 8)) and sum(r["chosen"] for r in table) == 1
    row = next(r for r in table if r["k"] == k)
    assert row["stability"] > 0.95


def test_agreement_figures():
    a = agreement(["x", "x", "y", "y", "y"], ["A", "A", "B", "B", "A"], pools=["A", "B"])
    assert a["contingency"] == {"rows": ["A", "B"], "columns": ["x", "y"], "counts": [[2, 1], [0, 2]]}
    assert a["per_pool"][0] == {"pool": "A", "size": 3, "majority_label": "x", "purity": round(2 / 3, 4)}
    perfect = agreement(["x", "y", "x"], ["B", "A", "B"])
    assert perfect["ari"] == 1.0 and perfect["nmi"] == 1.0


@pytest.fixture(scope="module")
def small_corpus(corpus_train):
    s = take(corpus_train, 8)
    return Corpus(list(s.ids), list(s.titles), list(s.descriptions), list(s.laari), ["test"])


def test_discover_is_deterministic_and_names_pools(small_corpus):
    settings = DiscoverSettings(k_min=3, k_max=6, bootstrap=2, n_init=4, seed=3)
    a = discover(small_corpus, HashingEmbedder(), settings)
    b = discover(small_corpus, HashingEmbedder(), settings)
    assert a["assignments"] == b["assignments"] and a["k"] == b["k"]
    assert len(a["assignments"]) == len(small_corpus) == 48
    pools = a["report"]["pools"]
    assert len(pools) == a["k"] and sum(p["size"] for p in pools) == 48
    for p in pools:
        assert p["id"].startswith("pool_") and p["keywords"] and p["representatives"]
        assert p["name"] == " / ".join(k["term"] for k in p["keywords"][:3])
        assert p["verdict"] in ("homogeneous", "review", "too small")
    ag = a["agreement"]
    assert -1 <= ag["ari"] <= 1 and sum(map(sum, ag["contingency"]["counts"])) == 48
    assert ag["contingency"]["rows"] == [p["id"] for p in pools]


def test_lexical_features_need_no_embedder(small_corpus):
    res = discover(small_corpus, None, DiscoverSettings(k=6, features="lexical", n_init=4))
    assert res["k"] == 6 and res["k_selection"][0]["stability"] is None
    with pytest.raises(ValueError, match="need an embedder"):
        discover(small_corpus, None, DiscoverSettings(k=6))


def test_draft_taxonomy_is_valid_and_keeps_the_base(tmp_path, small_corpus, taxonomy):
    res = discover(small_corpus, HashingEmbedder(), DiscoverSettings(k=4, n_init=4))
    path = write_taxonomy_draft(res, tmp_path / "draft.yaml", taxonomy)
    draft = load_taxonomy(path)
    assert draft.laari_ids == [p["id"] for p in res["report"]["pools"]]
    assert draft.out_of_theme == taxonomy.out_of_theme and draft.tag_ids == taxonomy.tag_ids
    assert all(lt.assessment[0].startswith("TODO") for lt in draft.laarit)
    assert "DRAFT" in path.read_text(encoding="utf-8").splitlines()[0]
    files = write_discovery(res, tmp_path / "rep")
    html = (tmp_path / "rep" / "report.html").read_text(encoding="utf-8")
    assert "Agreement with the current labels" in html and html.count("<img") >= 4
    data = json.loads((tmp_path / "rep" / "report.json").read_text(encoding="utf-8"))
    assert data["k"] == 4 and "agreement" in data and "_plot" not in data["report"]
    assert (tmp_path / "rep" / "assignments.csv").read_text().startswith("id,pool")
    assert set(files) >= {"html", "json", "assignments"}


def test_ascii_ids():
    assert ascii_id("Työterveyshuolto-yhteistyö Å") == "tyoterveyshuolto_yhteistyo_a"


def test_cli_discover(tmp_path, monkeypatch, corpus_train):
    import typer
    from typer.testing import CliRunner

    from training import cli_pools

    monkeypatch.setattr(cli_pools, "_embedder", HashingEmbedder)
    app = typer.Typer()
    cli_pools.register(app)
    s = take(corpus_train, 6)
    rows = [{"id": i, "title": t, "description": d, "laari": lab}
            for i, t, d, lab in zip(s.ids, s.titles, s.descriptions, s.laari)]
    inp = tmp_path / "corpus.jsonl"
    inp.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    unlabeled = write_rows([{k: r[k] for k in ("id", "title", "description")} for r in rows], tmp_path / "u.csv")
    assert load_corpus([unlabeled]).labels is None and load_corpus([inp]).labels is not None
    res = CliRunner().invoke(app, ["discover", str(inp), "--k", "3", "--out", str(tmp_path / "rep"),
                                   "--write-taxonomy", str(tmp_path / "draft.yaml"), "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout[res.stdout.index("{"):])
    assert out["k"] == 3 and len(out["pools"]) == 3 and out["agreement"]["ari"] is not None
    assert load_taxonomy(tmp_path / "draft.yaml").laari_ids == [p["id"] for p in out["pools"]]
    res = CliRunner().invoke(app, ["discover", str(inp), "--k", "3", "--no-labels", "--out", str(tmp_path / "r2"),
                                   "--features", "lexical", "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout[res.stdout.index("{"):])["agreement"] is None


def test_draft_keeps_awkward_words_as_written(tmp_path, small_corpus, taxonomy):
    """Words YAML would otherwise read as booleans, nulls, comments or mappings come back as the same strings."""
    res = discover(small_corpus, HashingEmbedder(), DiscoverSettings(k=4, n_init=4))
    awkward = ["no", "true", "null", "a: b", "# ei", "'lainaus\"", "rivi\nvaihto"]
    res["report"]["pools"][0]["keywords"] = [{"term": t} for t in awkward]
    path = write_taxonomy_draft(res, tmp_path / "draft.yaml", taxonomy)
    first = load_taxonomy(path).laarit[0]
    assert list(first.include) == awkward[:5]
    assert first.name_fi == " / ".join(awkward[:3])
