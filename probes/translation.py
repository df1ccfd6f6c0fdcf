"""Which form a seq2seq model's translation uses: the words of a text as matched (case and accents
ignored), the words that mark each form of a phrase, and the classification of a generated output
by the target words of its variant (``classify_output``; ``NEITHER`` when no form or several)."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping, Sequence

NEITHER = "neither"
"""The class of a generated output that uses no target's words, or the words of several."""


def words_of(text: str) -> tuple[str, ...]:
    """The words of a text for matching: case folded, accents removed, split at anything that is
    not a letter or digit ("L'infirmière" -> ("l", "infirmiere"))."""
    folded = unicodedata.normalize("NFKD", text.casefold())
    plain = "".join(ch for ch in folded if not unicodedata.combining(ch))
    return tuple(re.findall(r"\w+", plain))


def _contains(words: Sequence[str], phrase: Sequence[str]) -> bool:
    n = len(phrase)
    return n > 0 and any(tuple(words[i : i + n]) == tuple(phrase) for i in range(len(words) - n + 1))


def classify_output(text: str, target_words: Mapping[str, Sequence[str]]) -> str:
    """Which target's form a generated output uses: the one name whose words occur in it, else
    ``NEITHER`` (no target's words, or the words of more than one)."""
    words = words_of(text)
    found = [
        name for name, phrases in target_words.items() if any(_contains(words, words_of(p)) for p in phrases)
    ]
    return found[0] if len(found) == 1 else NEITHER


def default_form_words(forms: Mapping[str, str]) -> dict[str, tuple[str, ...]]:
    """Words that mark each form of a phrase: the last word (the noun) when the forms' last words
    all differ ("die Ärztin" / "der Arzt" -> "Ärztin" / "Arzt"), else the whole phrase
    ("la médecin" / "le médecin")."""
    last = {name: words_of(phrase)[-1:] for name, phrase in forms.items()}
    distinct = len({w for w in last.values()}) == len(last) and all(last.values())
    if distinct:
        return {name: (_last_word(phrase),) for name, phrase in forms.items()}
    return {name: (phrase.strip(),) for name, phrase in forms.items()}


def _last_word(phrase: str) -> str:
    pieces = re.findall(r"\w+", phrase)
    return pieces[-1] if pieces else phrase.strip()


def differing_words(targets: Mapping[str, str]) -> dict[str, tuple[str, ...]]:
    """Per target, the run of words where it differs from the other targets (common leading and
    trailing words removed); a run of words of at most 3 letters each (an article: "la" / "le") is
    widened by the next word. Empty when the targets do not differ.

    Not a mode of ``probes.reading.focus.differing_regions``, whose focus spans are characters of
    one text against one other, compared exactly: these are the words ``classify_output`` looks for
    in a generated translation, so all targets are compared at once, word by word as
    ``words_of`` matches them (case and accents ignored: "Médecin" and "médecin" do not differ),
    and an article alone is not a form's marker, its noun is taken with it ("La pilote" /
    "Le pilote", where the edges diff gives "La" / "Le")."""
    if len(targets) < 2:
        return {}
    split = {name: text.split() for name, text in targets.items()}
    sequences = list(split.values())
    shortest = min(len(s) for s in sequences)
    start = 0
    while start < shortest and len({words_of(s[start]) for s in sequences}) == 1:
        start += 1
    end = 0
    while end < shortest - start and len({words_of(s[len(s) - 1 - end]) for s in sequences}) == 1:
        end += 1
    result: dict[str, tuple[str, ...]] = {}
    for name, words in split.items():
        stop = len(words) - end
        if end > 0 and all(len(w) <= 3 for w in words_of(" ".join(words[start:stop]))):
            stop += 1  # only short words differ (an article): take the noun after them too
        run = words[start:stop]
        if not run:
            return {}
        result[name] = (" ".join(run).strip(".,;:!?"),)
    return result
