"""The feedback store and folding reviewers' decisions into training (``laari train --with-feedback``)."""

from __future__ import annotations

import json
import sqlite3
from datetime import datetime, timedelta, timezone

import pytest

from classifier.feedback import FeedbackStore, FeedbackStoreError, database_url
from tests.conftest import take
from training.datasets import DataError, LabelledSet
from training.feedback_data import feedback_corrections

T1 = "Hankkeessa kehitetään työterveyshuollon ja esihenkilöiden yhteistä varhaisen tuen mallia."
T2 = "Hankkeessa otetaan käyttöön tekoälyavusteinen asiakaspalvelu pk-yrityksissä."


def _row(**kw) -> dict:
    base = {"project_id": None, "title": None, "text": None, "text_sha256": "f" * 64, "model_version": "v1",
            "suggested_laari": None, "suggested_tags": None, "decision": "accept", "laari": None, "tags": None,
            "comment": None, "reviewer": None, "key_id": None}
    base.update(kw)
    return base


def _base() -> LabelledSet:
    s = LabelledSet(source="base")
    s.ids, s.titles, s.descriptions = ["LA-1"], ["Vanha"], ["Vanha kuvaus työhyvinvoinnista."]
    s.laari, s.tags = ["tyohyvinvointi"], [["tyohyvinvointi"]]
    return s


def test_store_is_durable_wal_and_ordered(tmp_path):
    path = tmp_path / "fb.sqlite"
    store = FeedbackStore(path)
    a = store.add(_row(project_id="P1", text=T1, laari="tyokyky", tags=["tyoterveyshuolto"]))
    b = store.add(_row(project_id="P2", text=T2, laari="digitalisaatio", tags=[]))
    store.close()
    assert a["id"] < b["id"] and a["created_at"].endswith("+00:00")
    con = sqlite3.connect(path)  # another process's view: committed, in WAL mode
    assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert con.execute("SELECT count(*) FROM feedback").fetchone()[0] == 2
    con.close()
    again = FeedbackStore(f"sqlite:///{path}", create=False)
    rows = list(again.rows())
    assert [r["project_id"] for r in rows] == ["P1", "P2"] and rows[0]["tags"] == ["tyoterveyshuolto"]
    assert [r["project_id"] for r in again.rows(project_id="P2")] == ["P2"]
    assert list(again.rows(since=datetime.now(timezone.utc) + timedelta(hours=1))) == []
    assert len(list(again.rows(limit=1))) == 1


def test_store_pages_through_many_rows(tmp_path):
    store = FeedbackStore(tmp_path / "fb.sqlite")
    for i in range(1203):
        store.add(_row(project_id=f"P{i}", text="x", laari="tyokyky", tags=[]))
    ids = [r["id"] for r in store.rows()]
    assert len(ids) == 1203 and ids == sorted(ids) and len(set(ids)) == 1203
    assert len(list(store.rows(limit=700))) == 700


def test_store_errors_are_clear(tmp_path):
    with pytest.raises(FeedbackStoreError, match="does not exist"):
        FeedbackStore(tmp_path / "missing.sqlite", create=False)
    with pytest.raises(FeedbackStoreError, match="invalid SQLAlchemy URL|cannot open"):
        FeedbackStore("nosuchdialect://x/y")
    assert database_url("rel/fb.sqlite").startswith("sqlite:////")


def test_latest_decision_per_project_wins(tmp_path, taxonomy):
    store = FeedbackStore(tmp_path / "fb.sqlite")
    store.add(_row(project_id="P1", text=T1, decision="accept", laari="tyohyvinvointi", tags=[]))
    store.add(_row(project_id="P1", text=T1, decision="correct", laari="tyokyky", tags=["tyoterveyshuolto"]))
    store.add(_row(project_id=None, text=T2, text_sha256="a" * 64, decision="correct", laari="digitalisaatio",
                   tags=["digitaaliset_ratkaisut"]))
    store.add(_row(project_id="P3", text=None, text_sha256="b" * 64, laari="osaaminen", tags=[]))  # hash only
    out = feedback_corrections(str(tmp_path / "fb.sqlite"), taxonomy, base=_base())
    assert sorted(out.ids) == ["P1", "feedback-" + "a" * 16]
    i = out.ids.index("P1")
    assert out.laari[i] == "tyokyky" and out.tags[i] == ["tyoterveyshuolto"] and out.descriptions[i] == T1
    assert "skipped 1 without text" in out.source


def test_a_correction_of_a_base_project_replaces_its_label(tmp_path, taxonomy):
    store = FeedbackStore(tmp_path / "fb.sqlite")
    store.add(_row(project_id="LA-1", title="Uusi", text=T1, decision="correct", laari="tyokyky", tags=[]))
    base = _base()
    out = feedback_corrections(f"sqlite:///{tmp_path / 'fb.sqlite'}", taxonomy, base=base)
    assert out.ids == ["LA-1"]
    assert base.laari == ["tyokyky"] and base.descriptions == [T1] and base.titles == ["Uusi"]


def test_labels_outside_the_taxonomy_are_refused(tmp_path, taxonomy):
    store = FeedbackStore(tmp_path / "fb.sqlite")
    store.add(_row(project_id="P1", text=T1, laari="vanha_laari", tags=[]))
    store.add(_row(project_id="P2", text=T2, laari="tyokyky", tags=["poistettu_teema"]))
    with pytest.raises(DataError) as info:
        feedback_corrections(tmp_path / "fb.sqlite", taxonomy, base=_base())
    msg = str(info.value)
    assert "2 feedback row(s) refused" in msg and "'vanha_laari'" in msg and "poistettu_teema" in msg
    assert "project P1" in msg and "project P2" in msg


def test_missing_database_is_a_data_error(tmp_path, taxonomy):
    with pytest.raises(DataError, match="does not exist"):
        feedback_corrections(tmp_path / "nope.sqlite", taxonomy, base=_base())


def test_train_with_feedback_folds_corrections(tmp_path, monkeypatch, corpus_train, taxonomy):
    """The CLI end to end (lexical channel only, so no embedding model is needed)."""
    from typer.testing import CliRunner

    from laari.cli import app

    small = take(corpus_train, 6)
    data = tmp_path / "small.jsonl"
    data.write_text("".join(json.dumps({"id": i, "title": t, "description": d, "laari": l, "tags": g},
                                       ensure_ascii=False) + "\n"
                            for i, t, d, l, g in zip(small.ids, small.titles, small.descriptions, small.laari,
                                                     small.tags)), encoding="utf-8")
    db = tmp_path / "fb.sqlite"
    store = FeedbackStore(db)
    store.add(_row(project_id="NEW-1", text=T1, decision="correct", laari="tyokyky", tags=["tyoterveyshuolto"]))
    store.add(_row(project_id="NEW-2", text=T2, decision="accept", laari="digitalisaatio", tags=[]))
    store.close()
    monkeypatch.setenv("LAARI_MODELS_DIR", str(tmp_path / "models"))
    result = CliRunner().invoke(app, ["train", "--data", str(data), "--with-feedback", str(db), "--channels",
                                      "lexical", "--version", "fb", "--no-evaluate", "--json"])
    assert result.exit_code == 0, result.output
    manifest = json.loads((tmp_path / "models" / "fb" / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["feedback"]["rows"] == 2
    assert manifest["training_data"]["rows"] == len(small) + 2

    bad = tmp_path / "bad.sqlite"
    FeedbackStore(bad).add(_row(project_id="X", text=T1, laari="eiole", tags=[]))
    result = CliRunner().invoke(app, ["train", "--data", str(data), "--with-feedback", str(bad), "--channels",
                                      "lexical", "--version", "bad", "--no-evaluate"])
    assert result.exit_code == 1 and "'eiole'" in result.output
