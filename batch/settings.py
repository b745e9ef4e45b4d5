"""What a batch run is asked to do, and the error for a run that cannot go as asked."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

from classifier.project_rows import Columns

EXPLAIN_MODES = ("none", "fast", "full")
DEFAULT_CHUNK_SIZE = 256


class BatchError(RuntimeError):
    """The batch cannot run as asked (settings, an unfinished run in the way, a resume that does not match)."""


@dataclass
class BatchSettings:
    columns: Columns = field(default_factory=Columns)
    chunk_size: int = DEFAULT_CHUNK_SIZE
    explain: str = "fast"

    def fingerprint(self) -> dict:
        return {"columns": asdict(self.columns), "chunk_size": self.chunk_size, "explain": self.explain}


@dataclass
class BatchResult:
    output: Path
    manifest_path: Path
    manifest: dict
    compare: dict | None = None  # paths of the comparison report, when asked
