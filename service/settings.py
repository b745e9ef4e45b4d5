"""The service's settings: environment variables with the prefix ``LAARI_`` (or keyword arguments in tests).

- ``LAARI_API_KEYS="key1:reviewer,key2:admin"``: API keys and their roles (``reviewer``: predict and feedback;
  ``admin``: everything a reviewer may, plus model reload and the feedback export). Keys are never logged and are
  hidden from ``repr``.
- ``LAARI_PREDICT_OPEN=true``: predictions (and text extraction) need no key; feedback and admin always do.
- ``LAARI_MODEL``: the model version or folder to serve (default: ``models/current`` of the registry).
- ``LAARI_MODELS_DIR``: the registry (as everywhere in laari).
- ``LAARI_FEEDBACK_URL``: any SQLAlchemy URL or a file path; default a SQLite file ``feedback.sqlite`` in
  ``$LAARI_HOME`` when that is set, else in ``var/`` beside the models folder.
- limits: ``LAARI_MAX_BODY_BYTES``, ``LAARI_MAX_DESCRIPTION_CHARS``, ``LAARI_MAX_BATCH_ITEMS``.
- micro-batching: ``LAARI_BATCH_MAX_ITEMS``, ``LAARI_BATCH_WAIT_MS``, ``LAARI_BATCH_MAX_CHARS``,
  ``LAARI_BATCH_STEP_CHUNKS``;
  ``LAARI_PREDICTION_CACHE_ITEMS``.
- ``LAARI_CORS_ORIGINS``: comma-separated origins allowed by CORS (empty: CORS off, the default).
- ``LAARI_MODEL_SIGNING_KEY``: when set, only bundles signed with this key are served (``laari models sign``).
- fair sharing, per client (its API key, else its address): ``LAARI_CLIENT_QUEUED_CHARS`` (fresh characters waiting
  to be embedded), ``LAARI_CLIENT_CHARS_PER_MINUTE`` and ``LAARI_CLIENT_REQUESTS_PER_MINUTE``; over a limit: 429
  with ``Retry-After``. 0 turns a limit off.
"""

from __future__ import annotations

import os
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from classifier import config


class Role(str, Enum):
    reviewer = "reviewer"
    admin = "admin"


ROLE_RANK = {Role.reviewer: 1, Role.admin: 2}


def _default_feedback_url() -> str:
    home = os.environ.get("LAARI_HOME")
    if home:
        folder = Path(home).expanduser()
    else:
        folder = config.models_dir().resolve().parent / "var"
    return f"sqlite:///{folder / 'feedback.sqlite'}"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LAARI_", extra="ignore", case_sensitive=False)

    api_keys: Annotated[dict[SecretStr, Role], NoDecode] = Field(
        default_factory=dict, repr=False,
        description="API key -> role; from the environment as 'key1:reviewer,key2:admin'. The keys are SecretStr: "
                    "printed, logged or dumped they show as '**********'.")
    predict_open: bool = Field(True, description="Predictions need no API key.")
    model: str | None = Field(None, description="Model version or folder to serve (default: the current one).")
    models_dir: Path | None = Field(None, description="The model registry (default: laari's models folder).")
    feedback_url: str = Field(default_factory=_default_feedback_url,
                              description="SQLAlchemy URL or file path of the feedback database.")
    max_body_bytes: int = Field(2_000_000, ge=1024, description="Largest request body accepted (bytes).")
    max_description_chars: int = Field(30_000, ge=10, description="Longest description accepted (characters).")
    max_batch_items: int = Field(64, ge=1, description="Most items in one /v1/predict/batch request.")
    batch_max_items: int = Field(8, ge=1, description="Micro-batcher: most requests embedded together.")
    batch_wait_ms: float = Field(5.0, ge=0, description="Micro-batcher: how long to wait for more requests.")
    batch_max_chars: int = Field(8_000, ge=0, description="Micro-batcher: most characters embedded together "
                                                          "(a longer text runs alone); 0: no limit.")
    batch_step_chunks: int = Field(1, ge=1, description="Micro-batcher: a text over batch_max_chars is embedded "
                                                         "this many chunks (up to 512 tokens each) at a time, with "
                                                         "waiting short requests served in between.")
    prediction_cache_items: int = Field(2048, ge=0, description="Predictions remembered for repeated texts.")
    cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list,
                                                        description="Origins allowed by CORS; empty = off.")
    model_signing_key: SecretStr | None = Field(
        None, repr=False, description="HMAC key bundles must be signed with; unset: signatures are not checked.")
    client_queued_chars: int = Field(
        30_000, ge=0, description="Per client: most fresh characters (not yet embedded) waiting or being embedded; "
                                  "a single request over it is taken only when the client has nothing waiting.")
    client_chars_per_minute: int = Field(
        30_000, ge=0, description="Per client: fresh characters per minute (a token bucket holding one minute's "
                                  "worth; a request larger than that is taken when the bucket is full).")
    client_requests_per_minute: int = Field(
        600, ge=0, description="Per client: predict and extract requests per minute (bursts up to a tenth of it).")
    load_in_background: bool = Field(True, description="Load the model after the server starts listening, "
                                                       "so /health answers at once and /ready says when it is done.")

    @field_validator("api_keys", mode="before")
    @classmethod
    def _parse_keys(cls, value: Any) -> Any:
        if value is None or value == "":
            return {}
        if isinstance(value, str):
            out: dict[str, str] = {}
            for i, part in enumerate(p.strip() for p in value.split(",")):
                if not part:
                    continue
                key, sep, role = part.rpartition(":")
                if not sep or not key.strip():
                    raise ValueError(f"LAARI_API_KEYS entry {i + 1}: expected 'key:role' (role reviewer or admin)")
                role = role.strip().lower()
                if role not in Role.__members__:
                    raise ValueError(f"LAARI_API_KEYS entry {i + 1}: unknown role {role!r}; use reviewer or admin")
                out[key.strip()] = role
            value = out
        if isinstance(value, dict):
            for key in value:
                if not isinstance(key, str) or len(key) < 8:
                    raise ValueError("LAARI_API_KEYS: every key must be at least 8 characters long")
        return value

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _parse_origins(cls, value: Any) -> Any:
        if value is None or value == "":
            return []
        if isinstance(value, str):
            return [v.strip() for v in value.split(",") if v.strip()]
        return value

    def registry_root(self) -> Path:
        return self.models_dir or config.models_dir()

    def __repr__(self) -> str:  # the keys never show, only how many there are
        from classifier.feedback import redact_url

        fields = {k: v for k, v in self.__dict__.items() if k not in ("api_keys", "model_signing_key")}
        fields["model_signing_key"] = "<set>" if self.model_signing_key else None
        fields["feedback_url"] = redact_url(self.feedback_url) if "://" in self.feedback_url else self.feedback_url
        return f"Settings(api_keys=<{len(self.api_keys)} key(s)>, " + ", ".join(
            f"{k}={v!r}" for k, v in fields.items()) + ")"

    __str__ = __repr__
