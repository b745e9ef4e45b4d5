"""Figures for the reports, as PNG bytes: the one heat map (confusion matrices, reclassification transitions,
pool-to-pool similarity, discovered pools against labels) and the figure-to-PNG step the other plots share."""

from __future__ import annotations

import io
from typing import Sequence

import numpy as np


def pyplot():
    """matplotlib's pyplot on the file-only backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def png_bytes(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    pyplot().close(fig)
    return buf.getvalue()


def heatmap_png(matrix, rows: Sequence[str], columns: Sequence[str] | None = None, *, title: str,
                xlabel: str | None = None, ylabel: str | None = None, counts: bool = True,
                colorbar: str | None = None, figsize: tuple[float, float] | None = None) -> bytes:
    """A labelled heat map with the values written in the cells.

    ``counts=True`` (a table of counts: confusion, transitions, contingency): each cell is coloured by its share of
    its row (Blues, 0..1) and shows the count; empty cells stay blank. ``counts=False`` (a table of values such as
    similarities): cells are coloured by value (viridis, with ``colorbar`` as its label) and show it to two decimals;
    NaN cells are left blank."""
    plt = pyplot()
    columns = list(rows if columns is None else columns)
    rows = list(rows)
    M = np.asarray(matrix, dtype=float).reshape(len(rows), len(columns))
    if figsize is None:
        figsize = (1.1 * max(len(columns), 1) + 2.8, 0.95 * max(len(rows), 1) + 2.2)
    fig, ax = plt.subplots(figsize=figsize, dpi=110)
    if rows and columns:
        if counts:
            shares = M / M.sum(axis=1, keepdims=True).clip(min=1)
            ax.imshow(shares, cmap="Blues", vmin=0, vmax=1, aspect="auto")
        else:
            im = ax.imshow(M, cmap="viridis", aspect="auto")
            fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label=colorbar or "")
            finite = M[np.isfinite(M)]
            mid = (finite.min() + finite.max()) / 2 if finite.size else 0
        ax.set_xticks(range(len(columns)), columns, rotation=35, ha="right")
        ax.set_yticks(range(len(rows)), rows)
        for i in range(len(rows)):
            for j in range(len(columns)):
                v = M[i, j]
                if counts and v:
                    ax.text(j, i, str(int(v)), ha="center", va="center", fontsize=9,
                            color="white" if shares[i, j] > 0.5 else "black")
                elif not counts and np.isfinite(v):
                    ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=8,
                            color="black" if v > mid else "white")
    if xlabel:
        ax.set_xlabel(xlabel)
    if ylabel:
        ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return png_bytes(fig)
