"""The ``laari`` command: the training and evaluation commands of ``training.cli``, the pool report and discovery of
``training.cli_pools``, ``laari predict`` and ``laari batch`` of ``batch.cli`` and ``laari serve`` of
``service.cli``, put together. Nothing else lives here."""

from __future__ import annotations

from batch.cli import register as register_apply
from service.cli import register as register_serve
from training.cli import app
from training.cli_pools import register as register_pools

register_apply(app)
register_pools(app)
register_serve(app)


def main():  # console-script entry point
    app()


if __name__ == "__main__":
    main()
