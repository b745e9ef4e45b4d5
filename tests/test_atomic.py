"""One atomic write: the new content or the old file, never a part; the file named in an error; permissions by
the umask."""

from __future__ import annotations

import errno
import os

import pytest

from classifier import atomic
from classifier.atomic import atomic_file, atomic_write_bytes, atomic_write_json


@pytest.fixture()
def umask_027():
    old = os.umask(0o027)
    yield
    os.umask(old)


def test_new_files_follow_the_umask(tmp_path, umask_027):
    atomic_write_json(tmp_path / "a.json", {"x": 1})
    assert (tmp_path / "a.json").stat().st_mode & 0o777 == 0o640
    os.umask(0o002)
    atomic_write_bytes(tmp_path / "b.bin", b"x")
    assert (tmp_path / "b.bin").stat().st_mode & 0o777 == 0o664


def test_a_failed_write_keeps_the_old_file_and_names_it(tmp_path, monkeypatch):
    target = tmp_path / "out.jsonl"
    target.write_bytes(b"old\n")

    def full_disk(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(atomic.os, "fsync", full_disk)
    with pytest.raises(OSError, match=r"out\.jsonl: cannot write: No space left on device") as err:
        atomic_write_bytes(target, b"new\n")
    assert err.value.errno == errno.ENOSPC
    assert target.read_bytes() == b"old\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.jsonl"]  # no temporary file left


def test_an_error_inside_the_block_keeps_the_old_file(tmp_path):
    target = tmp_path / "t.txt"
    target.write_text("old")
    with pytest.raises(ValueError):
        with atomic_file(target) as f:
            f.write(b"half")
            raise ValueError("stop")
    assert target.read_text() == "old" and len(list(tmp_path.iterdir())) == 1


def test_a_folder_is_replaced_whole(tmp_path):
    from classifier.atomic import replace_folder

    target = tmp_path / "malli"
    target.mkdir()
    (target / "vanha.txt").write_text("vanha")
    staging = tmp_path / ".malli.new"
    staging.mkdir()
    (staging / "uusi.txt").write_text("uusi")
    replace_folder(staging, target)
    assert sorted(p.name for p in target.iterdir()) == ["uusi.txt"]
    assert not staging.exists() and not (tmp_path / ".malli.old").exists()
    fresh = tmp_path / ".toinen.new"
    fresh.mkdir()
    replace_folder(fresh, tmp_path / "toinen")  # no folder there before
    assert (tmp_path / "toinen").is_dir()
