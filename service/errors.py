"""Error bodies: one sentence in ``detail`` naming the field, and the list of field errors."""

from __future__ import annotations

from typing import Any, Sequence


def _loc(loc: Sequence[Any]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    return ".".join(parts) or (str(loc[0]) if loc else "body")


def field_errors(errors: Sequence[dict]) -> list[dict]:
    out = []
    for e in errors:
        msg = e.get("msg", "invalid")
        if msg.startswith("Value error, "):
            msg = msg[len("Value error, "):]
        out.append({"field": _loc(e.get("loc", ())), "message": msg, "type": e.get("type")})
    return out


def describe_errors(errors: Sequence[dict]) -> list[str]:
    """'field: message' for each error (the first is the headline)."""
    return [f"{f['field']}: {f['message']}" for f in field_errors(errors)] or ["invalid request"]
