"""MinHash signatures for a whole batch at once, bit-identical to datasketch's.

datasketch's ``MinHash.update_batch`` costs tens of microseconds a post in
Python; here the shingle hashes of a batch are concatenated and permuted with
one numpy outer product and a ``minimum.reduceat``. The permutations are taken
from a datasketch ``MinHash`` (scheme ``affine32``) and the LSH band layout from
``MinHashLSH``'s optimal parameters, so a row of :meth:`MinHasher.signatures`
equals ``MinHash(num_perm, seed, scheme="affine32")`` updated with the same
shingle hashes (tests check this).
"""

from __future__ import annotations

import numpy as np

_FMIX1, _FMIX2 = np.uint32(0x85EBCA6B), np.uint32(0xC2B2AE35)
_P1, _P2 = np.uint64(0x9E3779B97F4A7C15), np.uint64(0xC2B2AE3D27D4EB4F)
_M1, _M2 = np.uint64(0xFF51AFD7ED558CCD), np.uint64(0xC4CEB9FE1A85EC53)
_ONE64 = np.uint64(1)


def fmix32(h: np.ndarray) -> np.ndarray:
    """MurmurHash3's finalizer: datasketch pre-mixes every input hash with it."""
    h = h ^ (h >> np.uint32(16))
    h = h * _FMIX1
    h = h ^ (h >> np.uint32(13))
    h = h * _FMIX2
    return h ^ (h >> np.uint32(16))


def _fmix64(h: np.ndarray) -> np.ndarray:
    h = h ^ (h >> np.uint64(33))
    h = h * _M1
    h = h ^ (h >> np.uint64(33))
    h = h * _M2
    return h ^ (h >> np.uint64(33))


class _Powers:
    """P^i and P^-i modulo 2^64 for i < n, grown on demand (P odd, so it is invertible)."""

    P = np.uint64(0x100000001B3)
    P_INV = np.uint64(pow(0x100000001B3, -1, 1 << 64))

    def __init__(self) -> None:
        self.pw = self.inv = np.ones(1, dtype=np.uint64)

    def get(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        if len(self.pw) < n:
            m = max(n, 2 * len(self.pw))
            self.pw, self.inv = (
                np.cumprod(np.full(m, p, dtype=np.uint64), dtype=np.uint64) for p in (self.P, self.P_INV)
            )
            self.pw, self.inv = np.concatenate([[_ONE64], self.pw[:-1]]), np.concatenate([[_ONE64], self.inv[:-1]])
        return self.pw[:n], self.inv[:n]


_POWERS = _Powers()


def shingle_hashes(texts: list[str], k: int) -> tuple[np.ndarray, np.ndarray]:
    """32-bit hashes of each text's lower-cased word k-grams, for a whole batch at once.

    Returns (hashes, counts): ``counts[d]`` consecutive hashes belong to text d. A
    text of k words or fewer has one shingle (all its words); an empty one has one
    constant shingle. Words are split on spaces and newlines (clean_text has
    turned all other whitespace into spaces). A word's hash is a polynomial
    rolling hash of its UTF-8 bytes, taken from one prefix sum over the batch.
    """
    n = len(texts)
    raw = np.frombuffer("\x00".join(texts).lower().encode("utf-8"), dtype=np.uint8)
    sep = (raw == 32) | (raw == 10) | (raw == 0)
    prev_sep = np.concatenate([[True], sep[:-1]])
    next_sep = np.concatenate([sep[1:], [True]])
    starts = np.flatnonzero(~sep & prev_sep)
    ends = np.flatnonzero(~sep & next_sep) + 1
    pw, inv = _POWERS.get(len(raw) + 1)
    prefix = np.zeros(len(raw) + 1, dtype=np.uint64)
    np.cumsum(raw.astype(np.uint64) * pw[: len(raw)], out=prefix[1:])
    words = _fmix64((prefix[ends] - prefix[starts]) * inv[starts] + (ends - starts).astype(np.uint64))
    doc = np.cumsum(raw == 0)[starts] if len(starts) else np.zeros(0, dtype=np.int64)
    per_doc = np.bincount(doc, minlength=n)
    first = np.zeros(n, dtype=np.int64)
    np.cumsum(per_doc[:-1], out=first[1:])
    counts = np.maximum(per_doc - k + 1, 1)
    # shingle s of doc d starts at word first[d] + s and spans L = min(k, per_doc[d]) words
    sdoc = np.repeat(np.arange(n), counts)
    sstart = first[sdoc] + (np.arange(len(sdoc)) - np.repeat(np.cumsum(counts) - counts, counts))
    span = np.minimum(k, per_doc)[sdoc]
    h = np.full(len(sdoc), _P1, dtype=np.uint64)
    padded = np.concatenate([words, np.zeros(k, dtype=np.uint64)])
    for i in range(k):
        h = np.where(i < span, (h ^ padded[sstart + i]) * _P2, h)
    return (_fmix64(h) >> np.uint64(32)).astype(np.uint32), counts


class MinHasher:
    def __init__(self, num_perm: int = 128, threshold: float = 0.8, shingle_words: int = 3, seed: int = 1):
        from datasketch import MinHash, MinHashLSH

        a, b = MinHash(num_perm=num_perm, seed=seed, scheme="affine32").permutations
        self.a, self.b = a.astype(np.uint32), b.astype(np.uint32)
        lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)  # for its optimal (bands, rows) only
        self.bands, self.rows = lsh.b, lsh.r
        self.num_perm, self.k = num_perm, shingle_words

    def signatures(self, texts: list[str], chunk: int = 64) -> np.ndarray:
        """(n, num_perm) uint32 MinHash signatures of the texts' word shingles."""
        hashes, counts = shingle_hashes(texts, self.k)
        return self.signatures_of(hashes, counts, chunk)

    def signatures_of(self, hashes: np.ndarray, counts: np.ndarray, chunk: int = 64) -> np.ndarray:
        """Signatures from shingle hashes, ``counts[d]`` of them (at least 1) per document, in order."""
        out = np.empty((len(counts), self.num_perm), dtype=np.uint32)
        offsets = np.zeros(len(counts) + 1, dtype=np.int64)
        np.cumsum(counts, out=offsets[1:])
        mixed = fmix32(hashes)
        for lo in range(0, len(counts), chunk):
            hi = min(lo + chunk, len(counts))
            perm = np.multiply.outer(mixed[offsets[lo] : offsets[hi]], self.a)
            perm += self.b
            out[lo:hi] = np.minimum.reduceat(perm, offsets[lo:hi] - offsets[lo], axis=0)
        return out

    def band_keys(self, sigs: np.ndarray) -> np.ndarray:
        """(n, bands) uint64: one hash per LSH band of ``rows`` signature values, band number mixed in."""
        n = sigs.shape[0]
        keys = np.empty((n, self.bands), dtype=np.uint64)
        s64 = sigs.astype(np.uint64)
        with np.errstate(over="ignore"):
            for band in range(self.bands):
                h = np.full(n, np.uint64(band + 1) * _P1, dtype=np.uint64)
                for j in range(band * self.rows, (band + 1) * self.rows):
                    h = (h ^ s64[:, j]) * _P2
                h ^= h >> np.uint64(33)
                h *= _M1
                keys[:, band] = h ^ (h >> np.uint64(33))
        return keys
