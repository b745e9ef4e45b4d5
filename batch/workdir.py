"""The work folder of a run (``OUT.partial/``): the run's header, the journal of finished chunks, the parts and
the lock that keeps a second run out. What makes a killed run resumable."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from filelock import FileLock, Timeout

from classifier.atomic import atomic_write_bytes, atomic_write_json

from .settings import BatchError

STATE_FORMAT = 1


class WorkDir:
    """``OUT.partial/``: ``state.json`` (the run's input, model and settings), ``journal.jsonl`` (one record per
    finished chunk), ``part-NNNNNN.jsonl`` (the rows of each finished chunk) and a lock file."""

    def __init__(self, output: Path):
        self.path = output.with_name(output.name + ".partial")
        self.state_path = self.path / "state.json"
        self.journal_path = self.path / "journal.jsonl"
        self._lock: FileLock | None = None

    def exists(self) -> bool:
        return self.state_path.exists()

    def lock(self):
        """Keep a second run out while this one writes (``filelock``: flock on Unix, LockFileEx on Windows; the
        lock dies with the process, so a killed run leaves nothing to clear)."""
        self.path.mkdir(parents=True, exist_ok=True)
        lock = FileLock(self.path / "lock", timeout=0)
        try:
            lock.acquire()
        except Timeout:
            raise BatchError(f"another batch is writing {self.path.parent} (lock {self.path / 'lock'} is held)")
        self._lock = lock

    def unlock(self):
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    def load(self) -> dict | None:
        """The unfinished run: ``state.json`` (written once: input, model, settings) and the chunk and run records
        of ``journal.jsonl`` (appended and fsynced, one line per record: the file never grows by more than a line
        per chunk, whatever the size of the input). A last line torn by a kill is dropped."""
        if not self.state_path.exists():
            return None
        try:
            state = json.loads(self.state_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise BatchError(f"{self.state_path}: unreadable ({exc}); remove {self.path} or use --restart")
        if state.get("format") != STATE_FORMAT:
            raise BatchError(f"{self.state_path}: unknown state format {state.get('format')!r}; use --restart")
        state.update(chunks=[], runs=[], finalized=False)
        data = self.journal_path.read_bytes() if self.journal_path.exists() else b""
        complete, _, torn = data.rpartition(b"\n")
        if torn:  # killed while appending: drop the partial line
            with open(self.journal_path, "r+b") as f:
                f.truncate(len(complete) + 1 if complete else 0)
        for n, line in enumerate(complete.splitlines() if complete else [], 1):
            try:
                entry = json.loads(line)
            except ValueError:
                raise BatchError(f"{self.journal_path}: line {n} is damaged; use --restart")
            if "run" in entry:
                state["runs"].append({**entry["run"], "rows": 0})
            elif "chunk" in entry:
                c = entry["chunk"]
                if c["index"] != len(state["chunks"]):
                    raise BatchError(f"{self.journal_path}: chunk {c['index']} out of sequence; use --restart")
                state["chunks"].append(c)
                if state["runs"]:
                    run = state["runs"][-1]
                    run["rows"] += c["rows"]
                    run["seconds"] = c.get("run_seconds", run.get("seconds"))
            elif "run_end" in entry and state["runs"]:
                state["runs"][-1].update(entry["run_end"])
            elif "finalized" in entry:
                state["finalized"] = True
        return state

    def create(self, header: dict):
        atomic_write_json(self.state_path, header)
        atomic_write_bytes(self.journal_path, b"")

    def record(self, entry: dict):
        with open(self.journal_path, "ab") as f:
            f.write((json.dumps(entry, ensure_ascii=False) + "\n").encode("utf-8"))
            f.flush()
            os.fsync(f.fileno())

    def part(self, index: int) -> Path:
        return self.path / f"part-{index:06d}.jsonl"

    def write_part_bytes(self, index: int, data: bytes):
        atomic_write_bytes(self.part(index), data)

    def read_part(self, index: int) -> list[dict]:
        with open(self.part(index), encoding="utf-8") as f:
            return [json.loads(line) for line in f]

    def tidy(self, n_parts: int):
        """Remove what a killed run may have left beyond the recorded chunks: unrecorded parts, temporary files."""
        for p in self.path.iterdir():
            if p.name.endswith(".tmp"):
                p.unlink(missing_ok=True)
            elif p.name.startswith("part-") and p.suffix == ".jsonl":
                try:
                    index = int(p.stem.split("-")[1])
                except ValueError:
                    continue
                if index >= n_parts:
                    p.unlink(missing_ok=True)

    def clear(self):
        for p in self.path.iterdir():
            if p.name != "lock":
                p.unlink(missing_ok=True) if p.is_file() else shutil.rmtree(p, ignore_errors=True)

    def remove(self):
        self.unlock()
        shutil.rmtree(self.path, ignore_errors=True)
