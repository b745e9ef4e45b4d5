"""The ``laari`` command: the training and evaluation commands of ``training.cli``, the register jobs of
``training.cli_batch`` and ``laari serve`` of ``service.cli``, put together. Nothing else lives here."""

from __future__ import annotations

from service.cli import register as register_serve
from training.cli import app
from training.cli_batch import register as register_batch

register_serve(app)
register_batch(app)


def main():  # console-script entry point
    app()


if __name__ == "__main__":
    main()
