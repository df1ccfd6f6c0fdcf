"""Function-word lists and content-word masks (probes/function_words.py), checked on sentences of the
built-in multilingual set: the words a sentiment model should rely on (adjectives, verbs, negation)
come out as content, articles, copulas and particles as function words."""

from __future__ import annotations

import unicodedata
from functools import cache
from pathlib import Path

import pytest
import regex
import yaml

from probes.function_words import (
    FUNCTION_WORD_LANGUAGES,
    LIST_DIR,
    content_mask,
    function_words,
    primary_language,
    writes_without_spaces,
)
from probes.loaders import BUILTIN_DIR

ROOT = Path(__file__).parent.parent


@cache
def _texts() -> dict[str, dict[str, str]]:
    data = yaml.safe_load((BUILTIN_DIR / "multilingual.yaml").read_text(encoding="utf-8"))
    return {inst["id"]: inst["texts"] for inst in data["instances"]}


def _kind(text: str, lang: str, word: str, occurrence: int = 0) -> str:
    """'content', 'function' or 'mixed': how the mask marks the letters of ``word`` (a substring of
    ``text``; ``occurrence`` picks among repeats). Punctuation inside it (an apostrophe) is skipped."""
    if writes_without_spaces(lang):
        pattern = regex.escape(word)
    else:  # a whole word, not a piece of a longer one ("wa" is not in "Uwanja")
        pattern = r"(?<![\p{L}\p{M}\p{N}])" + regex.escape(word)
        if word[-1] not in "'’":  # an elision ("l'") runs into the next word
            pattern += r"(?![\p{L}\p{M}\p{N}])"
    start = list(regex.finditer(pattern, text))[occurrence].start()
    mask = content_mask(text, lang)
    assert mask is not None and len(mask) == len(text)
    flags = {mask[i] for i in range(start, start + len(word)) if unicodedata.category(text[i])[0] in "LMN"}
    assert flags, word
    return "mixed" if len(flags) == 2 else ("content" if flags.pop() else "function")


# (language, instance id, words that must be content, words that must be function)
CASES = [
    ("en", "pos-001", ["food", "delicious", "absolutely"], ["The", "at", "this", "was"]),
    ("en", "neg-002", ["dirty", "not", "work"], ["The", "was", "and", "did"]),
    ("de", "pos-001", ["Essen", "köstlich", "wirklich"], ["Das", "in", "diesem", "war"]),
    ("de", "neg-002", ["schmutzig", "nicht", "funktionierte"], ["Das", "war", "und", "die"]),
    ("fr", "neg-002", ["sale", "ne", "pas", "hôtel", "marchait"], ["La", "d'", "était", "et"]),
    ("fr", "neu-004", ["hôtel", "coin"], ["L'", "se", "au", "de", "la"]),
    ("es", "neg-002", ["sucia", "no", "funcionaba"], ["La", "del", "estaba", "y", "el"]),
    ("es", "pos-001", ["deliciosa", "comida"], ["La", "de", "este", "estaba"]),
    ("tr", "neg-047", ["güvenli", "değil", "paslı"], ["ve"]),
    ("tr", "pos-003", ["harika", "telefonun"], ["Bu", "bir", "ve", "var"]),
    ("sw", "pos-001", ["Chakula", "kitamu", "sana"], ["katika", "huu", "kilikuwa"]),
    ("sw", "neg-047", ["salama", "si", "michezo"], ["wa", "na"]),
    ("ru", "neg-002", ["грязным", "не", "работал"], ["в", "был", "а"]),
    ("ru", "pos-001", ["восхитительной", "Еда"], ["в", "этом", "была"]),
    ("ar", "pos-001", ["لذيذًا", "للغاية", "الطعام"], ["كان", "في", "هذا"]),
    ("ar", "neg-002", ["متسخة", "ولم", "يعمل"], ["كانت", "يكن"]),
    ("ar", "pos-042", ["والطعام", "بالموسيقى"], []),
    ("ar", "neg-011", ["محروقًا", "متسخًا"], ["كان", "وكان"]),
    ("hi", "neg-002", ["गंदा", "नहीं", "काम"], ["का", "था", "और"]),
    ("hi", "pos-001", ["स्वादिष्ट", "बेहद", "खाना"], ["इस", "का", "था"]),
    ("zh", "pos-001", ["好吃", "餐厅", "太", "真"], ["这家", "的", "是", "了"]),
    ("zh", "neg-011", ["干净", "不", "焦味"], ["也", "有"]),
    ("zh", "pos-009", ["音乐会", "精彩"], ["的", "从", "都"]),
    ("zh", "neu-014", ["手机", "平板"], ["这个", "可以", "在", "和"]),
    ("ja", "pos-001", ["料理", "おいしかっ", "本当"], ["この", "の", "は"]),
    ("ja", "pos-002", ["清潔", "静か", "とても", "快適"], ["の", "は", "だった"]),
    ("ja", "neg-002", ["汚く", "動かなかっ"], ["の", "は", "も"]),
]


@pytest.mark.parametrize(("lang", "instance", "content", "function"), CASES)
def test_builtin_sentences(lang: str, instance: str, content: list[str], function: list[str]) -> None:
    text = _texts()[instance][lang]
    for word in content:
        assert _kind(text, lang, word) == "content", (word, text)
    for word in function:
        assert _kind(text, lang, word) == "function", (word, text)


def test_every_builtin_language_has_a_list() -> None:
    data = yaml.safe_load((BUILTIN_DIR / "multilingual.yaml").read_text(encoding="utf-8"))
    assert set(data["languages"]) == set(FUNCTION_WORD_LANGUAGES)
    assert {"en", "de", "fr", "es", "tr", "sw", "ru", "ar", "hi", "zh", "ja"} == FUNCTION_WORD_LANGUAGES


@pytest.mark.parametrize("lang", sorted(FUNCTION_WORD_LANGUAGES))
def test_every_builtin_text_is_mostly_content_but_not_all(lang: str) -> None:
    """Over the whole set a language's letters are neither all content nor all function words."""
    content = function = 0
    for texts in _texts().values():
        text = texts[lang]
        mask = content_mask(text, lang)
        assert mask is not None and len(mask) == len(text)
        for char, flag in zip(text, mask, strict=True):
            if unicodedata.category(char)[0] not in "LMN":
                assert not flag, (char, text)  # white space and punctuation are never content
            elif flag:
                content += 1
            else:
                function += 1
    share = content / (content + function)
    assert 0.55 < share < 0.95, share


# Negation decides sentiment, so no list may hold it; nor the sentiment words stop-word lists carry.
NOT_FUNCTION = {
    "en": ["not", "no", "never", "nothing", "nobody", "without", "good", "very", "like"],
    "de": ["nicht", "kein", "keine", "nie", "nichts", "ohne", "gut", "sehr"],
    "fr": ["ne", "pas", "jamais", "rien", "sans", "bon", "bien", "très"],
    "es": ["no", "nunca", "nada", "sin", "bueno", "muy"],
    "tr": ["değil", "yok", "hiç", "iyi", "çok"],
    "sw": ["si", "hakuna", "bila", "nzuri", "sana"],
    "ru": ["не", "нет", "ни", "без", "хорошо", "очень"],
    "ar": ["لا", "لم", "لن", "ليس", "غير", "بلا", "جيد", "جدا"],
    "hi": ["नहीं", "न", "मत", "बिना", "अच्छा", "बहुत"],
    "zh": ["不", "没", "没有", "别", "好", "很"],
    "ja": ["ない", "なかった", "とても", "良い"],
}


@pytest.mark.parametrize("lang", sorted(NOT_FUNCTION))
def test_lists_leave_negation_and_sentiment_words_out(lang: str) -> None:
    words = function_words(lang)
    assert words is not None
    assert not words & set(NOT_FUNCTION[lang])


@pytest.mark.parametrize("lang", sorted(FUNCTION_WORD_LANGUAGES))
def test_list_files_have_a_header_and_normalised_entries(lang: str) -> None:
    text = (LIST_DIR / f"{lang}.txt").read_text(encoding="utf-8")
    assert text.startswith("# Function words:")
    assert "not checked by a native speaker" in text.split("\n\n", 1)[0]
    entries = [line.split("#", 1)[0].strip() for line in text.splitlines()]
    entries = [e.lstrip("+") for e in entries if e]
    assert len(entries) > 100
    for entry in entries:
        assert entry == unicodedata.normalize("NFC", entry), entry
        assert entry == entry.casefold() or lang == "de" and "ß" in entry, entry
        assert not any(c.isspace() for c in entry), entry


def test_french_elision_is_its_own_word() -> None:
    text = "L'hôtel qu’il aime, aujourd'hui."
    assert _kind(text, "fr", "L'") == "function"
    assert _kind(text, "fr", "hôtel") == "content"
    assert _kind(text, "fr", "qu’") == "function"  # typographic apostrophe too
    assert _kind(text, "fr", "il") == "function"
    assert _kind(text, "fr", "aime") == "content"
    assert _kind(text, "fr", "aujourd'hui") == "content"
    assert _kind("Il n'aime pas l'eau", "fr", "n'") == "content"  # negation


def test_english_clitics() -> None:
    text = "It's great, but it isn't cheap."
    assert _kind(text, "en", "It") == "function"
    assert _kind(text, "en", "s", 0) == "function"  # 's = is
    assert _kind(text, "en", "isn't") == "content"  # negated
    assert _kind(text, "en", "great") == "content"


def test_arabic_proclitics_are_stripped_only_for_lookup() -> None:
    text = "والطعام في هذا المطعم وهذا الشاي ولم يكن بها للجميع"
    assert _kind(text, "ar", "والطعام") == "content"  # و + ال + طعام: طعام is not listed
    assert _kind(text, "ar", "في") == "function"
    assert _kind(text, "ar", "وهذا") == "function"  # و + هذا
    assert _kind(text, "ar", "ولم") == "content"  # و + لم: negation stays content
    assert _kind(text, "ar", "يكن") == "function"
    assert _kind(text, "ar", "بها") == "function"
    assert _kind(text, "ar", "للجميع") == "function"  # ل + ال + جميع
    # short vowels and alef forms do not matter
    assert _kind("ذهب إلى المدرسة أيضًا", "ar", "أيضًا") == "function"
    assert _kind("ذهب الى المدرسة", "ar", "الى") == "function"


def test_chinese_longest_match() -> None:
    text = "这家餐厅的菜真好吃"
    assert _kind(text, "zh", "这") == "function"
    assert _kind(text, "zh", "的") == "function"
    assert _kind(text, "zh", "好吃") == "content"
    assert _kind(text, "zh", "餐厅") == "content"
    # protected content words keep their function-word characters
    assert _kind("我了解他们的问题", "zh", "了解") == "content"
    assert _kind("我了解他们的问题", "zh", "他们") == "function"
    assert _kind("现在存在问题", "zh", "存在") == "content"
    assert _kind("现在存在问题", "zh", "现在") == "function"


def test_japanese_particles_need_a_place_for_a_particle() -> None:
    text = "ホテルの部屋はとても快適だった。"
    assert _kind(text, "ja", "とても") == "content"  # not と + て + も
    assert _kind(text, "ja", "の") == "function"
    assert _kind(text, "ja", "は") == "function"
    assert _kind(text, "ja", "だった") == "function"
    assert _kind("この道は危なくて暗い。", "ja", "危なく") == "content"  # な of 危ない is no particle
    assert _kind("この道は危なくて暗い。", "ja", "て") == "function"  # te-form, listed
    assert _kind("玉ねぎを切った。", "ja", "玉ねぎ") == "content"  # ね only ends a sentence
    assert _kind("いいですね", "ja", "ね") == "function"


def test_unknown_language_has_no_list() -> None:
    assert function_words("xx") is None
    assert content_mask("Olá mundo", "pt-BR") is None
    assert function_words("pt-BR") is function_words("pt")
    assert primary_language("pt-BR") == "pt"
    assert primary_language("zh_Hant_TW") == "zh"
    assert content_mask("", "en") == []


def test_region_and_script_subtags_resolve_to_the_base_language() -> None:
    assert function_words("fr-CA") == function_words("fr")
    assert function_words("zh-Hant") == function_words("zh")
    text = _texts()["neg-002"]["fr"]
    assert content_mask(text, "fr-CA") == content_mask(text, "fr")
    text = _texts()["pos-001"]["zh"]
    assert content_mask(text, "zh-Hans-CN") == content_mask(text, "zh")
    assert "die" in (function_words("DE-at") or set())


def test_writes_without_spaces() -> None:
    for lang in ("zh", "ja", "th", "lo", "km", "my", "bo", "zh-Hant", "ja-JP", "th-TH"):
        assert writes_without_spaces(lang), lang
    for lang in ("en", "de", "ar", "hi", "ru", "sw", "zh-Latn", "ja-Latn", "sr-Cyrl"):
        assert not writes_without_spaces(lang), lang


def test_case_and_normalisation_do_not_change_the_lookup() -> None:
    assert _kind("DAS ESSEN", "de", "DAS") == "function"
    assert _kind("İçin Bu", "tr", "İçin") == "function"  # Turkish dotted capital I
    assert _kind("Её дом", "ru", "Её") == "function"  # ё
    assert _kind("Ее дом", "ru", "Ее") == "function"
    decomposed = unicodedata.normalize("NFD", "Là où il était déjà")
    mask = content_mask(decomposed, "fr")
    assert mask is not None and len(mask) == len(decomposed)
    assert not any(mask)  # every word is a function word, combining accents included


def test_lists_ship_in_the_wheel() -> None:
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    assert '"function_words/*.txt"' in pyproject
