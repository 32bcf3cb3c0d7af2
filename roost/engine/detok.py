"""Incremental detokenization with stop strings.

A byte-level BPE token can end in the middle of a UTF-8 character, and a stop
string can span several tokens. ``TextStream`` decodes the whole run of
generated tokens each step and releases only text that is final: complete
characters that cannot be the start of a stop string. Text of a matched stop
string is never released.
"""

from __future__ import annotations

from collections.abc import Callable

REPLACEMENT = "\ufffd"  # what a decoder gives for the bytes of an unfinished character


class TextStream:
    def __init__(self, decode: Callable[[list[int]], str], stop: list[str]):
        self._decode = decode
        self._stop = stop
        self.ids: list[int] = []
        self.text = ""  # all text released so far
        self.stopped = False  # a stop string matched
        self._base, self._base_text = 0, ""  # ids[:_base] decode to _base_text, ending on a whole character

    def _full(self) -> str:
        """The decoded text of all ids; only the ids after the last whole-character point are decoded again."""
        return self._base_text + self._decode(self.ids[self._base :])

    def add(self, token_id: int) -> str:
        """Add a token; return the text that became final (maybe empty). Sets ``stopped`` on a stop string."""
        self.ids.append(token_id)
        full = self._full()
        if not full.endswith(REPLACEMENT):  # byte-level decoding of what follows can't change this text
            self._base, self._base_text = len(self.ids), full
        ready = full.rstrip(REPLACEMENT)
        if self._stop:
            start = max(0, len(self.text) - max(map(len, self._stop)) + 1)
            hits = [i for i in (ready.find(s, start) for s in self._stop) if i >= 0]
            if hits:
                self.stopped = True
                return self._release(ready[: min(hits)])
            ready = ready[: len(ready) - self._held(ready)]
        return self._release(ready)

    def flush(self) -> str:
        """At the end of generation: release whatever is held (no stop string matched)."""
        return "" if self.stopped else self._release(self._full())

    def _held(self, text: str) -> int:
        """Length of the longest tail of ``text`` that is a proper prefix of a stop string."""
        for n in range(min(len(text), max(map(len, self._stop)) - 1), 0, -1):
            tail = text[-n:]
            if any(s.startswith(tail) for s in self._stop):
                return n
        return 0

    def _release(self, text: str) -> str:
        if len(text) <= len(self.text):
            return ""
        delta = text[len(self.text) :]
        self.text = text
        return delta
