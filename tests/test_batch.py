"""Batch reclassification: one output row per input row in order, error rows, formats, resume after a crash or
kill -9, atomic output, the manifest, the comparison report, the CLI and the Ray engine."""

from __future__ import annotations

import codecs
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from classifier.bundle import load_bundle
from classifier.predictor import Predictor
from tests.batch_fixtures import HashingFactory, register_rows, write_rows
from tests.conftest import HashingEmbedder
from batch.compare import compare_outputs
from batch.local_engine import LocalEngine
from batch.predict import jsonl_bytes
from batch.run import run_batch
from batch.settings import BatchError, BatchSettings
from batch.workdir import WorkDir
from classifier.project_rows import Columns
from classifier.result_rows import ROW_FIELDS, iter_output, manifest_path
from classifier.tables import DataError, file_hash

REPO = Path(__file__).resolve().parent.parent


class Stop(Exception):
    """Raised from ``after_chunk`` to interrupt a run at a chosen chunk."""


@pytest.fixture(scope="module")
def predictor(trained_bundle):
    return Predictor(load_bundle(trained_bundle.path), HashingEmbedder())


@pytest.fixture(scope="module")
def rows40(corpus_train):
    return register_rows(corpus_train, 40)


def run(inp, out, predictor, **kw):
    settings = kw.pop("settings", None) or BatchSettings(chunk_size=kw.pop("chunk_size", 8),
                                                         explain=kw.pop("explain", "fast"))
    return run_batch(inp, out, predictor=predictor, settings=settings, **kw)


def stop_after(n):
    def hook(index):
        if index == n:
            raise Stop(index)
    return hook


@pytest.mark.parametrize("ext", ["jsonl", "csv", "tsv", "parquet", "xlsx"])
def test_every_input_row_gives_one_output_row_in_order(tmp_path, predictor, rows40, taxonomy, ext):
    inp = write_rows(rows40, tmp_path / f"register.{ext}")
    result = run(inp, tmp_path / "out.jsonl", predictor)
    out = list(iter_output(tmp_path / "out.jsonl"))
    assert [r["row"] for r in out] == list(range(1, 41))
    assert [r["id"] for r in out] == [r["id"] or None for r in rows40]
    errors = {r["row"]: r["error"] for r in out if r["error"]}
    assert set(errors) == {3, 5, 7}
    assert errors[3].startswith("description: empty")
    assert errors[5] == f"id: duplicate id {rows40[1]['id']!r} (first on row 2)"
    assert errors[7].startswith("id: empty")
    for r in out:
        assert list(r) == list(ROW_FIELDS)
        if r["error"] is None:
            assert r["laari"] in taxonomy.verdict_ids and r["model_version"] == "unit"
            assert set(r["laari_scores"]) == set(taxonomy.laari_ids) and r["fit_verdict"]
        else:
            assert r["laari"] is None and r["laari_scores"] is None and r["model_version"] == "unit"
    c = result.manifest["counts"]
    assert (c["rows"], c["predicted"], c["errors"]) == (40, 37, 3)
    assert sum(c["laari"].values()) == 37
    assert not WorkDir(tmp_path / "out.jsonl").path.exists()


def test_output_formats_hold_the_same_rows(tmp_path, predictor, rows40):
    inp = write_rows(rows40, tmp_path / "register.csv")
    rows = {}
    for ext in ("jsonl", "csv", "parquet"):
        run(inp, tmp_path / f"out.{ext}", predictor)
        rows[ext] = list(iter_output(tmp_path / f"out.{ext}"))
    assert rows["jsonl"] == rows["csv"] == rows["parquet"]
    header = (tmp_path / "out.csv").read_text(encoding="utf-8").splitlines()[0]
    assert header.split(",") == list(ROW_FIELDS)
    import pyarrow.parquet as pq

    t = pq.read_table(tmp_path / "out.parquet")
    assert t.schema.names == list(ROW_FIELDS) and t.num_rows == 40
    assert str(t.schema.field("laari_scores").type).startswith("map<string, double")


def test_predict_input_is_the_batch_run_with_sentences(tmp_path, monkeypatch, trained_bundle, corpus_train):
    """`laari predict --input F --output A` and `laari batch F B --explain-sentences` are one pipeline: every row
    has the same fields and values (an error row included)."""
    from typer.testing import CliRunner

    from batch import cli as batch_cli
    from laari.cli import app

    monkeypatch.setattr(batch_cli, "_factory", lambda model, device=None: HashingFactory(str(trained_bundle.path)))
    clean = register_rows(corpus_train, 12, with_errors=False)
    clean[3]["description"] = ""  # an error row in both
    inp = write_rows(clean, tmp_path / "in.jsonl")
    runner = CliRunner()
    res = runner.invoke(app, ["predict", "--input", str(inp), "--output", str(tmp_path / "predict.jsonl")])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["batch", str(inp), str(tmp_path / "batch.jsonl"), "--explain-sentences", "-q"])
    assert res.exit_code == 0, res.output
    theirs = list(iter_output(tmp_path / "predict.jsonl"))
    ours = list(iter_output(tmp_path / "batch.jsonl"))
    assert len(theirs) == len(ours) == 12
    assert theirs == ours
    assert theirs[3]["error"] and all(r["error"] is None for i, r in enumerate(theirs) if i != 3)
    assert all(r["explanation"]["sentences"] for i, r in enumerate(theirs) if i != 3)


def test_unreadable_rows_become_error_rows_with_their_ids(tmp_path, predictor, rows40):
    good = [r for r in rows40[:10] if r["id"]][:6]
    # CSV: a line that is not UTF-8, a line with too many fields, a quoted multi-line description
    lines = ["id,title,description"]
    for r in good[:2]:
        lines.append(f"{r['id']},x,\"{r['description']}\"")
    body = "\n".join(lines).encode("utf-8") + b"\nBAD-1,x,Hankkeessa kehitet\xe4\xe4n ty\xf6hyvinvointia.\n"
    body += "EXTRA-1,x,text,one too many\n".encode()
    body += 'ML-1,x,"Ensimmäinen rivi.\nToinen ""lainattu"" rivi."\n'.encode()
    (tmp_path / "bad.csv").write_bytes(body)
    run(tmp_path / "bad.csv", tmp_path / "out.jsonl", predictor)
    out = list(iter_output(tmp_path / "out.jsonl"))
    assert [r["id"] for r in out] == [good[0]["id"], good[1]["id"], "BAD-1", "EXTRA-1", "ML-1"]
    assert [r["row"] for r in out] == [1, 2, 3, 4, 5]
    assert out[2]["error"].startswith("encoding: not UTF-8")
    assert out[3]["error"].startswith("line: 4 fields")
    assert out[4]["error"] is None and out[0]["error"] is None
    # JSONL: invalid JSON, not an object, not UTF-8 (the id is still recovered)
    jl = (json.dumps(good[0], ensure_ascii=False) + "\n{not json\n[1, 2]\n").encode()
    jl += b'{"id": "BAD-2", "description": "ty\xf6hyvinvointi"}\n'
    jl += (json.dumps(good[1], ensure_ascii=False) + "\n").encode()
    (tmp_path / "bad.jsonl").write_bytes(jl)
    run(tmp_path / "bad.jsonl", tmp_path / "out2.jsonl", predictor)
    out = list(iter_output(tmp_path / "out2.jsonl"))
    assert [r["row"] for r in out] == [1, 2, 3, 4, 5]
    assert out[1]["error"].startswith("line: invalid JSON") and out[2]["error"].startswith("line: expected")
    assert out[3]["id"] == "BAD-2" and out[3]["error"].startswith("encoding: not UTF-8")
    assert out[0]["error"] is None and out[4]["error"] is None


def test_missing_text_column_is_refused_and_other_column_names_work(tmp_path, predictor, rows40):
    renamed = [{"tunnus": r["id"], "nimi": r["title"], "kuvaus": r["description"]} for r in rows40[:10]]
    inp = tmp_path / "in.jsonl"
    inp.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in renamed), encoding="utf-8")
    with pytest.raises(DataError, match="no column 'id', 'description'.*kuvaus"):
        run(inp, tmp_path / "out.jsonl", predictor)
    assert not WorkDir(tmp_path / "out.jsonl").path.exists() and not (tmp_path / "out.jsonl").exists()
    settings = BatchSettings(columns=Columns(id="tunnus", title="nimi", description="kuvaus"), chunk_size=4)
    run(inp, tmp_path / "out.jsonl", predictor, settings=settings)
    out = list(iter_output(tmp_path / "out.jsonl"))
    assert [r["id"] for r in out] == [r["tunnus"] or None for r in renamed]


def test_interrupted_run_resumes_without_loss_or_duplicates(tmp_path, predictor, rows40):
    inp = write_rows(rows40, tmp_path / "in.csv")
    run(inp, tmp_path / "clean.jsonl", predictor, chunk_size=6)
    out = tmp_path / "out.jsonl"
    with pytest.raises(Stop):
        run(inp, out, predictor, chunk_size=6, after_chunk=stop_after(2))
    assert not out.exists()
    work = WorkDir(out)
    assert len(work.load()["chunks"]) == 3
    with pytest.raises(BatchError, match="unfinished run.*18 rows done.*--resume"):
        run(inp, out, predictor, chunk_size=6)
    with pytest.raises(BatchError, match="chunk_size"):
        run(inp, out, predictor, chunk_size=5, resume=True)
    result = run(inp, out, predictor, chunk_size=6, resume=True)
    clean = (tmp_path / "clean.jsonl").read_text(encoding="utf-8")
    assert out.read_text(encoding="utf-8") == clean
    runs = result.manifest["runs"]
    assert len(runs) == 2 and runs[1]["resumed_after_rows"] == 18 and runs[1]["rows"] == 22
    assert result.manifest["resumed"] is True
    assert not work.path.exists()


def test_unrecorded_part_is_recomputed(tmp_path, predictor, rows40):
    """A part written but not recorded (killed between the two renames) is discarded, not counted twice."""
    inp = write_rows(rows40, tmp_path / "in.jsonl")
    out = tmp_path / "out.jsonl"
    with pytest.raises(Stop):
        run(inp, out, predictor, after_chunk=stop_after(1))
    work = WorkDir(out)
    work.write_part_bytes(2, jsonl_bytes([{"row": 999, "bogus": True}]))  # as if chunk 2 finished but was not recorded yet
    (work.path / ".part-000003.jsonl.x.tmp").write_text("half")
    with open(work.journal_path, "a") as f:
        f.write('{"chunk": {"index": 2, "ro')  # killed in the middle of appending its record
    assert len(work.load()["chunks"]) == 2
    run(inp, out, predictor, resume=True)
    rows = list(iter_output(out))
    assert [r["row"] for r in rows] == list(range(1, 41))


def test_failed_run_leaves_the_old_output_in_place(tmp_path, predictor, rows40):
    inp = write_rows(rows40, tmp_path / "in.jsonl")
    out = tmp_path / "out.csv"
    out.write_text("old,output\n1,2\n")
    before = set(os.listdir(tmp_path))
    with pytest.raises(Stop):
        run(inp, out, predictor, after_chunk=stop_after(3))
    assert out.read_text() == "old,output\n1,2\n"
    assert set(os.listdir(tmp_path)) - before == {"out.csv.partial"}
    run(inp, out, predictor, restart=True)
    assert len(list(iter_output(out))) == 40


def test_resume_refuses_a_changed_input(tmp_path, predictor, rows40):
    inp = write_rows(rows40, tmp_path / "in.jsonl")
    out = tmp_path / "out.jsonl"
    with pytest.raises(Stop):
        run(inp, out, predictor, after_chunk=stop_after(0))
    write_rows(rows40[:-1], inp)
    with pytest.raises(BatchError, match="input file changed"):
        run(inp, out, predictor, resume=True)
    run(inp, out, predictor, restart=True)
    assert len(list(iter_output(out))) == 39


def test_a_second_run_on_the_same_output_is_refused(tmp_path, predictor, rows40):
    inp = write_rows(rows40, tmp_path / "in.jsonl")
    holder = WorkDir(tmp_path / "out.jsonl")
    holder.lock()
    try:
        with pytest.raises(BatchError, match="another batch"):
            run(inp, tmp_path / "out.jsonl", predictor)
    finally:
        holder.unlock()


@pytest.mark.parametrize("workers", [1, 2])
def test_kill_9_then_resume(tmp_path, trained_bundle, corpus_train, workers):
    import psutil

    rows = register_rows(corpus_train, 48)
    inp = write_rows(rows, tmp_path / "in.csv")
    out = tmp_path / "out.jsonl"
    cmd = [sys.executable, "-m", "tests.batch_fixtures", "run", str(inp), str(out), str(trained_bundle.path),
           "--delay", "0.2", "--chunk-size", "4", "--workers", str(workers)]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    children = []
    try:
        deadline = time.time() + 120
        for line in proc.stdout:
            if line.startswith("chunk 3 recorded") or time.time() > deadline:
                break
        children = psutil.Process(proc.pid).children(recursive=True)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    assert len(children) == (workers if workers > 1 else 0)
    _, alive = psutil.wait_procs(children, timeout=30)  # workers notice their parent is gone and stop
    assert not alive
    assert not out.exists()
    done = len(WorkDir(out).load()["chunks"])
    assert 4 <= done < 12
    fresh = Predictor(load_bundle(trained_bundle.path), HashingEmbedder())
    run(inp, out, fresh, chunk_size=4, resume=True)
    got = list(iter_output(out))
    assert [r["row"] for r in got] == list(range(1, 49))
    assert len({r["id"] for r in got if r["id"]}) == 46  # one duplicate id, one missing id
    run(inp, tmp_path / "clean.jsonl", fresh, chunk_size=4)
    assert out.read_text(encoding="utf-8") == (tmp_path / "clean.jsonl").read_text(encoding="utf-8")
    m = json.loads(manifest_path(out).read_text())
    assert m["runs"][1]["resumed_after_rows"] == 4 * done


def test_manifest_records_model_input_counts_times_settings(tmp_path, predictor, rows40, trained_bundle):
    inp = write_rows(rows40, tmp_path / "in.xlsx")
    result = run(inp, tmp_path / "out.parquet", predictor, explain="none")
    m = json.loads(manifest_path(tmp_path / "out.parquet").read_text())
    assert m == json.loads(json.dumps(result.manifest))
    assert m["model"]["version"] == "unit" and m["model"]["bundle_hash"] == trained_bundle.manifest["bundle_hash"]
    assert m["input"]["sha256"] == file_hash(inp) and m["input"]["format"] == "excel"
    assert m["output"]["sha256"] == file_hash(tmp_path / "out.parquet") and m["output"]["rows"] == 40
    assert m["counts"]["errors"] == 3 and m["counts"]["error_reasons"]["id: duplicate id …"] == 1
    assert m["settings"]["explain"] == "none" and m["settings"]["chunk_size"] == 8
    assert m["settings"]["columns"] == {"id": "id", "title": "title", "description": "description"}
    assert m["started"] <= m["finished"] and m["runs"][0]["engine"] == "local"


def test_explain_modes(tmp_path, predictor, rows40):
    inp = write_rows(rows40[:8], tmp_path / "in.jsonl")
    got = {}
    for mode in ("none", "fast", "full"):
        run(inp, tmp_path / f"{mode}.jsonl", predictor, explain=mode)
        got[mode] = [r for r in iter_output(tmp_path / f"{mode}.jsonl") if r["error"] is None][0]["explanation"]
    assert "terms" not in got["none"] and "similar" not in got["none"] and "fit" in got["none"]
    assert got["fast"]["terms"] and got["fast"]["similar"] and "sentences" not in got["fast"]
    assert got["full"]["sentences"] and got["full"]["terms"] == got["fast"]["terms"]
    assert "_sentences" not in vars(predictor)  # the fast path leaves the predictor as it was


def test_one_failing_row_becomes_an_error_row(tmp_path, trained_bundle, rows40):
    p = Predictor(load_bundle(trained_bundle.path), HashingEmbedder())
    original = p.predict_many

    def fragile(items, explain=True, sentences=True, remember=True):
        if any("POISON" in it.description for it in items):
            raise RuntimeError("tokenizer exploded")
        return original(items, explain=explain, sentences=sentences, remember=remember)

    p.predict_many = fragile
    rows = [dict(r) for r in rows40[:10]]
    rows[8]["description"] += " POISON"
    inp = write_rows(rows, tmp_path / "in.jsonl")
    run(inp, tmp_path / "out.jsonl", p)
    out = list(iter_output(tmp_path / "out.jsonl"))
    assert len(out) == 10
    assert out[8]["error"] == "internal: RuntimeError: tokenizer exploded"
    assert all(r["error"] is None for i, r in enumerate(out) if i not in (2, 4, 6, 8))
    for r in rows:
        r["description"] += " POISON"
    write_rows(rows, inp)
    with pytest.raises(RuntimeError, match="exploded"):  # every row fails: a broken model, not bad rows
        run(inp, tmp_path / "out2.jsonl", p, restart=True)


def test_compare_reports_moves_tags_and_fit(tmp_path, predictor, rows40):
    inp = write_rows(rows40, tmp_path / "in.jsonl")
    prev = tmp_path / "prev.jsonl"
    run(inp, prev, predictor)
    rows = list(iter_output(prev))
    ok = [r for r in rows if r["error"] is None]
    a, b, c, d = ok[0], ok[1], ok[2], ok[3]
    other = next(lab for lab in ("tyokyky", "osaaminen") if lab != a["laari"])
    a["laari"] = other
    b["tags"] = list(b["tags"]) + ["johtaminen"] if "johtaminen" not in b["tags"] else b["tags"][:-1]
    c["fit_verdict"] = "outlier" if c["fit_verdict"] != "outlier" else "typical"
    rows.remove(d)
    rows.append({**ok[4], "id": "GONE-1", "row": 99})
    prev.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    result = run(inp, tmp_path / "new.csv", predictor, compare_to=prev)
    cmp = compare_outputs(prev, tmp_path / "new.csv")
    assert cmp["summary"]["moved"] == 1 and cmp["moved"][0]["ids"] == [a["id"]]
    assert cmp["moved"][0]["from"] == other
    changed = cmp["tags"]["added"] + cmp["tags"]["removed"]
    assert [x["ids"] for x in changed] == [[b["id"]]]
    assert [x["ids"] for x in cmp["fit_verdicts"]] == [[c["id"]]]
    assert cmp["only_in_current"] == [d["id"]] and cmp["only_in_previous"] == ["GONE-1"]
    assert cmp["summary"]["compared"] == 36 and cmp["summary"]["unchanged"] == 33
    paths = result.compare["paths"]
    assert set(paths) == {"json", "markdown", "html", "png", "xlsx"}
    assert a["id"] in Path(paths["html"]).read_text(encoding="utf-8")
    assert Path(paths["png"]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert json.loads(Path(paths["json"]).read_text())["summary"] == cmp["summary"]


def test_cli_batch(tmp_path, monkeypatch, trained_bundle, rows40):
    import typer
    from typer.testing import CliRunner

    from batch import cli as batch_cli

    monkeypatch.setattr(batch_cli, "_factory", lambda model, device=None: HashingFactory(str(trained_bundle.path)))
    app = typer.Typer()
    batch_cli.register(app)
    inp = write_rows(rows40, tmp_path / "in.xlsx")
    runner = CliRunner()
    res = runner.invoke(app, ["batch", str(inp), str(tmp_path / "a.parquet"), "--chunk-size", "16", "--json"])
    assert res.exit_code == 0, res.output
    m = json.loads(res.stdout[res.stdout.index("{"):])
    assert m["counts"]["rows"] == 40 and m["settings"]["explain"] == "fast"
    res = runner.invoke(app, ["batch", str(inp), str(tmp_path / "b.jsonl"), "--no-explain", "-q",
                              "--compare-to", str(tmp_path / "a.parquet")])
    assert res.exit_code == 0, res.output
    assert "0 of 37 moved" in " ".join(res.stdout.split()) and (tmp_path / "b.compare.html").exists()
    res = runner.invoke(app, ["batch", str(inp), str(tmp_path / "c.xls")])
    assert res.exit_code == 1 and "unknown output type" in " ".join(res.output.split())
    res = runner.invoke(app, ["batch", str(inp), str(tmp_path / "d.jsonl"), "--text-col", "kuvaus", "-q"])
    assert res.exit_code == 1 and "no column 'kuvaus'" in " ".join(res.output.split())


class _DeviceHashing(HashingEmbedder):
    """The hashing embedder saying where it runs, under the id of the engine it poses as."""

    def __init__(self, device, id=HashingEmbedder.id):
        super().__init__()
        self.device, self.id = device, id


def test_manifest_records_the_device_and_embedder_id(tmp_path, trained_bundle, predictor, rows40):
    from classifier.embedders.backends import torch_cuda_id

    bundle = load_bundle(trained_bundle.path)
    on_gpu = Predictor(bundle, _DeviceHashing("cuda", torch_cuda_id(HashingEmbedder.id)))
    on_cpu = Predictor(bundle, _DeviceHashing("cpu"))
    inp = write_rows(rows40[:24], tmp_path / "in.jsonl")
    result = run(inp, tmp_path / "gpu.jsonl", on_gpu)
    expected = {"devices": ["cuda"], "embedder_ids": ["test-hashing-256+torch-cuda-fp16"]}
    assert result.manifest["embedding"] == expected
    assert json.loads(manifest_path(tmp_path / "gpu.jsonl").read_text())["embedding"] == expected
    with pytest.raises(Stop):  # begun on the GPU, finished on the CPU: both are recorded
        run(inp, tmp_path / "mixed.jsonl", on_gpu, after_chunk=stop_after(0))
    said = []
    result = run(inp, tmp_path / "mixed.jsonl", on_cpu, resume=True, log=said.append)
    assert any("embedded by test-hashing-256+torch-cuda-fp16; the rest by test-hashing-256" in m for m in said)
    assert result.manifest["embedding"] == {"devices": ["cpu", "cuda"],
                                            "embedder_ids": ["test-hashing-256", "test-hashing-256+torch-cuda-fp16"]}
    result = run(inp, tmp_path / "unsaid.jsonl", predictor)  # an embedder that does not say where it runs
    assert result.manifest["embedding"] == {"devices": [], "embedder_ids": ["test-hashing-256"]}


def test_cli_device_is_checked_before_the_input_is_read(tmp_path, monkeypatch, trained_bundle, rows40):
    import torch
    import typer
    from typer.testing import CliRunner

    from batch import cli as batch_cli
    from classifier.devices import Device

    asked = []

    def factory(model, device=None):
        asked.append(device)
        return HashingFactory(str(trained_bundle.path))

    monkeypatch.setattr(batch_cli, "_factory", factory)
    monkeypatch.delenv("LAARI_EMBED_BACKEND", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    app = typer.Typer()
    batch_cli.register(app)
    runner = CliRunner()
    missing = str(tmp_path / "missing.jsonl")
    for args in (["batch", missing, str(tmp_path / "out.jsonl")], ["predict", "--input", missing, "--output",
                                                                      str(tmp_path / "out.jsonl")]):
        res = runner.invoke(app, [*args, "--device", "cuda"])
        text = " ".join(res.output.split())
        assert res.exit_code == 1, res.output
        assert len(res.output.strip().splitlines()) == 1  # one line, whatever the terminal's width
        assert "device cuda: torch sees no CUDA device" in text and "use --device cpu" in text
        assert "missing" not in text and asked == []  # refused before the model or the input was touched
    monkeypatch.setenv("LAARI_EMBED_BACKEND", "onnx")
    res = runner.invoke(app, ["batch", missing, str(tmp_path / "out.jsonl"), "--device", "cuda"])
    assert res.exit_code == 1 and "onnx embedding backend (LAARI_EMBED_BACKEND=onnx) runs on the CPU only" in \
        " ".join(res.output.split())
    monkeypatch.delenv("LAARI_EMBED_BACKEND")
    res = runner.invoke(app, ["batch", missing, str(tmp_path / "out.jsonl"), "--device", "gpu"])
    assert res.exit_code == 2 and asked == []  # not a device: typer's usage error

    inp = write_rows(rows40[:8], tmp_path / "in.jsonl")
    res = runner.invoke(app, ["batch", str(inp), str(tmp_path / "a.jsonl"), "-q"])
    assert res.exit_code == 0, res.output
    assert asked == [Device.CPU]  # auto, without CUDA
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    res = runner.invoke(app, ["batch", str(inp), str(tmp_path / "b.jsonl"), "-q", "--device", "CUDA"])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["batch", str(inp), str(tmp_path / "c.jsonl"), "-q"])
    assert res.exit_code == 0, res.output
    assert asked == [Device.CPU, Device.CUDA, Device.CUDA]  # cuda as asked; auto takes the (patched) GPU


def test_worker_processes_give_the_in_process_output(tmp_path, predictor, rows40):
    inp = write_rows(rows40, tmp_path / "in.csv")
    run(inp, tmp_path / "local.jsonl", predictor, chunk_size=4)
    out = tmp_path / "workers.jsonl"
    with pytest.raises(Stop):  # interrupted with workers running, resumed with workers
        run(inp, out, predictor, chunk_size=4, engine=LocalEngine(predictor, workers=2), after_chunk=stop_after(3))
    result = run(inp, out, predictor, chunk_size=4, engine=LocalEngine(predictor, workers=2), resume=True)
    assert out.read_text(encoding="utf-8") == (tmp_path / "local.jsonl").read_text(encoding="utf-8")
    assert result.manifest["counts"]["rows"] == 40 and result.manifest["runs"][1]["resumed_after_rows"] == 16
    with pytest.raises(BatchError, match="workers"):
        LocalEngine(predictor, workers=0)


def test_ray_engine_gives_the_local_output(tmp_path, trained_bundle, rows40):
    pytest.importorskip("ray")
    from batch.ray_engine import RayEngine

    inp = write_rows(rows40, tmp_path / "in.xlsx")
    factory = HashingFactory(str(trained_bundle.path))
    local = factory()
    run(inp, tmp_path / "local.jsonl", local, chunk_size=8)
    engine = RayEngine(factory, num_cpus=2, workers=1, batch_size=16)
    try:
        with pytest.raises(Stop):  # interrupted after 2 chunks on the local engine, finished on Ray
            run(inp, tmp_path / "ray.jsonl", local, chunk_size=8, after_chunk=stop_after(1))
        result = run(inp, tmp_path / "ray.jsonl", local, chunk_size=8, engine=engine, resume=True)
    finally:
        engine.close()
    assert (tmp_path / "ray.jsonl").read_text(encoding="utf-8") == (tmp_path / "local.jsonl").read_text(encoding="utf-8")
    assert [r["engine"] for r in result.manifest["runs"]] == ["local", "ray"]


def test_windows_1252_semicolon_csv_from_excel_runs_without_flags(tmp_path, predictor, rows40):
    """Finnish Excel's "CSV (semicolon separated)" is Windows-1252: every row is read, the summary says how."""
    import csv
    import io

    good = list({r["id"]: r for r in rows40 if r["id"] and r["description"].strip()}.values())[:4]
    buf = io.StringIO()
    w = csv.writer(buf, delimiter=";", lineterminator="\r\n")
    w.writerow(["id", "title", "description"])
    for r in good:
        w.writerow([r["id"], "Työhyvinvointi ja jaksaminen", r["description"]])
    (tmp_path / "excel.csv").write_bytes(buf.getvalue().encode("cp1252", "replace"))
    result = run(tmp_path / "excel.csv", tmp_path / "out.jsonl", predictor)
    out = list(iter_output(tmp_path / "out.jsonl"))
    assert [r["id"] for r in out] == [r["id"] for r in good]
    assert all(r["error"] is None for r in out), [r["error"] for r in out]
    assert result.manifest["input"]["encoding"] == "cp1252" and result.manifest["input"]["delimiter"] == ";"


def test_encoding_detection():
    from classifier.tables import detect_encoding

    assert detect_encoding("työ;ääni\n".encode("utf-8")) == "utf-8"
    assert detect_encoding(codecs.BOM_UTF8 + "työ".encode("utf-8")) == "utf-8-sig"
    assert detect_encoding("työ;ääni\n".encode("cp1252")) == "cp1252"
    # a UTF-8 file with one bad line stays UTF-8, so that the bad line is reported on its own
    assert detect_encoding("työ\n".encode("utf-8") + b"ty\xf6\n") == "utf-8"
    assert detect_encoding("abc työ".encode("utf-8")[:-1]) == "utf-8"  # a sample that cuts a character


def test_a_quote_left_open_gives_error_rows_not_fewer_rows(tmp_path, predictor, rows40):
    """20 records, one with a quote that is never closed: 20 output rows; the broken record and the records it
    swallowed are error rows naming the file lines; the rest are classified."""
    good = list({r["id"]: r for r in rows40 if r["id"] and r["description"].strip()}.values())[:20]
    lines = ["id,title,description"]
    for i, r in enumerate(good):
        description = r["description"].replace('"', "").replace("\n", " ")
        title = '"Avoin lainaus' if i == 5 else "Otsikko"  # the quote opened here closes nowhere ...
        lines.append(f'{r["id"]},{title},"{description}"' if i != 5 else f'{r["id"]},{title},{description}')
    (tmp_path / "broken.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    run(tmp_path / "broken.csv", tmp_path / "out.jsonl", predictor)
    out = list(iter_output(tmp_path / "out.jsonl"))
    assert len(out) == 20
    errors = [r for r in out if r["error"]]
    assert errors and "not closed" in errors[0]["error"] and "file line 7" in errors[0]["error"]
    assert all("quote" in r["error"] for r in errors)
    assert [r["id"] for r in out] == [r["id"] for r in good]


def test_paragraphs_inside_a_quoted_description_are_not_mistaken_for_records(tmp_path):
    from classifier.tables import iter_rows

    p = tmp_path / "ok.csv"
    p.write_text('id,title,description\nS20001,Eka,"Ensimmäinen kappale, jossa pilkku.\n\nToinen kappale, 2020, '
                 'ja kolmas rivi"\nS20002,Toka,Kuvaus\n', encoding="utf-8")
    rows = list(iter_rows(p))
    assert [(n, rec["id"], err) for n, rec, err in rows] == [(1, "S20001", None), (2, "S20002", None)]


def test_a_remote_ray_cluster_gets_the_asked_device_and_the_driver_stays_on_the_cpu(tmp_path, monkeypatch,
                                                                                   trained_bundle, rows40):
    """--device cuda with --ray-address: the workers on the cluster resolve it on their GPUs; the driver, which may
    have none, loads the model on the CPU instead of failing."""
    import torch
    import typer
    from typer.testing import CliRunner

    from batch import cli as batch_cli
    from batch import ray_engine
    from classifier.devices import Device
    from classifier.tables import DataError

    calls, engines = [], []

    class Recording(HashingFactory):
        def __call__(self, device=None):
            calls.append(device)
            return super().__call__(device)

    class FakeRay:
        def __init__(self, factory, **kw):
            engines.append(kw["device"])
            raise DataError("stop before connecting")

    monkeypatch.setattr(batch_cli, "_factory", lambda model, device=None: Recording(str(trained_bundle.path)))
    monkeypatch.setattr(ray_engine, "RayEngine", FakeRay)
    monkeypatch.delenv("LAARI_EMBED_BACKEND", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    app = typer.Typer()
    batch_cli.register(app)
    inp = write_rows(rows40[:4], tmp_path / "in.jsonl")
    res = CliRunner().invoke(app, ["batch", str(inp), str(tmp_path / "out.jsonl"), "--engine", "ray",
                                   "--ray-address", "ray://cluster:10001", "--device", "cuda", "-q"])
    assert res.exit_code == 1 and "stop before connecting" in res.output, res.output
    assert calls == [Device.CPU] and engines == [Device.CUDA]
