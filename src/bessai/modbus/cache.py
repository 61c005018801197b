"""The raw words of a device as last read, with when each was read.

Decoded values lose what a re-serving server needs (unknown enum codes, padding in strings,
unmapped registers inside a block), so the client keeps the words themselves: every successful
FC03 answer is stored here, register by register, with the monotonic time it arrived. The
proxy (`bessai.proxy`) re-serves these words; nothing here decides whether they are fresh.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence


class RegisterCache:
    """Address -> (raw word, monotonic time of the read that brought it)."""

    __slots__ = ("_words",)

    def __init__(self) -> None:
        self._words: dict[int, tuple[int, float]] = {}

    def store(self, address: int, registers: Sequence[int], at: float) -> None:
        """Keep the words of one read that started at `address`."""
        words = self._words
        for offset, word in enumerate(registers):
            words[address + offset] = (word, at)

    def get(self, address: int) -> tuple[int, float] | None:
        return self._words.get(address)

    def snapshot(self) -> dict[int, tuple[int, float]]:
        """A copy, safe to keep while the client goes on reading."""
        return dict(self._words)

    def __len__(self) -> int:
        return len(self._words)

    def __iter__(self) -> Iterator[int]:
        return iter(self._words)
