"""Reviewers' feedback, stored durably: a SQLite file by default (WAL mode), or any database SQLAlchemy reaches.

One row per decision; nothing is updated or deleted, so the table is also the audit trail. The latest decision per
project (by project id, else by text hash) is the one that counts when feedback is folded into training.
No FastAPI here: ``training/feedback_data.py`` reads the same table.
"""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

from sqlalchemy import (JSON, Column, DateTime, Integer, MetaData, String, Table, Text, create_engine, event, func,
                        insert, select)
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

metadata = MetaData()

feedback_table = Table(
    "feedback", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("created_at", DateTime(timezone=True), nullable=False, index=True),
    Column("project_id", String(200), nullable=True, index=True),
    Column("title", Text, nullable=True),
    Column("text", Text, nullable=True),
    Column("text_sha256", String(64), nullable=False, index=True),
    Column("model_version", String(200), nullable=False),
    Column("suggested_laari", String(100), nullable=True),
    Column("suggested_tags", JSON, nullable=True),
    Column("decision", String(20), nullable=False),
    Column("laari", String(100), nullable=True),
    Column("tags", JSON, nullable=True),
    Column("comment", Text, nullable=True),
    Column("reviewer", String(200), nullable=True),
    Column("key_id", String(16), nullable=True),
)

EXPORT_COLUMNS = [c.name for c in feedback_table.columns]


class FeedbackStoreError(RuntimeError):
    """The feedback database cannot be opened or written; the message says which and why."""


class FeedbackValueError(ValueError):
    """A row that cannot be stored as it is (e.g. text that is not valid Unicode); ``field`` names the column."""

    def __init__(self, message: str, field: str):
        super().__init__(message)
        self.field = field


def check_storable(values: dict) -> None:
    """Every text of the row must encode as UTF-8 (a lone surrogate does not; SQLite would fail on it)."""
    for column, value in values.items():
        for text in ([value] if isinstance(value, str) else value if isinstance(value, list) else []):
            if not isinstance(text, str):
                continue
            try:
                text.encode("utf-8")
            except UnicodeEncodeError as exc:
                raise FeedbackValueError(f"{column}: not valid Unicode (a lone surrogate at character {exc.start}); "
                                         "nothing was stored", column) from exc


def database_url(url_or_path: str | Path) -> str:
    """A SQLAlchemy URL from a URL or a plain file path (a path means a SQLite file)."""
    text = str(url_or_path).strip()
    if not text:
        raise FeedbackStoreError("feedback database: empty URL or path")
    if "://" in text:
        try:
            make_url(text)
        except ArgumentError as exc:
            raise FeedbackStoreError(f"feedback database: invalid SQLAlchemy URL: {exc}") from exc
        return text
    return f"sqlite:///{Path(text).expanduser().resolve()}"


def sqlite_path(url: str) -> Path | None:
    u = make_url(url)
    if u.get_backend_name() != "sqlite" or not u.database or u.database == ":memory:":
        return None
    return Path(u.database)


def redact_url(url: str) -> str:
    """The URL without its password, for messages and logs."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "<invalid URL>"


def make_engine(url: str, *, create_dirs: bool = True) -> Engine:
    path = sqlite_path(url)
    kwargs: dict[str, Any] = {"future": True}
    if path is not None:
        if create_dirs:
            path.parent.mkdir(parents=True, exist_ok=True)
        kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
    elif make_url(url).get_backend_name() != "sqlite":
        kwargs["pool_pre_ping"] = True
    try:
        engine = create_engine(url, **kwargs)
    except (ArgumentError, SQLAlchemyError, ImportError) as exc:
        raise FeedbackStoreError(f"feedback database {redact_url(url)}: cannot open: {exc}") from exc
    if make_url(url).get_backend_name() == "sqlite":
        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn, _record):  # WAL: readers never block the writer, a crash loses nothing committed
            cur = dbapi_conn.cursor()
            if path is not None:
                cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()
    return engine


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _iso(value) -> str | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        if value.tzinfo is None:  # SQLite returns naive datetimes; they were stored in UTC
            value = value.replace(tzinfo=timezone.utc)
        return value.isoformat(timespec="seconds")
    return str(value)


def row_to_dict(row) -> dict:
    d = dict(row._mapping)
    d["created_at"] = _iso(d["created_at"])
    return d


class FeedbackStore:
    """Append and read feedback rows. Thread-safe (one engine, a connection per call)."""

    def __init__(self, url_or_path: str | Path, *, create: bool = True):
        self.url = database_url(url_or_path)
        path = sqlite_path(self.url)
        if not create and path is not None and not path.exists():
            raise FeedbackStoreError(f"feedback database {path} does not exist")
        self.engine = make_engine(self.url, create_dirs=create)
        try:
            if create:
                metadata.create_all(self.engine)
            else:
                with self.engine.connect() as conn:
                    if not self.engine.dialect.has_table(conn, "feedback"):
                        raise FeedbackStoreError(f"feedback database {redact_url(self.url)} has no feedback table")
        except SQLAlchemyError as exc:
            raise FeedbackStoreError(f"feedback database {redact_url(self.url)}: {exc.__class__.__name__}: "
                                     f"{exc.orig if hasattr(exc, 'orig') else exc}") from exc

    @property
    def display_url(self) -> str:
        return redact_url(self.url)

    def journal_mode(self) -> str | None:
        if self.engine.dialect.name != "sqlite":
            return None
        with self.engine.connect() as conn:
            return conn.exec_driver_sql("PRAGMA journal_mode").scalar()

    def add(self, record: dict) -> dict:
        values = {c: record.get(c) for c in EXPORT_COLUMNS if c not in ("id", "created_at")}
        values["created_at"] = record.get("created_at") or _now()
        check_storable(values)
        try:
            with self.engine.begin() as conn:
                result = conn.execute(insert(feedback_table).values(**values))
                new_id = result.inserted_primary_key[0]
                row = conn.execute(select(feedback_table).where(feedback_table.c.id == new_id)).one()
        except SQLAlchemyError as exc:
            raise FeedbackStoreError(f"feedback database {self.display_url}: cannot store the row: "
                                     f"{exc.__class__.__name__}") from exc
        return row_to_dict(row)

    def count(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(feedback_table)).scalar_one())

    def rows(self, *, since: datetime | None = None, project_id: str | None = None, model_version: str | None = None,
             limit: int | None = None) -> Iterator[dict]:
        """Rows oldest first, filtered; streamed from the database in pages."""
        query = select(feedback_table).order_by(feedback_table.c.id)
        if since is not None:
            query = query.where(feedback_table.c.created_at >= since)
        if project_id is not None:
            query = query.where(feedback_table.c.project_id == project_id)
        if model_version is not None:
            query = query.where(feedback_table.c.model_version == model_version)
        if limit is not None:
            query = query.limit(limit)
        last_id = 0
        page = 500
        done = 0
        while True:
            q = query.where(feedback_table.c.id > last_id).limit(page if limit is None else min(page, limit - done))
            with self.engine.connect() as conn:
                batch = [row_to_dict(r) for r in conn.execute(q)]
            yield from batch
            done += len(batch)
            if len(batch) < page or (limit is not None and done >= limit):
                return
            last_id = batch[-1]["id"]

    def close(self):
        self.engine.dispose()


def to_jsonl(rows: Iterator[dict]) -> Iterator[str]:
    for row in rows:
        yield json.dumps(row, ensure_ascii=False) + "\n"


_FORMULA_START = ("=", "+", "@", "\t", "\r")


def to_csv(rows: Iterator[dict]) -> Iterator[str]:
    """CSV with a header; tag lists as 'a;b' (the form laari's data readers accept)."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=EXPORT_COLUMNS, lineterminator="\n")
    writer.writeheader()
    yield buf.getvalue()
    for row in rows:
        buf.seek(0)
        buf.truncate()
        out = dict(row)
        for key in ("suggested_tags", "tags"):
            if isinstance(out.get(key), list):
                out[key] = ";".join(out[key])
        for key in ("project_id", "title", "text", "comment", "reviewer"):
            value = out.get(key)
            if isinstance(value, str) and value[:1] in _FORMULA_START:
                out[key] = "'" + value  # a spreadsheet must not run a cell as a formula
        writer.writerow(out)
        yield buf.getvalue()
