"""``laari serve``: the HTTP service and the reviewer page under uvicorn.

``laari/cli.py`` adds it to the ``laari`` command; ``python -m service`` runs
the same command on its own.
"""

from __future__ import annotations

import os
from typing import Optional

import typer


def serve(
    host: str = typer.Option("127.0.0.1", help="Address to listen on (0.0.0.0: every interface)."),
    port: int = typer.Option(8000, min=1, max=65535, help="Port to listen on."),
    model: Optional[str] = typer.Option(None, help="Model version or folder (default: the registry's current)."),
    reload: bool = typer.Option(False, "--reload", help="Development: restart when the code changes."),
    log_level: str = typer.Option("info", help="critical, error, warning, info or debug."),
    wait: bool = typer.Option(False, "--wait", help="Load the model before listening (default: listen at once, "
                                                   "/ready says when the model is loaded)."),
):
    """Serve the HTTP API, the reviewer page (/) and the API docs (/docs)."""
    import uvicorn
    from pydantic import ValidationError
    from rich.console import Console

    from classifier.bundle import BundleError, read_manifest, verify_bundle, verify_signature
    from classifier.registry import Registry

    console = Console(stderr=True)

    def fail(message: str):
        console.print(f"[bold red]error:[/] {message}", highlight=False)
        raise typer.Exit(1)

    if model:
        os.environ["LAARI_MODEL"] = model
    if wait:
        os.environ["LAARI_LOAD_IN_BACKGROUND"] = "false"
    from classifier.feedback import redact_url
    from .settings import Settings

    try:
        settings = Settings()
    except ValidationError as exc:
        fail("invalid setting(s): " + "; ".join(f"LAARI_{'.'.join(map(str, e['loc'])).upper()}: {e['msg']}"
                                                 for e in exc.errors(include_input=False)))
    try:  # fail fast on a missing (or, with a signing key, unsigned) model instead of serving 503s
        path = Registry(settings.registry_root()).resolve(settings.model)
        version = read_manifest(path).get("version", path.name)
        if settings.model_signing_key is not None and settings.model_signing_key.get_secret_value():
            verify_bundle(path)
            verify_signature(path, settings.model_signing_key)
    except BundleError as exc:
        fail(str(exc))
    keys = {r.value: sum(1 for v in settings.api_keys.values() if v == r) for r in set(settings.api_keys.values())}
    console.print(f"serving model {version} on http://{host}:{port}/ (docs: /docs, readiness: /ready); "
                  f"predict {'open' if settings.predict_open else 'needs a key'}; "
                  f"bundle signatures {'checked' if settings.model_signing_key else 'not checked'}; API keys: "
                  f"{keys or 'none (set LAARI_API_KEYS for feedback and admin)'}; "
                  f"feedback: {redact_url(settings.feedback_url)}", highlight=False)
    uvicorn.run("service.app:app_from_env", factory=True, host=host, port=port, reload=reload,
                log_level=log_level, log_config=log_config(log_level), access_log=False,
                timeout_graceful_shutdown=10, reload_dirs=["service", "classifier"] if reload else None)


def log_config(level: str = "info") -> dict:
    """uvicorn's logging plus laari's loggers (the service's own access log replaces uvicorn's: it has the
    timing and request id, and never the client's headers)."""
    import copy

    from uvicorn.config import LOGGING_CONFIG

    cfg = copy.deepcopy(LOGGING_CONFIG)
    cfg["formatters"]["laari"] = {"()": "logging.Formatter", "fmt": "%(asctime)s %(levelname)s %(name)s: %(message)s"}
    cfg["handlers"]["laari"] = {"formatter": "laari", "class": "logging.StreamHandler", "stream": "ext://sys.stderr"}
    cfg["loggers"]["laari"] = {"handlers": ["laari"], "level": level.upper(), "propagate": False}
    return cfg


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)


def main() -> None:
    cli = typer.Typer(add_completion=False)
    register(cli)
    cli()


if __name__ == "__main__":
    main()
