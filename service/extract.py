"""Text out of an uploaded file: plain text (UTF-8, or Windows-1252 as a fallback) and .docx (the standard
library's zipfile, with the declared sizes checked before anything is read, and defusedxml's parser, which refuses
DTDs and entities: paragraphs, tabs and line breaks of word/document.xml). Every way a zip archive or
its XML can be broken (bad CRC, sizes that lie, unsupported compression, encryption, truncation) is an
``ExtractError`` saying what is wrong, never an unexpected exception."""

from __future__ import annotations

import io
import zipfile
import zlib
from xml.etree.ElementTree import ParseError

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring

W = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"
MAX_DOCX_XML_BYTES = 20_000_000  # uncompressed document.xml: refuses zip bombs
# what zipfile raises for a damaged or unusual archive (RuntimeError: encrypted; NotImplementedError: compression)
ZIP_ERRORS = (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, EOFError, OSError, ValueError, RuntimeError,
              NotImplementedError, KeyError, OverflowError)


class ExtractError(ValueError):
    """The file cannot be read as text; the message says why."""


def _docx_text(data: bytes) -> str:
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
    except ZIP_ERRORS as exc:
        raise ExtractError(f"not a valid .docx file (not a readable zip archive: {exc})") from exc
    with zf:
        try:
            info = zf.getinfo("word/document.xml")
        except KeyError as exc:
            raise ExtractError("not a .docx file: word/document.xml is missing") from exc
        if info.file_size > MAX_DOCX_XML_BYTES:
            raise ExtractError(f"the document's text part is too large ({info.file_size} bytes uncompressed, the "
                               f"limit is {MAX_DOCX_XML_BYTES})")
        try:  # zipfile stops at the declared size, so a header that understates it cannot inflate past the limit
            xml = zf.read(info)
        except ZIP_ERRORS as exc:
            raise ExtractError(f"the .docx is damaged: word/document.xml cannot be read ({exc})") from exc
    try:
        root = fromstring(xml, forbid_dtd=True)
    except DefusedXmlException as exc:
        raise ExtractError(f"the .docx contains a DTD or entities, which Word never writes; refusing it ({exc})") \
            from exc
    except (ParseError, ValueError, RecursionError) as exc:
        raise ExtractError(f"the .docx text part is not valid XML: {exc}") from exc
    paragraphs = []
    for p in root.iter(W + "p"):
        parts = []
        for node in p.iter():
            if node.tag == W + "t" and node.text:
                parts.append(node.text)
            elif node.tag == W + "tab":
                parts.append("\t")
            elif node.tag in (W + "br", W + "cr"):
                parts.append("\n")
        paragraphs.append("".join(parts))
    return "\n".join(paragraphs).strip()


def extract_text(filename: str, data: bytes) -> tuple[str, str, list[str]]:
    """(format, text, warnings) of an uploaded file, by its name's ending (``.txt``/``.md`` or ``.docx``)."""
    name = (filename or "").lower()
    warnings: list[str] = []
    if name.endswith(".docx"):
        text, fmt = _docx_text(data), "docx"
    elif name.endswith((".txt", ".md", ".text")) or "." not in name:
        if b"\x00" in data[:4096]:
            raise ExtractError("the file looks binary, not text; upload a .txt (UTF-8) or .docx file")
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError:
            text = data.decode("cp1252", errors="replace")
            warnings.append("the file is not UTF-8; it was read as Windows-1252")
        fmt = "txt"
    elif name.endswith(".doc"):
        raise ExtractError("old Word .doc files are not supported; save the document as .docx or .txt")
    else:
        raise ExtractError(f"unsupported file type {filename!r}; upload a .txt or .docx file")
    if not text.strip():
        raise ExtractError("the file contains no text")
    return fmt, text.replace("\r\n", "\n"), warnings
