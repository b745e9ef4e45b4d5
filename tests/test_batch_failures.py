"""Batch runs when something goes wrong: an input that is not what its name says, a failed write (named, the old
output kept, resumable from the last finished chunk), and output files that follow the umask."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from batch import workdir as workdir_module
from batch.run import run_batch
from batch.settings import BatchSettings
from classifier import atomic
from classifier.bundle import load_bundle
from classifier.predictor import Predictor
from classifier.tables import DataError
from tests.batch_fixtures import HashingFactory, register_rows, write_rows
from tests.conftest import HashingEmbedder


@pytest.fixture()
def predictor(trained_bundle):
    return Predictor(load_bundle(trained_bundle.path), HashingEmbedder())


@pytest.fixture()
def rows24(corpus_train):
    return register_rows(corpus_train, 24)


def run(inp, out, predictor, **kw):
    return run_batch(inp, out, predictor=predictor, settings=BatchSettings(chunk_size=8), **kw)


def cli(monkeypatch, trained_bundle, *args):
    import typer
    from typer.testing import CliRunner

    from batch import cli as batch_cli

    monkeypatch.setattr(batch_cli, "_factory", lambda model, device=None: HashingFactory(str(trained_bundle.path)))
    app = typer.Typer()
    batch_cli.register(app)
    return CliRunner().invoke(app, ["batch", *map(str, args)])


@pytest.mark.parametrize("name", ["register.xlsx", "register.parquet"])
def test_a_text_file_with_a_table_name_is_a_clear_error(tmp_path, monkeypatch, trained_bundle, name):
    inp = tmp_path / name
    inp.write_text("id,description\n1,Työhyvinvointia kotihoitoon\n", encoding="utf-8")
    res = cli(monkeypatch, trained_bundle, inp, tmp_path / "out.jsonl", "-q")
    text = " ".join(res.output.split())
    assert res.exit_code == 1, res.output
    assert f"{name}: not a readable" in text and "Traceback" not in text
    assert isinstance(res.exception, SystemExit)  # the command's own exit, not an exception
    assert not (tmp_path / "out.jsonl").exists() and not (tmp_path / "out.jsonl.partial").exists()


def test_reading_a_bad_workbook_names_the_file(tmp_path, predictor):
    inp = tmp_path / "register.xlsx"
    inp.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(DataError, match=r"register\.xlsx: not a readable Excel"):
        run(inp, tmp_path / "out.jsonl", predictor)


def _fail_writes_to(monkeypatch, module, name_part: str, after: int = 0):
    """Let ``after`` atomic writes (in ``module``) to files whose name contains ``name_part`` succeed, then fail
    the rest as on a full disk."""
    real = module.atomic_write_bytes
    seen = []

    def failing(path, data):
        if name_part in Path(path).name:
            seen.append(path)
            if len(seen) > after:
                raise OSError(errno.ENOSPC, f"{path}: cannot write: No space left on device")
        return real(path, data)

    monkeypatch.setattr(module, "atomic_write_bytes", failing)


def test_a_failed_part_write_names_the_file_and_resume_continues_after_the_last_chunk(tmp_path, monkeypatch,
                                                                                       predictor, rows24):
    inp = write_rows(rows24, tmp_path / "in.jsonl")
    run(inp, tmp_path / "clean.jsonl", predictor)
    out = tmp_path / "out.jsonl"
    with monkeypatch.context() as m:
        _fail_writes_to(m, workdir_module, "part-", after=2)  # chunks 0 and 1 are written, chunk 2 fails
        with pytest.raises(OSError, match=r"part-000002\.jsonl: cannot write: No space left"):
            run(inp, out, predictor)
    assert not out.exists() and (tmp_path / "out.jsonl.partial" / "state.json").exists()
    result = run(inp, out, predictor, resume=True)
    assert result.manifest["runs"][-1]["resumed_after_rows"] == 16
    assert out.read_bytes() == (tmp_path / "clean.jsonl").read_bytes()


def test_a_failed_output_write_keeps_the_old_output_and_resume_finishes_it(tmp_path, monkeypatch, predictor,
                                                                          rows24):
    inp = write_rows(rows24, tmp_path / "in.csv")
    out = tmp_path / "out.parquet"
    run(inp, out, predictor)
    old = out.read_bytes()
    real_replace = os.replace

    def full_disk(src, dst):
        if Path(dst) == out:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_replace(src, dst)

    with monkeypatch.context() as m:
        m.setattr(atomic.os, "replace", full_disk)
        with pytest.raises(OSError, match=r"out\.parquet: cannot write: No space left on device"):
            run(inp, out, predictor)
    assert out.read_bytes() == old  # the old output, untouched
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    result = run(inp, out, predictor, resume=True)  # every chunk was finished: only the output is written
    assert result.manifest["runs"][-1]["resumed_after_rows"] == 24 and result.manifest["counts"]["rows"] == 24


def test_the_cli_names_the_file_on_a_write_error(tmp_path, monkeypatch, trained_bundle, rows24):
    inp = write_rows(rows24, tmp_path / "in.jsonl")
    real_replace = os.replace
    out = tmp_path / "out.jsonl"

    def full_disk(src, dst):
        if Path(dst) == out:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_replace(src, dst)

    monkeypatch.setattr(atomic.os, "replace", full_disk)
    res = cli(monkeypatch, trained_bundle, inp, out, "-q")
    text = " ".join(res.output.split())
    assert res.exit_code == 1 and "out.jsonl: cannot write: No space left on device" in text, res.output
    assert "--resume" in text


def test_outputs_follow_the_umask(tmp_path, predictor, rows24):
    inp = write_rows(rows24, tmp_path / "in.jsonl")
    old = os.umask(0o027)
    try:
        run(inp, tmp_path / "a.jsonl", predictor)
        result = run(inp, tmp_path / "b.csv", predictor, compare_to=tmp_path / "a.jsonl")
    finally:
        os.umask(old)
    files = [tmp_path / "a.jsonl", tmp_path / "b.csv", Path(result.manifest_path),
             *map(Path, result.compare["paths"].values())]
    assert {f.name: f.stat().st_mode & 0o777 for f in files} == {f.name: 0o640 for f in files}
