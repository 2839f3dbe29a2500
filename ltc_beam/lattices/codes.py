"""Binary codes behind the larger lattices: Reed-Muller RM(1,4), the hexacode and the Golay code."""

from __future__ import annotations

import itertools

import numpy as np

# GF(4) = {0, 1, w, w^2} as 0, 1, 2, 3; addition is XOR.
_GF4_MUL = np.array([[0, 0, 0, 0], [0, 1, 2, 3], [0, 2, 3, 1], [0, 3, 1, 2]], dtype=np.int64)


def reed_muller_1_4() -> np.ndarray:
    """The 32 codewords of RM(1,4) (length 16, minimum weight 8) as a 0/1 array."""
    points = np.array(list(itertools.product([0, 1], repeat=4)), dtype=np.int64)  # 16 x 4
    words = []
    for a in itertools.product([0, 1], repeat=4):
        for c in (0, 1):
            words.append((points @ np.array(a) + c) % 2)
    return np.array(words, dtype=np.int64)


def hexacode() -> np.ndarray:
    """The 64 hexacode words ``(a, b, c, f(1), f(w), f(w^2))`` with ``f(x) = a x^2 + b x + c``."""
    words = []
    for a, b, c in itertools.product(range(4), repeat=3):
        word = [a, b, c]
        for x in (1, 2, 3):
            word.append(_GF4_MUL[a, _GF4_MUL[x, x]] ^ _GF4_MUL[b, x] ^ c)
        words.append(word)
    return np.array(words, dtype=np.int64)


# Row labels of the MOG: a column's score is the GF(4) sum of the labels of its set bits.
MOG_ROW_LABELS = np.array([0, 1, 2, 3], dtype=np.int64)


def mog_score(column_bits: np.ndarray) -> np.ndarray:
    """GF(4) score of 4-bit MOG columns (last axis of length 4)."""
    score = np.zeros(column_bits.shape[:-1], dtype=np.int64)
    for row, label in enumerate(MOG_ROW_LABELS):
        score ^= column_bits[..., row] * label
    return score


def golay_code() -> np.ndarray:
    """The 4096 words of the extended binary Golay code (length 24, minimum weight 8).

    Coordinates follow the MOG: coordinate ``4 * column + row`` of a 4 x 6 array. A 0/1
    array is a codeword iff every column's parity equals the top row's parity and the
    column scores form a hexacode word.
    """
    columns = np.array(list(itertools.product([0, 1], repeat=4)), dtype=np.int64)  # 16 x 4
    scores = mog_score(columns)
    parities = columns.sum(-1) % 2
    hexa = {tuple(w) for w in hexacode()}
    words = []
    for parity in (0, 1):
        choices = [np.flatnonzero((scores == s) & (parities == parity)) for s in range(4)]
        for word in hexa:
            for picks in itertools.product(*(choices[s] for s in word)):
                array = columns[list(picks)]  # 6 x 4
                if array[:, 0].sum() % 2 == parity:
                    words.append(array.reshape(-1))
    return np.array(words, dtype=np.int64)


def gf2_basis(words: np.ndarray) -> np.ndarray:
    """Rows of ``words`` that form a basis of their GF(2) span (greedy elimination)."""
    chosen: list[int] = []
    reduced: list[np.ndarray] = []
    pivots: list[int] = []
    for index, word in enumerate(words % 2):
        v = word.copy()
        for pivot, row in zip(pivots, reduced):
            if v[pivot]:
                v ^= row
        if v.any():
            chosen.append(index)
            reduced.append(v)
            pivots.append(int(np.flatnonzero(v)[0]))
    return words[chosen]
