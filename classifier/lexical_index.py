"""The lexical channel's fast path for prediction: a whole batch of texts through a fitted vocabulary at once.

Character n-grams are found by rolling hashes over the batch's code points and looked up in a hash table of the
vocabulary; every whitespace token and word is analysed once and kept in a table (so a register's common words cost
a dictionary lookup); one sort groups the batch's features. The result (``Analysis``) also says which word each
feature belongs to, for the explanations. ``tests/test_lexical.py`` checks that it equals the training path
(``classifier.lexical.analyze`` through scikit-learn).
"""

from __future__ import annotations

import threading

import numpy as np
import scipy.sparse as sp

from . import lexical
from .lexical import CHAR_PREFIX, FINNISH_STOPWORDS, LEMMA_PREFIX
from .text import _WORD, words


_MASK = (1 << 64) - 1
_HASH_BASE = 0x9E3779B97F4A7C15  # odd: multiplication by it is a bijection modulo 2**64
_HASH_MIX = 0xD6E8FEB86659FD93  # odd: spreads a hash's bits into the top ones that pick a table slot
_CHAR_N = (3, 5)  # the n-gram lengths of the char analyzer (sklearn's char_wb, ngram_range=(3, 5))
_WORD_CACHE_LIMIT = 500_000


def _string_hash(s: str) -> int:
    """Polynomial hash of a string's code points modulo 2**64, the same as the rolling hash in ``_char_grams``."""
    h = 0
    for ch in s:
        h = (h * _HASH_BASE + ord(ch)) & _MASK
    return h


def _char_grams(tokens: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """(hash, token index) of every character n-gram of sklearn's ``char_wb``: each token padded with one
    space on both sides, every substring of 3-5 code points inside one padded token."""
    if not tokens:
        return np.zeros(0, dtype=np.uint64), np.zeros(0, dtype=np.int64)
    padded = "".join(f" {t} " for t in tokens)
    codes = np.frombuffer(padded.encode("utf-32-le", errors="surrogatepass"), dtype="<u4").astype(np.uint64)
    lengths = np.fromiter((len(t) + 2 for t in tokens), dtype=np.int64, count=len(tokens))
    ends = np.cumsum(lengths)
    token_of = np.repeat(np.arange(len(tokens), dtype=np.int64), lengths)
    room = ends[token_of] - np.arange(len(codes), dtype=np.int64)  # code points left in the token from here
    base = np.uint64(_HASH_BASE)
    hashes, owners = [], []
    h = codes
    with np.errstate(over="ignore"):
        for n in range(2, _CHAR_N[1] + 1):
            h = h[:-1] * base + codes[n - 1:]  # h[i] = hash of codes[i : i + n]
            if n >= _CHAR_N[0]:
                ok = np.flatnonzero(room[: len(h)] >= n)
                hashes.append(h[ok])
                owners.append(token_of[ok])
    return np.concatenate(hashes), np.concatenate(owners)


class Analysis:
    """A batch of texts through the lexical channel: the TF-IDF matrix ``X`` and, worked out when first asked for,
    which word each feature of each row belongs to, so that a linear score ``X[r] @ w`` splits into per-word shares
    that add up to it.

    A lemma feature belongs to its lemma (the parts of a hyphenated compound to the compound) where it first
    occurs; a character n-gram is shared equally by the whitespace tokens containing it (each token named by the
    lemma of its first word). The ``entry_*`` arrays list (row, column, share of X[row, column], word) once per
    owner; ``per_word`` sums weights over them into one value per (row, word) group, the groups ordered by row."""

    def __init__(self, X: sp.csr_matrix, parts: dict, names: list[str]):
        self.X = X
        self._parts = parts
        self.word_names = names
        self._attributed = False
        self._A: sp.csr_matrix | None = None

    def _attribute(self):
        if self._attributed:
            return
        n, V = self.X.shape
        p = self._parts
        group, n_lemma = p["group"], p["n_lemma"]
        rows, cols, owners, shares, groups = [], [], [], [], []
        # lemma features: the first occurrence in the text owns the feature
        first = p["first"]
        first = first[first < n_lemma]
        if len(first):
            g = group[first]
            rows.append(p["keys"][first] // V), cols.append(p["keys"][first] % V), groups.append(g)
            owners.append(p["lemma_owner"][first]), shares.append(np.ones(len(first)))
        # n-grams: each (row, token type) pair holds m occurrences of the token, each one owner of the n-gram
        m = p["pair_m"]
        if len(m):
            g = group[n_lemma:]
            n_owners = np.bincount(g, weights=m, minlength=len(self.X.data))
            rows.append(p["keys"][n_lemma:] // V), cols.append(p["keys"][n_lemma:] % V), groups.append(g)
            owners.append(p["pair_owner"]), shares.append(m / n_owners[g])
        cat = (lambda xs, dtype: np.concatenate(xs) if xs else np.zeros(0, dtype=dtype))
        e_rows, e_cols, e_groups = cat(rows, np.int64), cat(cols, np.int64), cat(groups, np.int64)
        e_owner, e_share = cat(owners, np.int64), cat(shares, np.float64)
        self.entry_rows, self.entry_cols = e_rows, e_cols
        self.entry_values = self.X.data[e_groups].astype(np.float64) * e_share  # X's data is in group order
        n_names = max(1, len(self.word_names))
        words_of, self.entry_groups, _ = _group(e_rows * n_names + e_owner)
        self.word_rows, self.word_ids = words_of // n_names, words_of % n_names
        self._row_starts = np.searchsorted(self.word_rows, np.arange(n + 1))
        self._parts = {}
        self._attributed = True

    def per_word(self, weights: np.ndarray) -> np.ndarray:
        """Each (row, word) group's share of the scores ``X[row] @ weights.T``: [groups, m] for weights [m, V]
        (or [groups] for one weight vector [V]). One sparse product for every row and weight vector at once."""
        self._attribute()
        if self._A is None:
            self._A = sp.csr_matrix((self.entry_values, (self.entry_groups, self.entry_cols)),
                                    shape=(len(self.word_ids), self.X.shape[1]))
        W = np.asarray(weights, dtype=np.float64)
        return np.asarray(self._A @ W.T) if W.ndim == 2 else np.asarray(self._A @ W).ravel()

    def word_range(self, row: int) -> tuple[int, int]:
        self._attribute()
        return int(self._row_starts[row]), int(self._row_starts[row + 1])

    def ranking(self, values: np.ndarray, rows: np.ndarray | None = None) -> np.ndarray:
        """Positions of the groups ordered by row, and within a row by ``values`` (one per group), largest first;
        with ``rows`` (a boolean per row) only those rows' groups are ranked, the rest keep their place."""
        self._attribute()
        groups = np.arange(len(self.word_rows)) if rows is None else np.flatnonzero(rows[self.word_rows])
        # row + a number in (0, 1) that falls as the value grows: one float sort ranks within every row at once
        key = self.word_rows[groups] + (0.5 - np.arctan(values[groups]) / np.pi)
        out = np.arange(len(self.word_rows))
        out[groups] = groups[np.argsort(key, kind="stable")]
        return out

    def top_words(self, row: int, values: np.ndarray, ranking: np.ndarray | None = None, n: int = 8,
                  n_negative: int = 3) -> list[dict]:
        """The ``n`` words with the largest positive value in ``row`` and the ``n_negative`` most negative ones
        (``ranking``: ``self.ranking(values)``, computed once for many rows)."""
        lo, hi = self.word_range(row)
        if ranking is None:
            ranking = self.ranking(values)
        ranked = ranking[lo:hi]
        head, tail = ranked[:n], ranked[::-1][:n_negative]
        names, ids = self.word_names, self.word_ids
        out = []
        for i, v, r in zip(ids[head].tolist(), values[head].tolist(), np.round(values[head], 4).tolist()):
            if v <= 0:
                break
            out.append({"term": names[i], "weight": r})
        for i, v, r in zip(ids[tail].tolist(), values[tail].tolist(), np.round(values[tail], 4).tolist()):
            if v >= 0:
                break
            out.append({"term": names[i], "weight": r})
        return out


class _HashTable:
    """uint64 keys -> int64 values, open addressing with linear probing, looked up a whole array at a time."""

    def __init__(self, keys: list[int], values: list[int]):
        bits = max(4, int(np.ceil(np.log2(max(1, len(keys)) * 4))))
        self.mask = (1 << bits) - 1
        self.shift = np.uint64(64 - bits)
        self.keys = np.zeros(1 << bits, dtype=np.uint64)
        self.values = np.full(1 << bits, -1, dtype=np.int64)
        for k, v in zip(keys, values):
            i = ((k * _HASH_MIX) & _MASK) >> (64 - bits)
            while self.values[i] >= 0:
                if int(self.keys[i]) == k:
                    raise ValueError("two vocabulary terms share a hash; the vocabulary cannot be indexed")
                i = (i + 1) & self.mask
            self.keys[i], self.values[i] = k, v

    def get(self, keys: np.ndarray) -> np.ndarray:
        """The value of each key, -1 where absent."""
        with np.errstate(over="ignore"):
            slot = ((keys * np.uint64(_HASH_MIX)) >> self.shift).astype(np.int64)
        out = np.full(len(keys), -1, dtype=np.int64)
        todo = np.arange(len(keys))
        while len(todo):
            s = slot[todo]
            vals = self.values[s]
            hit = (vals >= 0) & (self.keys[s] == keys[todo])
            out[todo[hit]] = vals[hit]
            more = (vals >= 0) & ~hit  # an occupied slot with another key: probe the next one
            todo = todo[more]
            slot[todo] = (slot[todo] + 1) & self.mask
        return out


class _Growing:
    """An int64 array that grows by appending, with room doubled as needed (amortised constant time)."""

    def __init__(self):
        self._data = np.zeros(1024, dtype=np.int64)
        self.size = 0

    def extend(self, values: np.ndarray):
        need = self.size + len(values)
        if need > len(self._data):
            grown = np.zeros(max(need, 2 * len(self._data)), dtype=np.int64)
            grown[: self.size] = self._data[: self.size]
            self._data = grown
        self._data[self.size : need] = values
        self.size = need

    @property
    def values(self) -> np.ndarray:
        return self._data[: self.size]


class VocabularyIndex:
    """A fitted vocabulary compiled for fast lookup: a hash table of its n-grams, and tables of the words and
    whitespace tokens seen so far with the feature columns each yields (so a token seen before is not re-hashed)."""

    def __init__(self, vocabulary: dict[str, int]):
        self.size = len(vocabulary)
        grams = [(term[len(CHAR_PREFIX):], j) for term, j in vocabulary.items() if term.startswith(CHAR_PREFIX)]
        self.grams = _HashTable([_string_hash(g) for g, _ in grams], [j for _, j in grams])
        self.lemma_cols = {term[len(LEMMA_PREFIX):]: j for term, j in vocabulary.items()
                           if term.startswith(LEMMA_PREFIX)}
        self.lock = threading.Lock()
        self._reset()

    def _reset(self):
        self.names: list[str] = []  # owner words (lemmas) named in explanations
        self.name_ids: dict[str, int] = {}
        self.word_ids: dict[str, int] = {}  # a word seen -> its row in the word table
        self.word_owner: list[int] = []
        self.word_cols: list[tuple[int, ...]] = []  # the lemma feature columns a word yields
        self._word_arrays = None
        self.token_ids: dict[str, int] = {}  # a whitespace token seen -> its row in the token table
        self.token_owner = _Growing()  # name id of the token's first word's lemma
        self.token_start = _Growing()  # the token's n-gram columns: token_cols[start : start + count]
        self.token_count = _Growing()
        self.token_cols = _Growing()
        self.token_reps = _Growing()  # how often each of those n-grams occurs in the token

    def _name(self, name: str) -> int:
        i = self.name_ids.get(name)
        if i is None:
            i = self.name_ids[name] = len(self.names)
            self.names.append(name)
        return i

    def _add_word(self, w: str) -> int:
        owner, cols = -1, ()
        if not (w in FINNISH_STOPWORDS or len(w) < 2 or w.isdigit()):
            lemma = lexical._lemma(w)
            if lemma not in FINNISH_STOPWORDS:
                parts = [p for p in lemma.split("-") if len(p) > 2 and p not in FINNISH_STOPWORDS] \
                    if "-" in lemma else []
                cols = tuple(self.lemma_cols[t] for t in [lemma] + parts if t in self.lemma_cols)
                owner = self._name(lemma) if cols else -1
        i = self.word_ids[w] = len(self.word_owner)
        self.word_owner.append(owner)
        self.word_cols.append(cols)
        self._word_arrays = None
        return i

    def _words_as_arrays(self):
        if self._word_arrays is None:
            counts = np.fromiter(map(len, self.word_cols), dtype=np.int64, count=len(self.word_cols))
            flat = np.fromiter((c for cols in self.word_cols for c in cols), dtype=np.int64, count=int(counts.sum()))
            starts = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
            self._word_arrays = (np.asarray(self.word_owner, dtype=np.int64), counts, starts, flat)
        return self._word_arrays

    def _add_tokens(self, tokens: list[str]):
        """Hash the n-grams of tokens not seen before, once, and file their in-vocabulary columns."""
        V = self.size
        hashes, token_idx = _char_grams(tokens)
        cols = self.grams.get(hashes)
        hit = cols >= 0
        keys, each, _ = _group(token_idx[hit] * V + cols[hit])
        reps = np.bincount(each, minlength=len(keys))
        count = np.bincount(keys // V, minlength=len(tokens))
        base = len(self.token_ids)
        for k, t in enumerate(tokens):
            self.token_ids[t] = base + k
        ws = [words(t) for t in tokens]
        self.token_owner.extend(np.array([self._name(lexical._lemma(w[0]) if w else t) for t, w in zip(tokens, ws)],
                                         dtype=np.int64))
        self.token_start.extend(self.token_cols.size + np.concatenate([[0], np.cumsum(count)[:-1]]))
        self.token_count.extend(count)
        self.token_cols.extend(keys % V)
        self.token_reps.extend(reps)

    def analyse(self, texts: list[str], analyzer: str, idf: np.ndarray) -> Analysis:
        with self.lock:
            if len(self.word_ids) + len(self.token_ids) > _WORD_CACHE_LIMIT:  # bounded on endless streams
                self._reset()
            return self._analyse(texts, analyzer, idf)

    def _analyse(self, texts: list[str], analyzer: str, idf: np.ndarray) -> Analysis:
        V, n = self.size, len(texts)
        lowered = [t.lower() for t in texts]
        keys = [np.zeros(0, dtype=np.int64)]
        reps = [np.zeros(0, dtype=np.int64)]
        parts: dict = {"n_lemma": 0, "lemma_owner": np.zeros(0, dtype=np.int64),
                       "pair_m": np.zeros(0), "pair_owner": np.zeros(0, dtype=np.int64)}
        if "lemma" in analyzer:
            found: list[str] = []
            per_text: list[int] = []
            for low in lowered:
                ws = _WORD.findall(low)
                found.extend(ws)
                per_text.append(len(ws))
            get = self.word_ids.get
            ids = [get(w, -1) for w in found]
            for k, i in enumerate(ids):
                if i < 0:
                    ids[k] = self.word_ids.get(found[k], -1)
                    if ids[k] < 0:
                        ids[k] = self._add_word(found[k])
            owner, counts, starts, flat = self._words_as_arrays()
            ids_a = np.asarray(ids, dtype=np.int64)
            k = counts[ids_a]
            rows = np.repeat(np.repeat(np.arange(n, dtype=np.int64), per_text), k)
            cols = flat[_expand(starts[ids_a], k)]
            keys[0], reps[0] = rows * V + cols, np.ones(len(rows), dtype=np.int64)
            parts["n_lemma"], parts["lemma_owner"] = len(rows), np.repeat(owner[ids_a], k)
        if "char" in analyzer:
            tokens: list[str] = []
            per_text = []
            for low in lowered:
                split = low.split()
                tokens.extend(split)
                per_text.append(len(split))
            get = self.token_ids.get
            ids = [get(t, -1) for t in tokens]
            new = list(dict.fromkeys(t for t, i in zip(tokens, ids) if i < 0))
            if new:
                self._add_tokens(new)
                ids = [get(t) for t in tokens]
            # each token type once per row, with its number of occurrences m there
            row_type, occurrence_type, _ = _group(np.repeat(np.arange(n, dtype=np.int64), per_text)
                                                  * len(self.token_ids) + np.asarray(ids, dtype=np.int64))
            m = np.bincount(occurrence_type, minlength=len(row_type))
            t_row, t_id = row_type // len(self.token_ids), row_type % len(self.token_ids)
            k = self.token_count.values[t_id]
            at = _expand(self.token_start.values[t_id], k)
            keys.append(np.repeat(t_row, k) * V + self.token_cols.values[at])
            reps.append(self.token_reps.values[at] * np.repeat(m, k))
            parts["pair_m"] = np.repeat(m, k).astype(np.float64)
            parts["pair_owner"] = np.repeat(self.token_owner.values[t_id], k)
        all_keys, all_reps = np.concatenate(keys), np.concatenate(reps)
        # one sort groups every occurrence by (row, column): term counts, and later the attribution
        distinct, group, first = _group(all_keys)
        tf = np.bincount(group, weights=all_reps, minlength=len(distinct))
        X = _tfidf(distinct, tf, n, V, idf)
        parts.update(keys=all_keys, group=group, first=first)
        return Analysis(X, parts, self.names)


def _group(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Group equal keys (non-negative int64): the distinct keys in order, each key's group, and the position of
    each group's first key. One plain sort of key and position packed into one integer (a sort of plain integers
    is several times faster than an argsort or ``np.unique(..., return_inverse=True)``)."""
    n = len(keys)
    if n == 0:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, empty
    bits = n.bit_length()
    top = int(keys.max())
    if top.bit_length() + bits <= 62:
        packed = np.sort((keys.astype(np.int64) << bits) | np.arange(n, dtype=np.int64))
        order, sorted_keys = packed & ((1 << bits) - 1), packed >> bits
    else:
        order = np.argsort(keys, kind="stable")
        sorted_keys = keys[order]
    starts = np.empty(n, dtype=bool)
    starts[0] = True
    np.not_equal(sorted_keys[1:], sorted_keys[:-1], out=starts[1:])
    group = np.empty(n, dtype=np.int64)
    group[order] = np.cumsum(starts) - 1
    return sorted_keys[starts], group, order[starts]


def _expand(starts: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Concatenated ranges ``starts[i] : starts[i] + counts[i]``."""
    total = int(counts.sum())
    offsets = np.cumsum(counts) - counts
    return np.repeat(starts - offsets, counts) + np.arange(total, dtype=np.int64)


def _tfidf(keys: np.ndarray, counts: np.ndarray, n_rows: int, n_cols: int, idf: np.ndarray) -> sp.csr_matrix:
    """Sublinear tf (1 + log count) times idf, rows scaled to unit length, from the sorted distinct keys
    ``row * n_cols + col`` and each one's count."""
    r, c = keys // n_cols, keys % n_cols
    vals = (1.0 + np.log(np.maximum(counts, 1))) * idf[c].astype(np.float64)
    norms = np.sqrt(np.bincount(r, weights=vals * vals, minlength=n_rows))
    norms[norms == 0] = 1.0
    vals = (vals / norms[r]).astype(np.float32)
    indptr = np.concatenate([[0], np.cumsum(np.bincount(r, minlength=n_rows))])
    return sp.csr_matrix((vals, c.astype(np.int32), indptr), shape=(n_rows, n_cols))
