from .cli import serve
import typer

typer.run(serve)
