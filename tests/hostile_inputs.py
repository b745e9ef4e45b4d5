"""Hostile and broken inputs built on the fly, shared by the hostile-input tests and the reliability table."""

from __future__ import annotations

import io
import json
import shutil
import struct
import zipfile
from pathlib import Path

import numpy as np

from classifier.bundle import bundle_hash
from classifier.tables import file_hash

DOCX_XML = ('<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
            '<w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"><w:body>'
            '<w:p><w:r><w:t>Hankkeessa kehitetään kotihoidon työhyvinvointia.</w:t></w:r></w:p>'
            + '<w:p><w:r><w:t>Esihenkilöt saavat valmennusta ja jaksamista seurataan.</w:t></w:r></w:p>' * 40
            + '</w:body></w:document>')


def docx_bytes(xml: str = DOCX_XML) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("[Content_Types].xml", "<Types/>")
        zf.writestr("word/document.xml", xml)
    return buf.getvalue()


def docx_understated_size(declared: int = 100) -> bytes:
    """A valid .docx whose zip headers (local and central) say word/document.xml is ``declared`` bytes long:
    reading it stops early and the CRC check fails (``BadZipFile: Bad CRC-32``)."""
    data = bytearray(docx_bytes())
    name = b"word/document.xml"
    local = data.find(b"PK\x03\x04")
    while local != -1:
        if data[local + 30: local + 30 + len(name)] == name:
            struct.pack_into("<I", data, local + 22, declared)
        local = data.find(b"PK\x03\x04", local + 4)
    central = data.find(b"PK\x01\x02")
    while central != -1:
        if data[central + 46: central + 46 + len(name)] == name:
            struct.pack_into("<I", data, central + 24, declared)
        central = data.find(b"PK\x01\x02", central + 4)
    return bytes(data)


def docx_truncated() -> bytes:
    data = docx_bytes()
    return data[: len(data) // 2]


def rehash_manifest(folder: Path) -> None:
    """Recompute the manifest's file hashes and bundle hash after a file was replaced (what a forger would do)."""
    manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    files = {str(p.relative_to(folder)): file_hash(p) for p in sorted(folder.rglob("*"))
             if p.is_file() and p.name not in ("manifest.json", "manifest.sig")}
    manifest["files"] = files
    manifest["bundle_hash"] = bundle_hash(files)
    (folder / "manifest.json").write_text(json.dumps(manifest, ensure_ascii=False, indent=1, sort_keys=True),
                                          encoding="utf-8")


def bundle_with_array(src: Path, dst: Path, array_name: str, array: np.ndarray, version: str | None = None,
                      allow_pickle: bool = False) -> Path:
    """A copy of the bundle ``src`` whose array ``array_name`` is replaced by ``array``, with the manifest's hashes
    recomputed so that only the array's content is wrong."""
    shutil.copytree(src, dst)
    target = dst / "arrays" / f"{array_name}.npy"
    target.unlink()
    np.save(target, array, allow_pickle=allow_pickle)
    if version is not None:
        manifest = json.loads((dst / "manifest.json").read_text(encoding="utf-8"))
        manifest["version"] = version
        (dst / "manifest.json").write_text(json.dumps(manifest, ensure_ascii=False, indent=1, sort_keys=True),
                                           encoding="utf-8")
    rehash_manifest(dst)
    return dst


def object_array_bundle(src: Path, dst: Path, version: str | None = None) -> Path:
    """The first array of ``src`` replaced by an object array (it would need pickle to load)."""
    first = sorted((src / "arrays").glob("*.npy"))[0].stem
    return bundle_with_array(src, dst, first, np.array([{"x": 1}, "y"], dtype=object), version, allow_pickle=True)


SURROGATE_JSON = '"Hankkeessa kehitet\\ud800\\u00e4\\u00e4n ty\\u00f6hyvinvointia."'
