"""Languages and scripts: BCP-47 language codes in their usual case, and which writing system a
text or a language uses, from Unicode character names: enough to tell Latin, Cyrillic, Arabic,
Devanagari, Han, Hiragana, Katakana, Hangul ... apart (the parallel format checks every text
against its language; the dashboard shows the scripts of a run's languages)."""

from __future__ import annotations

import re
import unicodedata
from collections import Counter

_BCP47 = re.compile(
    r"(?P<language>[A-Za-z]{2,3})"
    r"(?:-(?P<script>[A-Za-z]{4}))?"
    r"(?:-(?P<region>[A-Za-z]{2}|[0-9]{3}))?"
    r"(?P<variants>(?:-(?:[A-Za-z0-9]{5,8}|[0-9][A-Za-z0-9]{3}))*)\Z"
)


def canonical_language(code: str) -> str | None:
    """The BCP-47 code in its usual case (``zh-hant-tw`` -> ``zh-Hant-TW``), or None when ``code``
    does not have the shape language[-Script][-REGION][-variant...] (``en``, ``de-CH``, ``sr-Latn``)."""
    match = _BCP47.match(code.strip())
    if match is None:
        return None
    parts = [match["language"].lower()]
    if match["script"]:
        parts.append(match["script"].title())
    if match["region"]:
        parts.append(match["region"].upper())
    parts.extend(v.lower() for v in match["variants"].split("-") if v)
    return "-".join(parts)


def language_problem(code: str) -> str:
    """Why ``code`` is not a language code, and what to write instead."""
    hint = " (BCP-47 codes join their parts with '-', not '_')" if "_" in code else ""
    return f"{code!r} is not a BCP-47 language code{hint}; write a code such as en, de, zh-Hant or pt-BR"


# ------------------------------------------------------------------------------------- scripts

_NAMED_SCRIPTS = (
    "LATIN",
    "CYRILLIC",
    "GREEK",
    "ARMENIAN",
    "GEORGIAN",
    "HEBREW",
    "ARABIC",
    "SYRIAC",
    "THAANA",
    "DEVANAGARI",
    "BENGALI",
    "GURMUKHI",
    "GUJARATI",
    "ORIYA",
    "TAMIL",
    "TELUGU",
    "KANNADA",
    "MALAYALAM",
    "SINHALA",
    "THAI",
    "LAO",
    "TIBETAN",
    "MYANMAR",
    "KHMER",
    "ETHIOPIC",
    "HIRAGANA",
    "KATAKANA",
    "HANGUL",
)
_PREFIX_SCRIPTS = (
    ("CJK UNIFIED IDEOGRAPH", "Han"),
    ("CJK COMPATIBILITY IDEOGRAPH", "Han"),
    ("IDEOGRAPHIC ITERATION MARK", "Han"),
    ("FULLWIDTH LATIN", "Latin"),
    ("HALFWIDTH KATAKANA", "Katakana"),
    ("HALFWIDTH HANGUL", "Hangul"),
)

LANGUAGE_SCRIPTS: dict[str, frozenset[str]] = {
    **dict.fromkeys(
        [
            "en",
            "de",
            "fr",
            "es",
            "it",
            "pt",
            "nl",
            "tr",
            "sw",
            "pl",
            "cs",
            "sk",
            "sl",
            "hr",
            "bs",
            "sv",
            "da",
            "no",
            "nb",
            "nn",
            "fi",
            "et",
            "lv",
            "lt",
            "is",
            "ga",
            "cy",
            "id",
            "ms",
            "vi",
            "ro",
            "hu",
            "ca",
            "eu",
            "gl",
            "af",
            "sq",
            "az",
            "uz",
            "tl",
            "yo",
            "ig",
            "ha",
            "zu",
            "xh",
            "so",
            "mt",
            "lb",
            "eo",
        ],
        frozenset({"Latin"}),
    ),
    **dict.fromkeys(["ru", "uk", "be", "bg", "mk", "kk", "ky", "tg", "mn"], frozenset({"Cyrillic"})),
    "sr": frozenset({"Cyrillic", "Latin"}),
    **dict.fromkeys(["ar", "fa", "ur", "ps", "ug"], frozenset({"Arabic"})),
    **dict.fromkeys(["hi", "mr", "ne", "sa"], frozenset({"Devanagari"})),
    "he": frozenset({"Hebrew"}),
    "yi": frozenset({"Hebrew"}),
    "el": frozenset({"Greek"}),
    "hy": frozenset({"Armenian"}),
    "ka": frozenset({"Georgian"}),
    "bn": frozenset({"Bengali"}),
    "pa": frozenset({"Gurmukhi", "Arabic"}),
    "gu": frozenset({"Gujarati"}),
    "or": frozenset({"Oriya"}),
    "ta": frozenset({"Tamil"}),
    "te": frozenset({"Telugu"}),
    "kn": frozenset({"Kannada"}),
    "ml": frozenset({"Malayalam"}),
    "si": frozenset({"Sinhala"}),
    "th": frozenset({"Thai"}),
    "lo": frozenset({"Lao"}),
    "my": frozenset({"Myanmar"}),
    "km": frozenset({"Khmer"}),
    "am": frozenset({"Ethiopic"}),
    "ti": frozenset({"Ethiopic"}),
    "zh": frozenset({"Han"}),
    "yue": frozenset({"Han"}),
    "ja": frozenset({"Han", "Hiragana", "Katakana"}),
    "ko": frozenset({"Hangul", "Han"}),
}
"""The scripts each language is usually written in (a script subtag such as ``sr-Latn`` overrides)."""

_SUBTAG_SCRIPTS: dict[str, frozenset[str]] = {
    "Latn": frozenset({"Latin"}),
    "Cyrl": frozenset({"Cyrillic"}),
    "Arab": frozenset({"Arabic"}),
    "Deva": frozenset({"Devanagari"}),
    "Grek": frozenset({"Greek"}),
    "Hebr": frozenset({"Hebrew"}),
    "Hans": frozenset({"Han"}),
    "Hant": frozenset({"Han"}),
    "Hani": frozenset({"Han"}),
    "Jpan": frozenset({"Han", "Hiragana", "Katakana"}),
    "Hira": frozenset({"Hiragana"}),
    "Kana": frozenset({"Katakana"}),
    "Kore": frozenset({"Hangul", "Han"}),
    "Hang": frozenset({"Hangul"}),
    "Thai": frozenset({"Thai"}),
}


def script_of(char: str) -> str | None:
    """The script of one letter or combining mark (``"Latin"``, ``"Cyrillic"``, ``"Han"``,
    ``"Hiragana"`` ...; ``"Other"`` for scripts not named here); None for digits, punctuation,
    spaces and symbols. Read from the character's Unicode name."""
    if unicodedata.category(char)[0] not in "LM":
        return None
    name = unicodedata.name(char, "")
    for prefix, script in _PREFIX_SCRIPTS:
        if name.startswith(prefix):
            return script
    first = name.split(" ", 1)[0].split("-", 1)[0]
    if first in _NAMED_SCRIPTS:
        return first.title()
    return "Other" if unicodedata.category(char)[0] == "L" else None  # generic combining marks: None


def scripts_in(text: str) -> Counter[str]:
    """How many letters (and combining marks) of each script ``text`` has."""
    return Counter(s for s in map(script_of, text) if s is not None)


def expected_scripts(language: str) -> frozenset[str] | None:
    """The scripts a BCP-47 language is written in (its script subtag first), or None when unknown."""
    canonical = canonical_language(language)
    if canonical is None:
        return None
    parts = canonical.split("-")
    if len(parts) > 1 and len(parts[1]) == 4 and parts[1] in _SUBTAG_SCRIPTS:
        return _SUBTAG_SCRIPTS[parts[1]]
    return LANGUAGE_SCRIPTS.get(parts[0])
