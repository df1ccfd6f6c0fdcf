"""Function-word lists and content-word masks, per language, for the content_attribution_share metric.

The metric asks how much of a model's attribution falls on the words that carry a text's meaning
(content words: nouns, verbs, adjectives, adverbs, numbers, names) rather than on the grammar
around them (function words: the closed classes). This module says which characters of a text
belong to content words.

The lists (``probes/function_words/<lang>.txt``) were written for this tool from the closed
grammatical classes of each language: articles and determiners, pronouns, prepositions and
postpositions, conjunctions, auxiliary and copula verbs, particles. They were not checked by
native speakers. Off-the-shelf stop-word lists were not used: they list "good", "gut", "bon", "好"
or "不", the very words a sentiment model should rely on. Choices that hold in every language:

* Negation counts as **content**: not, no, never, nothing, nobody, without (en), nicht, kein (de),
  ne, pas, jamais, sans (fr), no, nunca, sin (es), değil, yok (tr), si, hakuna (sw), не, нет, без
  (ru), لا, لم, لن, ليس, غير (ar), नहीं, न, बिना (hi), 不, 没, 没有 (zh), ない (ja). Negation
  decides sentiment, so none of it is in a list.
* Degree and quantity words count as content (very, too, more, many, sehr, très, muy, çok, sana,
  очень, جدًا, बहुत, 很, 非常, とても): they are adverbs or graded quantifiers and set a
  sentiment's strength. Ungraded quantifiers (all, every, each, some, any, both) are function words.
* Numerals count as content; an indefinite article that is also the word for "one" (de ein,
  fr un, tr bir, hi एक) counts as the article, a function word.
* "Be", "have" as an auxiliary, "do" as an auxiliary and the modal verbs are function words;
  "become" and other linking verbs are content.

Words are runs of letters, marks and digits (``[\\p{L}\\p{M}\\p{N}]+``). An apostrophe splits
words; a word directly before an apostrophe is looked up with it (French ``l'``, ``qu'``), a word
directly after one with it in front (English ``'s``, ``'re``), then on its own. Keys are NFC and
case-folded; Turkish upper-case I and İ fold to ı and i, Russian ё to е, and Arabic keys lose their
short-vowel marks and tatweel and write every alef (أ إ آ ٱ) as ا.

Arabic writes some function words as prefixes of the next word (و and, ف so, ب with, ل for,
ال the). A word not in the Arabic list is looked up again with such prefixes stripped: an optional
و or ف, then an optional ب or ل, and an optional ال (لل for ل + ال); a remainder of two letters
or more that is in the list makes the whole word a function word (وهذا, بها, وكانت), while
والطعام stays content because طعام is not listed. Pronoun suffixes are not stripped: the common
preposition + pronoun forms (فيه, لها, عليه) are listed as they are.

Chinese and Japanese are written without spaces, so a run of text is scanned left to right with
greedy longest match against the list: matched characters are function, the rest content. A few
lines of those two lists start with ``+``: content words that contain a function-word character
(了解, 存在, とても, ずっと); the scanner keeps them whole as content, and they are not function
words. In Japanese a one-character kana particle (は, が, の, に, で, と, も ...) counts only
after a character that is not hiragana or before one that is not hiragana (or the end of the
run), never at the start of a run or before a character that cannot start a word (っ, ん, small
kana, the ら row); な counts only before a character that is not hiragana, and the final
particles ね, よ, わ, ぞ, ぜ only at the end of a run. So the も of とても, the な of 危ない and
the ね of 玉ねぎ are not taken for particles. The scan knows no grammar: greedy matching can
still take a particle out of the next word (にもてなす read as にも + てなす), and a particle
between two hiragana words is missed. It is a heuristic, and a metric built on it should say so.
"""

from __future__ import annotations

import functools
import unicodedata
from dataclasses import dataclass
from pathlib import Path

import regex

LIST_DIR = Path(__file__).parent / "function_words"

FUNCTION_WORD_LANGUAGES: frozenset[str] = frozenset(p.stem for p in LIST_DIR.glob("*.txt"))
"""Primary language subtags with a function-word list."""

_NO_SPACES = frozenset({"zh", "ja", "th", "lo", "km", "my", "bo", "yue"})
"""Languages whose usual script separates no words with spaces (Han, kana, Thai, Lao, Khmer,
Myanmar, Tibetan)."""
_NO_SPACE_SCRIPTS = frozenset(
    {"hani", "hans", "hant", "jpan", "hira", "kana", "hrkt", "thai", "laoo", "khmr", "mymr", "tibt"}
)

_WORD = regex.compile(r"[[\p{L}\p{M}\p{N}]--[\u02BC]]+", regex.V1)
"""Runs of letters, marks and digits; U+02BC (modifier letter apostrophe) is an apostrophe here."""
_APOSTROPHES = frozenset("'\u2019\u02bc")
_HIRAGANA = regex.compile(r"\p{Script=Hiragana}")
_ARABIC_MARKS = regex.compile(r"[\u0610-\u061A\u064B-\u065F\u0670\u06D6-\u06ED\u0640]")
_ALEFS = str.maketrans({"أ": "ا", "إ": "ا", "آ": "ا", "ٱ": "ا"})
_KANA_NO_START = frozenset("っんゃゅょぁぃぅぇぉゎらりるれろー")
"""Characters that start no Japanese word: a one-character particle is never followed by one."""
_KANA_FINAL = frozenset("ねよわぞぜ")
"""Sentence-final particles: they count only at the end of a run."""


def primary_language(lang: str) -> str:
    """The primary subtag of a BCP-47 tag, lower case: ``pt-BR`` -> ``pt``, ``zh-Hant`` -> ``zh``."""
    return lang.strip().replace("_", "-").split("-")[0].lower()


def writes_without_spaces(lang: str) -> bool:
    """Whether text in this language is written without spaces between words (zh, ja, th, lo, km,
    my, bo, yue), so that a word count means nothing. A script subtag decides when there is one:
    ``zh-Latn`` (pinyin) has spaces, ``zh-Hant`` has none."""
    subtags = lang.strip().replace("_", "-").split("-")
    script = next((s.lower() for s in subtags[1:] if len(s) == 4 and s.isalpha()), None)
    if script is not None:
        return script in _NO_SPACE_SCRIPTS
    return subtags[0].lower() in _NO_SPACES


def _key(text: str, lang: str) -> str:
    """The lookup key of a word (or an entry) in ``lang``'s list."""
    if lang == "tr":
        text = text.replace("I", "ı").replace("İ", "i")
    key = unicodedata.normalize("NFC", text.casefold())
    key = key.replace("\u2019", "'").replace("\u02bc", "'")
    if lang == "ru":
        key = key.replace("ё", "е")
    elif lang == "ar":
        key = _ARABIC_MARKS.sub("", key).translate(_ALEFS)
    return key


@dataclass(frozen=True)
class _Lexicon:
    lang: str
    function: frozenset[str]
    protected: frozenset[str]
    """Content words the longest-match scanner keeps whole (``+`` lines)."""
    max_len: int


@functools.cache
def _lexicon(lang: str) -> _Lexicon | None:
    if lang not in FUNCTION_WORD_LANGUAGES:
        return None
    function: set[str] = set()
    protected: set[str] = set()
    for raw in (LIST_DIR / f"{lang}.txt").read_text(encoding="utf-8").splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        if line.startswith("+"):
            protected.add(_key(line[1:].strip(), lang))
        else:
            function.add(_key(line, lang))
    max_len = max(len(w) for w in function | protected)
    return _Lexicon(lang, frozenset(function), frozenset(protected - function), max_len)


def function_words(lang: str) -> frozenset[str] | None:
    """The function words of a language (NFC, case-folded keys), or None when it has no list.

    Any BCP-47 tag works; its primary subtag picks the list (``pt-BR`` -> ``pt``)."""
    lexicon = _lexicon(primary_language(lang))
    return None if lexicon is None else lexicon.function


def _arabic_stems(key: str) -> list[str]:
    """The key with its proclitics stripped: و/ف, then ب/ل, and ال (لل for ل + ال)."""
    stems = [key]
    if len(key) > 2 and key[0] in "وف":
        stems.append(key[1:])
    out: list[str] = []
    for stem in stems:
        if stem.startswith("لل") and len(stem) > 3:
            out.append(stem[2:])
        if stem.startswith("ال") and len(stem) > 3:
            out.append(stem[2:])
        if stem[:1] in ("ب", "ل") and len(stem) > 2:
            out.append(stem[1:])
            if stem[1:3] == "ال" and len(stem) > 4:
                out.append(stem[3:])
    return [s for s in stems[1:] + out if len(s) >= 2]


def _is_function_word(text: str, start: int, end: int, lexicon: _Lexicon) -> bool:
    word = _key(text[start:end], lexicon.lang)
    words = lexicon.function
    if end < len(text) and text[end] in _APOSTROPHES and word + "'" in words:
        return True
    if start > 1 and text[start - 1] in _APOSTROPHES and _WORD.match(text[start - 2]) and "'" + word in words:
        return True
    if word in words:
        return True
    return lexicon.lang == "ar" and any(stem in words for stem in _arabic_stems(word))


def _kana_particle_counts(text: str, i: int, start: int, end: int) -> bool:
    """Whether the one-character kana entry at ``i`` (in the run ``start:end``) is a particle."""
    prev = text[i - 1] if i > start else None
    nxt = text[i + 1] if i + 1 < end else None
    if prev is None or (nxt is not None and nxt in _KANA_NO_START):
        return False
    if text[i] in _KANA_FINAL:
        return nxt is None
    next_is_kana = nxt is not None and bool(_HIRAGANA.match(nxt))
    if text[i] == "な":
        return not next_is_kana
    return not _HIRAGANA.match(prev) or not next_is_kana


def _scan(text: str, start: int, end: int, lexicon: _Lexicon, mask: list[bool]) -> None:
    """Greedy longest match over one run of a language written without spaces."""
    i = start
    while i < end:
        step, content = 1, True
        for length in range(min(lexicon.max_len, end - i), 0, -1):
            key = _key(text[i : i + length], lexicon.lang)
            if key in lexicon.protected:
                step = length
                break
            if key in lexicon.function:
                if (
                    length == 1
                    and lexicon.lang == "ja"
                    and _HIRAGANA.match(text[i])
                    and not _kana_particle_counts(text, i, start, end)
                ):
                    continue
                step, content = length, False
                break
        for j in range(i, i + step):
            mask[j] = content
        i += step


def content_mask(text: str, lang: str) -> list[bool] | None:
    """Per character of ``text``: True when it belongs to a content word, False for function words,
    white space and punctuation. None when the language has no function-word list."""
    lexicon = _lexicon(primary_language(lang))
    if lexicon is None:
        return None
    mask = [False] * len(text)
    scan = writes_without_spaces(lang)
    for match in _WORD.finditer(text):
        start, end = match.span()
        if scan:
            _scan(text, start, end, lexicon, mask)
        elif not _is_function_word(text, start, end, lexicon):
            for j in range(start, end):
                mask[j] = True
    return mask
