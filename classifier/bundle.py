"""A trained model on disk: a folder with ``manifest.json``, ``model.json``, ``taxonomy.json`` and ``arrays/*.npy``.

No pickle anywhere: JSON and ``.npy`` files loaded with ``allow_pickle=False``. The manifest records the sha256 of
every file; loading checks them all and refuses a folder whose files were changed, added or removed. The bundle
hash is computed from the files alone (not from the creation time), so the same data and settings give the same
hash. Saving writes into a temporary folder and renames it into place.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .explain import Reference
from .model import LaariModel
from .taxonomy import Taxonomy, taxonomy_from_dict

BUNDLE_FORMAT = 1
MANIFEST = "manifest.json"


class BundleError(RuntimeError):
    """A model folder is missing, incomplete, tampered with or of an unknown format."""


@dataclass
class Bundle:
    model: LaariModel
    reference: Reference
    taxonomy: Taxonomy
    manifest: dict
    path: Path | None = None

    @property
    def version(self) -> str:
        return self.manifest["version"]


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _dump_json(path: Path, data) -> None:
    path.write_text(json.dumps(data, ensure_ascii=False, indent=1, sort_keys=True) + "\n", encoding="utf-8")


def bundle_hash(files: dict[str, str]) -> str:
    h = hashlib.sha256()
    for name in sorted(files):
        h.update(f"{name}\0{files[name]}\n".encode())
    return h.hexdigest()


def save_bundle(target: str | Path, model: LaariModel, reference: Reference, taxonomy: Taxonomy,
                manifest: dict) -> dict:
    """Write the bundle atomically to ``target``; returns the complete manifest."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        (tmp / "arrays").mkdir()
        model_meta, arrays = model.to_arrays()
        ref_meta, ref_arrays = reference.to_arrays()
        arrays.update(ref_arrays)
        _dump_json(tmp / "model.json", {"format": BUNDLE_FORMAT, "model": model_meta, "reference": ref_meta})
        _dump_json(tmp / "taxonomy.json", taxonomy.to_dict())
        for name, arr in sorted(arrays.items()):
            np.save(tmp / "arrays" / f"{name}.npy", np.ascontiguousarray(arr), allow_pickle=False)
        files = {str(p.relative_to(tmp)): _sha256(p) for p in sorted(tmp.rglob("*")) if p.is_file()}
        full = dict(manifest)
        full.update({"format": BUNDLE_FORMAT, "files": files, "bundle_hash": bundle_hash(files),
                     "taxonomy_hash": taxonomy.content_hash()})
        _dump_json(tmp / MANIFEST, full)
        if target.exists():
            old = target.with_name(f".{target.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(target, old)
            os.replace(tmp, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return full


def read_manifest(path: str | Path) -> dict:
    path = Path(path)
    try:
        manifest = json.loads((path / MANIFEST).read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise BundleError(f"{path}: not a model folder (no {MANIFEST})") from exc
    except ValueError as exc:
        raise BundleError(f"{path / MANIFEST}: not valid JSON: {exc}") from exc
    if manifest.get("format") != BUNDLE_FORMAT:
        raise BundleError(f"{path}: unknown bundle format {manifest.get('format')!r} (expected {BUNDLE_FORMAT})")
    return manifest


def verify_bundle(path: str | Path) -> dict:
    """Check every file against the manifest; raise BundleError naming the first file that differs."""
    path = Path(path)
    manifest = read_manifest(path)
    expected = manifest.get("files") or {}
    present = {str(p.relative_to(path)) for p in path.rglob("*") if p.is_file() and p.name != MANIFEST}
    extra = sorted(present - set(expected))
    if extra:
        raise BundleError(f"{path}: files not listed in the manifest: {extra[:5]} (refusing a foreign file)")
    for name, digest in expected.items():
        f = path / name
        if not f.is_file():
            raise BundleError(f"{path}: file {name} listed in the manifest is missing")
        if _sha256(f) != digest:
            raise BundleError(f"{path}: file {name} does not match its sha256 in the manifest (tampered or corrupt)")
    if bundle_hash(expected) != manifest.get("bundle_hash"):
        raise BundleError(f"{path}: the manifest's bundle_hash does not match its file list")
    return manifest


def load_bundle(path: str | Path) -> Bundle:
    path = Path(path)
    manifest = verify_bundle(path)
    body = json.loads((path / "model.json").read_text(encoding="utf-8"))
    taxonomy = taxonomy_from_dict(json.loads((path / "taxonomy.json").read_text(encoding="utf-8")))
    if taxonomy.content_hash() != manifest.get("taxonomy_hash"):
        raise BundleError(f"{path}: taxonomy.json does not match the manifest's taxonomy_hash")
    arrays = {p.stem: np.load(p, allow_pickle=False) for p in sorted((path / "arrays").glob("*.npy"))}
    try:
        model = LaariModel.from_arrays(body["model"], arrays)
        reference = Reference.from_arrays(body["reference"], arrays)
    except KeyError as exc:
        raise BundleError(f"{path}: model.json or arrays lack {exc}") from exc
    return Bundle(model=model, reference=reference, taxonomy=taxonomy, manifest=manifest, path=path)
