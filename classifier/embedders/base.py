"""The small interface every embedder implements."""

from __future__ import annotations

from abc import ABC, abstractmethod
from enum import Enum
from typing import Sequence

import numpy as np


class TextKind(str, Enum):
    """What a text is to the model: e5 embeds documents as passages and short prototypes as queries."""

    PASSAGE = "passage"
    QUERY = "query"


class Embedder(ABC):
    """Turns texts into L2-normalised vectors. ``id`` names the model exactly (it keys the cache)."""

    id: str
    dim: int

    @abstractmethod
    def encode(self, texts: Sequence[str], kind: TextKind = TextKind.PASSAGE, *, progress: bool = False) -> np.ndarray:
        """Return an array [len(texts), dim] of float32 unit vectors."""

    def encode_one(self, text: str, kind: TextKind = TextKind.PASSAGE) -> np.ndarray:
        return self.encode([text], kind)[0]
