"""Provenance of the corpus: every register-derived and register-style row has the schema and source it claims,
no project kept apart for evaluation is used, and no wording is copied from the real register sample."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from training.pipeline import REGISTER_HELDOUT, REGISTER_TRAIN, WRITTEN_REGISTER_STYLE
from training.provenance import (check_rows, heldout_ids, merge, read_jsonl, reserved_codes, runs, schema_problems,
                                 shared_runs, taxonomy_ids)

SHARED = Path(__file__).resolve().parents[2] / "shared"
RESERVED = SHARED / "real-sample" / "reserved-codes.txt"
SAMPLE = SHARED / "real-sample" / "projects.jsonl"
needs_shared = pytest.mark.skipif(not RESERVED.exists(), reason=f"{RESERVED} is not here (only CI and developers "
                                  "have ../shared); the schema tests below still run")
FILES = [REGISTER_TRAIN, REGISTER_HELDOUT, WRITTEN_REGISTER_STYLE]


def corpus_rows():
    return [(str(p), n, r) for p in FILES if p.exists() for n, r in read_jsonl(p)]


def test_register_files_hold_enough_rows_from_every_kind_of_objective():
    rows = [r for _, _, r in corpus_rows() if r["source"].startswith("EURA")]
    assert len(rows) >= 200
    objectives = {r["erityistavoite_code"] for r in rows}
    assert {"7.1", "6.1", "9.1", "9.2", "10.1", "12.3", "12.4"} <= objectives
    assert len({r["id"] for r in rows}) == len(rows)


def test_every_row_has_the_schema_it_claims():
    laarit, tags = taxonomy_ids()
    problems = [f"{p}:{n}: {msg}" for p, n, r in corpus_rows() for msg in schema_problems(r, laarit, tags)]
    assert problems == []


def test_register_rows_and_written_rows_are_in_their_own_files():
    for p, _, r in corpus_rows():
        written = r["source"] == "written"
        assert written == p.endswith("written.jsonl"), (p, r["id"])


def test_every_register_row_is_in_the_harvest_log_as_used():
    log = REGISTER_TRAIN.parent / "harvest" / "log.tsv"
    lines = [line.split("\t") for line in log.read_text(encoding="utf-8").splitlines()[1:] if line.strip()]
    assert all(len(f) == 5 for f in lines)
    used = {f[2] for f in lines if f[3] == "used"}
    rows = [r["id"] for _, _, r in corpus_rows() if r["source"].startswith("EURA")]
    assert sorted(set(rows) - used) == []


def test_heldout_split_is_stable_and_stratified():
    train = [r for _, r in read_jsonl(REGISTER_TRAIN)]
    held = [r for _, r in read_jsonl(REGISTER_HELDOUT)]
    assert not {r["id"] for r in train} & {r["id"] for r in held}
    for lab in {r["laari"] for r in train + held}:
        n_held = sum(r["laari"] == lab for r in held)
        assert n_held >= 1, lab


@needs_shared
def test_no_reserved_project_and_no_wording_of_the_real_sample():
    reserved = reserved_codes(RESERVED)
    reference = [r["description"] for _, r in read_jsonl(SAMPLE)]
    problems = check_rows(corpus_rows(), reserved, reference)
    assert problems == []


def test_shared_runs_finds_six_word_copies_and_ignores_the_name():
    original = "Hankkeen tavoitteena on vahvistaa pk-yritysten henkilöstön työhyvinvointia Kainuussa vuosina 2019-2021."
    copy = "Tavoitteena on vahvistaa pk-yritysten henkilöstön työhyvinvointia, kertoo hanke."
    fresh = "Kainuun pienten yritysten työntekijöiden jaksamista tuetaan kolmen vuoden ajan."
    assert shared_runs(copy, original) == ["on vahvistaa pk yritysten henkilöstön työhyvinvointia",
                                           "tavoitteena on vahvistaa pk yritysten henkilöstön"]
    assert shared_runs(fresh, original) == []
    name = "Voimaa arkeen ja työhön pohjoisessa Suomessa"
    assert shared_runs(f"{name} -hanke alkaa.", f"{name} on hanke.") != []
    assert shared_runs(f"{name} -hanke alkaa.", f"{name} on hanke.", allowed=name) == []
    assert runs("yksi kaksi kolme", 6) == set()


def test_check_rows_reports_each_problem_with_file_line_and_id(tmp_path):
    row = {"id": "S29999", "source": "EURA2014:S29999", "title": "T", "description": "Uusi kuvaus.",
           "erityistavoite_code": "7.1", "applicant_orgtype": "Yliopisto", "laari": "tyohyvinvointi",
           "tags": ["tyohyvinvointi"], "confidence": "high"}
    bad = dict(row, id="S28888", source="EURA2014:S28887", laari="hyvinvointi", confidence="low")
    (tmp_path / "S29999.txt").write_text("Alkuperäinen teksti, jossa ei ole samoja sanoja.", encoding="utf-8")
    out = check_rows([("f.jsonl", 1, row), ("f.jsonl", 2, bad), ("f.jsonl", 3, row)], {"S28888"}, [],
                     originals=tmp_path)
    assert any(line.startswith("f.jsonl:2: S28888: id:") for line in out)
    assert any("f.jsonl:2: S28888: laari: 'hyvinvointi'" in line for line in out)
    assert any("f.jsonl:2: S28888: note:" in line for line in out)
    assert any("f.jsonl:2: S28888: reserved" in line for line in out)
    assert any("f.jsonl:2: S28888: no original" in line for line in out)
    assert any("f.jsonl:3: S29999: duplicate project, first at f.jsonl:1" in line for line in out)
    assert not any(line.startswith("f.jsonl:1:") for line in out)


def test_merge_keeps_existing_sides_and_splits_new_rows_by_id(tmp_path):
    def rows(start, n, laari):
        return [{"id": f"S2{start + i:04d}", "laari": laari} for i in range(n)]

    part = tmp_path / "part.jsonl"
    first = rows(0, 10, "tyohyvinvointi") + rows(100, 5, "ei_teemassa")
    part.write_text("".join(json.dumps(r) + "\n" for r in first), encoding="utf-8")
    train, held = tmp_path / "train.jsonl", tmp_path / "held.jsonl"
    assert merge([part], train, held) == (12, 3)  # ceil(0.2 * 10) + ceil(0.2 * 5) held out
    held_before = {r["id"] for _, r in read_jsonl(held)}
    assert held_before == heldout_ids(first)
    second = first + rows(200, 10, "muutoskyky")
    part.write_text("".join(json.dumps(r) + "\n" for r in reversed(second)), encoding="utf-8")
    assert merge([part], train, held) == (8, 2)
    held_after = {r["id"] for _, r in read_jsonl(held)}
    assert held_before <= held_after and len(held_after) == 5
    ids = [r["id"] for _, r in read_jsonl(train)]
    assert ids == sorted(ids) and len(ids) + len(held_after) == 25
