"""The model registry: ``models/<version>/`` folders and ``models/current``, a one-line file naming the served one."""

from __future__ import annotations

import re
from pathlib import Path

from . import config
from .atomic import atomic_write_text
from .bundle import MANIFEST, BundleError, read_manifest, sign_bundle

CURRENT = "current"
VERSION_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


class Registry:
    def __init__(self, root: str | Path | None = None):
        self.root = Path(root) if root else config.models_dir()

    def path(self, version: str) -> Path:
        if not VERSION_PATTERN.match(version or ""):
            raise BundleError(f"invalid model version name {version!r}")
        return self.root / version

    def versions(self) -> list[str]:
        if not self.root.exists():
            return []
        return sorted(p.name for p in self.root.iterdir()
                      if p.is_dir() and not p.name.startswith(".") and (p / MANIFEST).exists())

    def list(self) -> list[dict]:
        current = self.current()
        rows = []
        for v in self.versions():
            try:
                m = read_manifest(self.root / v)
            except BundleError as exc:
                rows.append({"version": v, "error": str(exc), "current": v == current})
                continue
            rows.append({"version": v, "created": m.get("created"), "kind": m.get("kind"),
                         "channels": m.get("channel_choice"), "embedder": m.get("embedder_id"),
                         "bundle_hash": m.get("bundle_hash", "")[:12], "metrics": m.get("metrics", {}),
                         "current": v == current})
        return rows

    def current(self) -> str | None:
        f = self.root / CURRENT
        if not f.exists():
            return None
        value = f.read_text(encoding="utf-8").strip()
        return value or None

    def current_path(self) -> Path:
        version = self.current()
        if version is None:
            raise BundleError(f"no current model in {self.root}: train one (laari train) or promote one "
                              "(laari models promote VERSION)")
        return self.path(version)

    def promote(self, version: str) -> Path:
        path = self.path(version)
        if not (path / MANIFEST).exists():
            raise BundleError(f"no model version {version!r} in {self.root}; known: {self.versions()}")
        self.root.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.root / CURRENT, version + "\n")
        return path

    def sign(self, version: str, key) -> Path:
        """Write the signature of version ``version`` with ``key`` (see ``classifier.bundle``)."""
        path = self.path(version)
        if not (path / MANIFEST).exists():
            raise BundleError(f"no model version {version!r} in {self.root}; known: {self.versions()}")
        sign_bundle(path, key)
        return path

    def resolve(self, name: str | None) -> Path:
        """A version name, a folder path, or None for the current model."""
        if name is None:
            return self.current_path()
        candidate = Path(name)
        if candidate.is_dir() and (candidate / MANIFEST).exists():
            return candidate
        return self.path(name)
