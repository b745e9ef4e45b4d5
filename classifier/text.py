"""Text handling shared by every channel: normalisation, sentence splitting, language check, hashing."""

from __future__ import annotations

import hashlib
import re
import unicodedata

_SPACES = re.compile(r"[ \t\u00a0]+")
_BLANK_LINES = re.compile(r"\n\s*\n+")
# Finnish abbreviations after which a full stop does not end a sentence.
_ABBREVIATIONS = {
    "esim", "mm", "ns", "yms", "jne", "tms", "ym", "ko", "ks", "vrt", "eli", "n", "noin", "klo", "milj", "mrd",
    "prof", "dos", "tri", "ry", "oy", "ab", "oyj", "s", "v", "vv", "kk", "t", "nro", "os", "huom", "lk", "ao",
}
_SENTENCE_END = re.compile(r"(?<=[.!?…])[\"'”»)]*\s+(?=[\"'“«(]*[A-ZÅÄÖ0-9•\-–])")
_BULLET = re.compile(r"^\s*(?:[-•*–]|\d+[.)])\s+")
_WORD = re.compile(r"[^\W_]+(?:[-'’][^\W_]+)*", re.UNICODE)

# Very frequent Finnish function words; a text with almost none of them is probably not Finnish.
_FINNISH_MARKERS = {
    "ja", "on", "ovat", "sekä", "että", "joka", "jotka", "hankkeen", "hankkeessa", "hanke", "tavoitteena", "myös",
    "kanssa", "avulla", "kautta", "jossa", "joiden", "sen", "niiden", "tai", "ei", "ole", "oli", "kun", "mukaan",
    "lisäksi", "tavoite", "hankkeella", "työ", "yritysten", "henkilöstön", "kehitetään", "osana", "tulee", "voi",
}
_OTHER_MARKERS = {
    "the", "and", "of", "to", "is", "for", "with", "this", "that", "project",  # English
    "och", "att", "det", "som", "för", "med", "är", "av", "projektet", "till",  # Swedish
    "und", "der", "die", "das", "ist", "mit", "für", "von",  # German
}


# Characters outside these ranges may be control, format, private-use or unassigned (Unicode category C); only
# they are looked up one by one. Every character inside the ranges is of another category (tested).
_SAFE_RANGES = "\n\t\x20-\x7e\u00a0-\u00ac\u00ae-\u02ff\u0400-\u04ff\u2010-\u2027\u2030-\u205e\u20a0-\u20bf"
_MAYBE_CONTROL = re.compile(f"[^{_SAFE_RANGES}]")


def _drop_control(match: re.Match) -> str:
    ch = match.group()
    return "" if unicodedata.category(ch)[0] == "C" else ch


def normalize(text: str) -> str:
    """Unicode NFC, unified line breaks, no control or format characters, no runs of spaces, no leading or
    trailing blank space."""
    text = unicodedata.normalize("NFC", text or "").replace("\r\n", "\n").replace("\r", "\n")
    text = _MAYBE_CONTROL.sub(_drop_control, text)
    lines = [line.strip() for line in _SPACES.sub(" ", text).split("\n")]
    return _BLANK_LINES.sub("\n\n", "\n".join(lines)).strip()


def document_text(title: str | None, description: str) -> str:
    """The text a model sees: the title as its own first line, then the description."""
    return join_document(normalize(title or ""), normalize(description))


def join_document(title: str, description: str) -> str:
    """``document_text`` of a title and a description already normalised."""
    return f"{title}\n\n{description}" if title else description


def content_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def words(text: str) -> list[str]:
    return _WORD.findall(text)


def split_sentences(text: str) -> list[str]:
    """Sentences (and bullet items, and headings on their own line) of a description, in order."""
    out: list[str] = []
    for block in normalize(text).split("\n"):
        block = _BULLET.sub("", block).strip()
        if not block:
            continue
        pieces = _SENTENCE_END.split(block)
        merged: list[str] = []
        for piece in pieces:
            if merged:
                last_word = re.findall(r"(\w+)\.\W*$", merged[-1])
                if last_word and last_word[0].lower() in _ABBREVIATIONS:
                    merged[-1] = merged[-1] + " " + piece
                    continue
            merged.append(piece)
        out.extend(p.strip() for p in merged if p.strip())
    return out


LANGUAGE_CHECK_CHARS = 4000  # the check reads this much of a text: enough words to tell, cheap on long ones


def language_check(text: str) -> dict:
    """A cheap Finnish check on the start of a text: share of frequent Finnish vs. other-language function words
    and of å/ä/ö."""
    text = text[:LANGUAGE_CHECK_CHARS]
    tokens = words(text.lower())
    if not tokens:
        return {"language": "unknown", "finnish_score": 0.0}
    fi = sum(map(_FINNISH_MARKERS.__contains__, tokens))
    other = sum(map(_OTHER_MARKERS.__contains__, tokens))
    umlauts = sum(text.count(ch) for ch in "äöÄÖ") / max(1, len(text))
    score = (fi + 1) / (fi + other + 2)
    if len(tokens) < 6:
        language = "fi" if fi or umlauts > 0.01 else "unknown"
    elif score >= 0.5 or (umlauts > 0.015 and other <= fi):
        language = "fi"
    else:
        language = "other"
    return {"language": language, "finnish_score": round(score, 3)}
