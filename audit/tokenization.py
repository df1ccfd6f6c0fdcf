"""How well a tokenizer covers a text: the token, word and character counts of the ``examples`` table.

Every variant of every probe set gets these counts, taken on the whole text (before truncation,
special tokens not counted); the multilingual metrics (audit/metrics/multilingual.py) turn them
into fertility, unknown-token and byte-fallback rates per language.

- words: runs of letters, combining marks and digits (``[\\p{L}\\p{M}\\p{N}]+``), so Devanagari
  vowel signs and Arabic diacritics stay inside their word. Scripts written without spaces
  (Chinese, Japanese, Thai ...) have no such runs to count: ``n_words`` is None there.
- characters: every character that is not white space, after Unicode NFC.
- unknown tokens: the tokenizer's unknown token (WordPiece's ``[UNK]``, SentencePiece's ``<unk>``),
  and the characters they stand for: WordPiece turns a whole unknown word into one ``[UNK]``, so
  the share of tokens understates how much of a text the model cannot see (Hindi on MiniLM: 8% of
  the tokens, about 20% of the characters).
- byte-fallback tokens: tokens that stand for raw bytes rather than whole characters: SentencePiece
  byte pieces (``<0xE4>``), and byte-level BPE tokens that decode to part of a character (U+FFFD).
  A text whose characters are missing from the vocabulary comes out as such tokens instead of
  unknown ones: both say the tokenizer does not really cover the text.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import regex

from probes.function_words import writes_without_spaces

WORD = regex.compile(r"[\p{L}\p{M}\p{N}]+")
BYTE_PIECE = regex.compile(r"^<0x[0-9A-Fa-f]{2}>$")


@dataclass(frozen=True)
class TokenCounts:
    """One text's coverage by the tokenizer (see the module docstring)."""

    n_text_tokens: int
    n_words: int | None
    n_chars: int
    n_unknown: int
    n_unknown_chars: int | None
    """Characters (other than white space) inside unknown tokens; None without character offsets."""
    n_byte_fallback: int


def count_words(text: str, lang: str) -> int | None:
    """Words of a text (None for languages written without spaces between words)."""
    if writes_without_spaces(lang):
        return None
    return len(WORD.findall(unicodedata.normalize("NFC", text)))


def count_chars(text: str) -> int:
    return sum(not c.isspace() for c in unicodedata.normalize("NFC", text))


class ByteTokens:
    """Which token ids stand for bytes rather than characters, decided once per id."""

    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer = tokenizer
        self.known: dict[int, bool] = {}

    def __call__(self, token_id: int) -> bool:
        if token_id not in self.known:
            piece = self.tokenizer.convert_ids_to_tokens(token_id)
            decoded = self.tokenizer.decode([token_id])
            self.known[token_id] = bool(BYTE_PIECE.match(str(piece))) or "\ufffd" in decoded
        return self.known[token_id]


def token_counts(tokenizer: Any, texts: Sequence[str], langs: Sequence[str]) -> list[TokenCounts]:
    """The coverage counts of each text under this tokenizer."""
    if not texts:
        return []
    fast = bool(getattr(tokenizer, "is_fast", False))
    encoded = tokenizer(list(texts), add_special_tokens=False, verbose=False, return_offsets_mapping=fast)
    offsets = encoded["offset_mapping"] if fast else [None] * len(texts)
    unknown = tokenizer.unk_token_id
    is_byte = ByteTokens(tokenizer)
    counts = []
    for text, lang, token_ids, spans in zip(texts, langs, encoded["input_ids"], offsets, strict=True):
        ids = np.asarray(token_ids, dtype=np.int64)
        unknown_chars = None
        if spans is not None and unknown is not None:
            unknown_chars = sum(
                count_chars(text[start:end])
                for token, (start, end) in zip(token_ids, spans, strict=True)
                if token == unknown
            )
        byte_ids = [int(t) for t in np.unique(ids) if is_byte(int(t))]
        counts.append(
            TokenCounts(
                n_text_tokens=int(ids.size),
                n_words=count_words(text, lang),
                n_chars=count_chars(text),
                n_unknown=int((ids == unknown).sum()) if unknown is not None else 0,
                n_unknown_chars=unknown_chars,
                n_byte_fallback=int(np.isin(ids, byte_ids).sum()),
            )
        )
    return counts
