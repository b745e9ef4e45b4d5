"""Excel output and EURA 2021 exports end to end: `laari batch export.xlsx out.xlsx` gives one row per project with
the official columns beside laari's, in a sheet with a frozen header and filters; every output format holds the
same rows and columns; the Excel output is atomic and resumable; the comparison report's moved projects come as
an Excel sheet; and `laari report` cross-tabulates laari against `Et` and the secondary theme."""

from __future__ import annotations

import json
import os

import pytest

from batch.compare import compare_outputs
from batch.run import run_batch
from batch.settings import BatchSettings
from batch.workdir import WorkDir
from classifier.bundle import load_bundle
from classifier.predictor import Predictor
from classifier.register_layouts import EURA_2021
from classifier.result_rows import ROW_FIELDS, iter_output, output_fields
from tests.batch_fixtures import (
    HashingFactory,
    eura_2021_projects,
    register_rows,
    write_eura_2021_export,
    write_rows,
)
from tests.conftest import HashingEmbedder


class Stop(Exception):
    pass


@pytest.fixture(scope="module")
def predictor(trained_bundle):
    return Predictor(load_bundle(trained_bundle.path), HashingEmbedder())


@pytest.fixture(scope="module")
def projects(corpus_train):
    return eura_2021_projects(corpus_train, 30)


@pytest.fixture()
def export(tmp_path, projects):
    return write_eura_2021_export(projects, tmp_path / "export.xlsx")


def run(inp, out, predictor, **kw):
    return run_batch(inp, out, predictor=predictor, settings=BatchSettings(chunk_size=kw.pop("chunk_size", 8)), **kw)


def test_eura_export_to_xlsx_one_row_per_project_with_official_columns(tmp_path, predictor, projects, export,
                                                                        taxonomy):
    from openpyxl import load_workbook

    out = tmp_path / "out.xlsx"
    result = run(export, out, predictor)
    m = result.manifest
    assert m["counts"]["rows"] == 30 and m["counts"]["errors"] == 1  # the project without a summary
    assert m["input"]["reading"]["layout"] == "EURA 2021"
    assert m["input"]["reading"]["columns"]["id"] == "Hankekoodi"
    assert [s["row"] for s in m["input"]["skipped_rows"]] == [31, 32]
    wb = load_workbook(out)  # not read-only: the sheet's view and filter are read too
    ws = wb.worksheets[0]
    assert ws.freeze_panes == "A2"
    fields = output_fields(EURA_2021.kept)
    assert ws.auto_filter.ref == f"A1:{ws.cell(1, len(fields)).column_letter}31"
    header = [c.value for c in ws[1]]
    assert header == list(fields) and "Hankekoodi" in header and "Et" in header
    values = list(ws.iter_rows(min_row=2, values_only=True))
    assert len(values) == 30
    col = {k: i for i, k in enumerate(header)}
    assert [v[col["Hankekoodi"]] for v in values] == [p["Hankekoodi"] for p in projects]
    assert [v[col["id"]] for v in values] == [p["Hankekoodi"] for p in projects]
    assert [v[col["Et"]] for v in values] == [p["Et"] for p in projects]
    assert values[1][col["Suunniteltu rahoitus yhteensä"]] == pytest.approx(101250.5)  # a number, for Excel
    assert values[3][col["error"]].startswith("description: empty")
    ok = [v for v in values if v[col["error"]] is None]
    assert all(v[col["laari"]] in taxonomy.verdict_ids for v in ok)
    assert all(set(json.loads(v[col["laari_scores"]])) == set(taxonomy.laari_ids) for v in ok)
    back = list(iter_output(out))
    assert [r["Et"] for r in back] == [p["Et"] for p in projects] and back[0]["Aloituspvm"] == "2023-01-01"


def test_every_output_format_holds_the_same_rows_and_columns(tmp_path, predictor, export):
    import pyarrow.parquet as pq

    rows = {}
    for ext in ("jsonl", "csv", "parquet", "xlsx"):
        run(export, tmp_path / f"out.{ext}", predictor)
        rows[ext] = list(iter_output(tmp_path / f"out.{ext}"))
    assert rows["jsonl"] == rows["csv"] == rows["parquet"] == rows["xlsx"]
    fields = list(output_fields(EURA_2021.kept))
    assert list(rows["jsonl"][0]) == fields
    assert (tmp_path / "out.csv").read_text(encoding="utf-8").splitlines()[0].split(",")[:len(ROW_FIELDS)] == \
        list(ROW_FIELDS)
    assert pq.read_table(tmp_path / "out.parquet").schema.names == fields
    first = json.loads((tmp_path / "out.jsonl").read_text(encoding="utf-8").splitlines()[0])
    assert list(first) == fields


def test_plain_register_to_xlsx_has_laari_fields_only(tmp_path, predictor, corpus_train):
    inp = write_rows(register_rows(corpus_train, 20), tmp_path / "in.csv")
    run(inp, tmp_path / "out.jsonl", predictor)
    run(inp, tmp_path / "out.xlsx", predictor)
    assert list(iter_output(tmp_path / "out.xlsx")) == list(iter_output(tmp_path / "out.jsonl"))
    assert list(next(iter_output(tmp_path / "out.xlsx"))) == list(ROW_FIELDS)


def test_xlsx_output_is_atomic_and_resumable(tmp_path, predictor, export, monkeypatch):
    out = tmp_path / "out.xlsx"
    out.write_bytes(b"old output")

    def stop(index):
        if index == 1:
            raise Stop()

    with pytest.raises(Stop):
        run(export, out, predictor, after_chunk=stop)
    assert out.read_bytes() == b"old output" and WorkDir(out).exists()
    from batch import xlsx_out

    def broken_close(self):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(xlsx_out.XlsxRows, "close", broken_close)
    with pytest.raises(OSError, match="out.xlsx"):
        run(export, out, predictor, resume=True)
    assert out.read_bytes() == b"old output" and WorkDir(out).exists()
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]
    monkeypatch.undo()
    result = run(export, out, predictor, resume=True)
    assert result.manifest["resumed"] and result.manifest["counts"]["rows"] == 30
    run(export, tmp_path / "once.xlsx", predictor)
    assert list(iter_output(out)) == list(iter_output(tmp_path / "once.xlsx"))


def test_comparison_writes_the_moved_projects_as_xlsx(tmp_path, predictor, export):
    from openpyxl import load_workbook

    prev = tmp_path / "prev.jsonl"
    run(export, prev, predictor)
    rows = list(iter_output(prev))
    moved = rows[0]
    other = next(lab for lab in ("tyokyky", "osaaminen") if lab != moved["laari"])
    moved["laari"] = other
    prev.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    result = run(export, tmp_path / "new.xlsx", predictor, compare_to=prev)
    path = result.compare["paths"]["xlsx"]
    ws = load_workbook(path).worksheets[0]
    assert ws.freeze_panes == "A2"
    header = [c.value for c in ws[1]]
    assert header[:3] == ["id", "previous_laari", "laari"] and "Et" in header
    values = list(ws.iter_rows(min_row=2, values_only=True))
    assert len(values) == 1 == compare_outputs(prev, tmp_path / "new.xlsx")["summary"]["moved"]
    assert values[0][:2] == (moved["id"], other) and values[0][header.index("Et")] == moved["Et"]


def test_cli_batch_and_report_on_an_export(tmp_path, monkeypatch, trained_bundle, corpus_train, export, projects):
    import typer
    from typer.testing import CliRunner

    from batch import cli as batch_cli
    from training import cli_pools

    monkeypatch.setattr(batch_cli, "_factory", lambda model, device=None: HashingFactory(str(trained_bundle.path)))
    monkeypatch.setattr(cli_pools, "_predictor", lambda model: HashingFactory(str(trained_bundle.path))())
    app = typer.Typer()
    batch_cli.register(app)
    cli_pools.register(app)
    runner = CliRunner()
    out = tmp_path / "out.xlsx"
    res = runner.invoke(app, ["batch", str(export), str(out), "-q"])
    assert res.exit_code == 0, res.output
    text = " ".join(res.stdout.split())
    assert "EURA 2021" in text and "skipped (not projects) │ 2" in text and "Yhteensä" in text
    res = runner.invoke(app, ["report", str(out), "--out", str(tmp_path / "rep"), "--min-size", "2"])
    assert res.exit_code == 0, res.output
    assert "laari x Et" in res.stdout
    rep = json.loads((tmp_path / "rep" / "report.json").read_text(encoding="utf-8"))
    tables = {t["column"]: t for t in rep["crosstabs"]}
    assert set(tables) == {"Et", "Toissijainen teema, vain ESR+"}
    et = tables["Et"]
    assert et["values"] == ["4.1", "4.4", "4.6", "4.11"] and et["total"] == 29
    labels = {r["id"]: r["laari"] for r in iter_output(out) if r["error"] is None}
    for lab, row in zip(et["laari"], et["counts"]):
        for value, n in zip(et["values"], row):
            assert n == sum(1 for p in projects if labels.get(p["Hankekoodi"]) == lab and p["Et"] == value)
    theme = tables["Toissijainen teema, vain ESR+"]
    assert "(empty)" in theme["values"] and theme["total"] == 29
    html = (tmp_path / "rep" / "report.html").read_text(encoding="utf-8")
    assert "laari × Et" in html and "laari × Toissijainen teema, vain ESR+" in html


def test_ray_engine_carries_the_official_columns(tmp_path, trained_bundle, export):
    pytest.importorskip("ray")
    from batch.ray_engine import RayEngine

    factory = HashingFactory(str(trained_bundle.path))
    local = factory()
    run(export, tmp_path / "local.jsonl", local)
    engine = RayEngine(factory, num_cpus=2, workers=1, batch_size=16)
    try:
        run(export, tmp_path / "ray.jsonl", local, engine=engine)
    finally:
        engine.close()
    assert (tmp_path / "ray.jsonl").read_text(encoding="utf-8") == (tmp_path / "local.jsonl").read_text(encoding="utf-8")
    assert next(iter_output(tmp_path / "ray.jsonl"))["Et"] == "4.1"
