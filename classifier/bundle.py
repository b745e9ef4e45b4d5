"""A trained model on disk: a folder with ``manifest.json``, ``model.json``, ``taxonomy.json`` and ``arrays/*.npy``.

No pickle anywhere: JSON and ``.npy`` files loaded with ``allow_pickle=False``, and an array whose dtype is not a plain
number or boolean is refused by name before it is read. The manifest records the sha256 of every file; loading
checks them all and refuses a folder whose files were changed, added or removed.

Optional signing: with ``LAARI_MODEL_SIGNING_KEY`` set, saving writes ``manifest.sig``, an HMAC-SHA256 of the
manifest (its canonical JSON, every field but the version name, which the registry sets when it moves a bundle into
place; the manifest lists the sha256 of every file, so this covers them all), and loading refuses a bundle without
a valid one. The key is never written to a message or a log. The bundle
hash is computed from the files alone (not from the creation time), so the same data and settings give the same
hash. Saving writes into a temporary folder and renames it into place.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .atomic import atomic_write_text, replace_folder
from .explain import Reference
from .tables import file_hash
from .model import LaariModel
from .taxonomy import Taxonomy, taxonomy_from_dict

BUNDLE_FORMAT = 1
MANIFEST = "manifest.json"
SIGNATURE = "manifest.sig"
SIGNING_KEY_ENV = "LAARI_MODEL_SIGNING_KEY"
ALLOWED_DTYPE_KINDS = {"f": "float", "i": "int", "u": "unsigned int", "b": "bool"}
_FROM_ENV = object()


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


def _dump_json(path: Path, data) -> None:
    atomic_write_text(path, json.dumps(data, ensure_ascii=False, indent=1, sort_keys=True) + "\n")


def bundle_hash(files: dict[str, str]) -> str:
    h = hashlib.sha256()
    for name in sorted(files):
        h.update(f"{name}\0{files[name]}\n".encode())
    return h.hexdigest()


def save_bundle(target: str | Path, model: LaariModel, reference: Reference, taxonomy: Taxonomy,
                manifest: dict, *, signing=_FROM_ENV) -> dict:
    """Write the bundle atomically to ``target``; returns the complete manifest. ``signing``: the key to sign
    with (default: ``LAARI_MODEL_SIGNING_KEY``; None or empty: unsigned)."""
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
        files = {str(p.relative_to(tmp)): file_hash(p) for p in sorted(tmp.rglob("*")) if p.is_file()}
        full = dict(manifest)
        full.update({"format": BUNDLE_FORMAT, "files": files, "bundle_hash": bundle_hash(files),
                     "taxonomy_hash": taxonomy.content_hash()})
        _dump_json(tmp / MANIFEST, full)
        key = signing_key() if signing is _FROM_ENV else signing
        if key:
            _write_signature(tmp, key)
        replace_folder(tmp, target)
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
    present = {str(p.relative_to(path)) for p in path.rglob("*")
               if p.is_file() and str(p.relative_to(path)) not in (MANIFEST, SIGNATURE)}
    extra = sorted(present - set(expected))
    if extra:
        raise BundleError(f"{path}: files not listed in the manifest: {extra[:5]} (refusing a foreign file)")
    for name, digest in expected.items():
        f = path / name
        if not f.is_file():
            raise BundleError(f"{path}: file {name} listed in the manifest is missing")
        if file_hash(f) != digest:
            raise BundleError(f"{path}: file {name} does not match its sha256 in the manifest (tampered or corrupt)")
    if bundle_hash(expected) != manifest.get("bundle_hash"):
        raise BundleError(f"{path}: the manifest's bundle_hash does not match its file list")
    return manifest


def _read_json(path: Path, name: str):
    try:
        return json.loads((path / name).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:  # ValueError: bad JSON and bad UTF-8 alike
        raise BundleError(f"{path}: {name} cannot be read as JSON: {exc}") from exc


def load_array(file: Path) -> np.ndarray:
    """One ``.npy`` file, its dtype checked from the header before the data is read (only numbers and booleans;
    an object array is refused by name, never unpickled)."""
    try:
        with open(file, "rb") as f:
            version = np.lib.format.read_magic(f)
            if version == (1, 0):
                _, _, dtype = np.lib.format.read_array_header_1_0(f)
            elif version == (2, 0):
                _, _, dtype = np.lib.format.read_array_header_2_0(f)
            else:
                raise BundleError(f"{file}: unsupported .npy format version {version}")
            if dtype.hasobject or dtype.kind not in ALLOWED_DTYPE_KINDS or dtype.fields is not None:
                raise BundleError(f"{file.parent.name}/{file.name}: array dtype {dtype.str!r} ({dtype}) is not "
                                  f"allowed; a model array holds only {', '.join(ALLOWED_DTYPE_KINDS.values())}")
            f.seek(0)
            return np.load(f, allow_pickle=False)
    except BundleError:
        raise
    except (OSError, ValueError, EOFError) as exc:
        raise BundleError(f"{file.parent.name}/{file.name}: not a readable .npy array: {exc}") from exc


def load_bundle(path: str | Path, *, signing=_FROM_ENV) -> Bundle:
    """Verify and load a bundle. ``signing``: the key its signature must match (default:
    ``LAARI_MODEL_SIGNING_KEY``; None or empty: no signature needed)."""
    path = Path(path)
    manifest = verify_bundle(path)
    key = signing_key() if signing is _FROM_ENV else signing
    if key:
        verify_signature(path, key)
    body = _read_json(path, "model.json")
    taxonomy = taxonomy_from_dict(_read_json(path, "taxonomy.json"))
    if taxonomy.content_hash() != manifest.get("taxonomy_hash"):
        raise BundleError(f"{path}: taxonomy.json does not match the manifest's taxonomy_hash")
    arrays = {p.stem: load_array(p) for p in sorted((path / "arrays").glob("*.npy"))}
    try:
        model = LaariModel.from_arrays(body["model"], arrays)
        reference = Reference.from_arrays(body["reference"], arrays)
    except KeyError as exc:
        raise BundleError(f"{path}: model.json or arrays lack {exc}") from exc
    except (TypeError, ValueError, IndexError) as exc:
        raise BundleError(f"{path}: model.json and the arrays do not fit together: {exc}") from exc
    return Bundle(model=model, reference=reference, taxonomy=taxonomy, manifest=manifest, path=path)


# --------------------------------------------------------------------------- signing
def _key_bytes(key) -> bytes:
    if hasattr(key, "get_secret_value"):  # pydantic SecretStr
        key = key.get_secret_value()
    return key.encode("utf-8") if isinstance(key, str) else bytes(key)


def signing_key() -> str | None:
    """``LAARI_MODEL_SIGNING_KEY``, or None when it is unset or empty."""
    return os.environ.get(SIGNING_KEY_ENV) or None


def manifest_signature(path: str | Path, key) -> str:
    """HMAC-SHA256 of the manifest's canonical JSON without its version name."""
    manifest = dict(read_manifest(path))
    manifest.pop("version", None)
    canonical = json.dumps(manifest, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode("utf-8")
    return hmac.new(_key_bytes(key), canonical, hashlib.sha256).hexdigest()


def _write_signature(path: Path, key) -> None:
    atomic_write_text(path / SIGNATURE, manifest_signature(path, key) + "\n")


def sign_bundle(path: str | Path, key) -> str:
    """Sign an existing bundle (its files are verified first); returns the signature."""
    if not key or not _key_bytes(key):
        raise BundleError(f"no signing key: set {SIGNING_KEY_ENV}")
    path = Path(path)
    verify_bundle(path)
    _write_signature(path, key)
    return (path / SIGNATURE).read_text(encoding="utf-8").strip()


def verify_signature(path: str | Path, key) -> None:
    """Raise BundleError naming the bundle when its signature is missing or does not match ``key``."""
    path = Path(path)
    sig_file = path / SIGNATURE
    if not sig_file.is_file():
        raise BundleError(f"model {path.name} ({path}) is not signed, and {SIGNING_KEY_ENV} is set: sign it with "
                          f"'laari models sign {path.name}' or unset the key")
    given = sig_file.read_text(encoding="utf-8", errors="replace").strip()
    if not hmac.compare_digest(given.encode("ascii", "replace"), manifest_signature(path, key).encode("ascii")):
        raise BundleError(f"model {path.name} ({path}): the signature does not match the manifest (signed with "
                          f"another key, or the manifest was changed after signing)")
