"""Grammatical agreement in counterfactual templates of gendered languages (French, Spanish, German).

Swapping a person's gender in these languages changes more than the noun: articles, adjectives,
participles and pronouns agree with it ("Le médecin est fatigué" / "La médecin est fatiguée").
A template must therefore put every word that agrees with the person into a group slot. This
module checks that, with a per-language lexicon of gender-marked forms (``probes/agreement/*.yaml``):

1. the variants of a template differ only inside its slots (the placeholders filled per group);
2. no gender-marked word of the fixed text (the template's own words and lexicon values, the same
   for every group) disagrees with a group's gender while agreeing with the template's person,
   e.g. a fixed "fatigué" in a template filled with the female "La";
3. a one-word slot value does not carry the other gender ("Le" given to the female group).

A fixed marked word that belongs to another noun phrase is left alone: a determiner followed by a
fixed noun of its gender or by a word the lexicon does not know ("la voiture", "todo el mundo"),
an adjective next to such a noun phrase ("la voiture est neuve"), a pronoun with a fixed
antecedent of its gender, a fixed marked noun not governed by a slot ("parle avec la patiente").
Epicene person nouns (*médecin*, *periodista*, *Angestellte*) get their gender from their
determiner, so a fixed determiner before one is checked. The lexicons list common forms only;
words they lack are not checked (see docs/probes.md, "Templates in gendered languages").

The loader runs this for every template file whose ``lang`` is French, Spanish or German
(``fr``, ``es``, ``de``, with or without a region: ``fr-CA``) and reports each problem at the
template's line.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import yaml

from probes.schema import Instance

Gender = Literal["f", "m"]
WordClass = Literal["det", "pron", "noun", "adj"]

LEXICON_DIR = Path(__file__).parent / "agreement"
LANGUAGES = ("de", "es", "fr")
"""Primary language subtags the check covers."""
WORD_CLASSES: tuple[WordClass, ...] = ("det", "pron", "noun", "adj")
GENDER_NAMES: dict[Gender, str] = {"f": "feminine", "m": "masculine"}
GROUP_GENDERS: dict[str, Gender] = {
    **dict.fromkeys(("female", "feminine", "woman", "women", "girl", "girls", "f", "fem"), "f"),
    **dict.fromkeys(("male", "masculine", "man", "men", "boy", "boys", "m", "masc"), "m"),
}
"""Group names whose gender the check knows; other groups (``nonbinary`` ...) are only checked
for differences outside the slots."""

_WORD = re.compile(r"\w+")
_PAIR = re.compile(r"^\s*(\(?)([^|()]+?)(\)?)\s*\|\s*(\(?)([^|()]+?)(\)?)\s*$")


@dataclass(frozen=True)
class Form:
    """A gender-marked word form and its counterpart in the other gender."""

    word: str
    gender: Gender
    counterpart: str
    word_class: WordClass


@dataclass(frozen=True)
class Lexicon:
    """The gender-marked forms of one language (keys: NFC, case-folded)."""

    lang: str
    forms: Mapping[str, Form]
    epicene: frozenset[str]
    case_prepositions: frozenset[str] = frozenset()
    after_case_prepositions: Mapping[str, Form] | None = None
    attributive_after: frozenset[str] | None = None
    impersonal: Mapping[str, frozenset[str]] | None = None

    def __len__(self) -> int:
        return len(self.forms)


@dataclass(frozen=True)
class Rendering:
    """One group's filled template: its text and the character spans its group slots filled."""

    group: str
    text: str
    slots: tuple[tuple[int, int], ...]


@dataclass(frozen=True)
class AgreementIssue:
    """A word that breaks agreement in one group's variant, with the message that says the fix."""

    group: str
    word: str
    message: str


def primary_language(lang: str) -> str:
    """The primary subtag of a BCP-47 tag, lower case: ``fr-CA`` -> ``fr``."""
    return lang.replace("_", "-").split("-")[0].lower()


def supports(lang: str) -> bool:
    """Whether the agreement check covers this language."""
    return primary_language(lang) in LANGUAGES


def group_gender(group: str) -> Gender | None:
    """The grammatical gender a group stands for (``female`` -> ``f``), or None."""
    return GROUP_GENDERS.get(group.casefold())


def _key(word: str) -> str:
    return unicodedata.normalize("NFC", word).casefold()


def _pairs(entries: Iterable[str], word_class: WordClass, where: str) -> list[Form]:
    forms: list[Form] = []
    for entry in entries:
        match = _PAIR.match(str(entry))
        if match is None:
            raise ValueError(f"{where}: {entry!r} is not 'masculine | feminine'")
        m_open, masculine, m_close, f_open, feminine, f_close = match.groups()
        if bool(m_open) != bool(m_close) or bool(f_open) != bool(f_close):
            raise ValueError(f"{where}: unbalanced parentheses in {entry!r}")
        masculine = unicodedata.normalize("NFC", masculine.strip())
        feminine = unicodedata.normalize("NFC", feminine.strip())
        if not m_open:
            forms.append(Form(masculine, "m", feminine, word_class))
        if not f_open:
            forms.append(Form(feminine, "f", masculine, word_class))
    return forms


def _derived(rules: Mapping[str, Iterable[str]], where: str) -> list[Form]:
    """Regular adjective forms. Rule ``"o>a"`` lists masculine forms and swaps the ending (cansado:
    cansada); ``">e"`` adds an e (fatigué: fatiguée). With a leading ``+`` the list holds stems and
    both sides are endings: ``"+er>(+e)"`` makes guter from gut, and gute unmarked (in parentheses)."""
    forms: list[Form] = []
    for rule, words in rules.items():
        masculine_end, _, feminine_end = str(rule).partition(">")
        m_open = masculine_end.startswith("(")
        f_open = feminine_end.startswith("(")
        masculine_end, feminine_end = masculine_end.strip("()"), feminine_end.strip("()")
        stems = masculine_end.startswith("+")
        for word in words:
            word = unicodedata.normalize("NFC", str(word))
            if stems:
                masculine = word + masculine_end.lstrip("+")
                feminine = word + feminine_end.lstrip("+")
            elif word.endswith(masculine_end):
                masculine = word
                feminine = word[: len(word) - len(masculine_end)] + feminine_end
            else:
                raise ValueError(f"{where}: {word!r} does not end in {masculine_end!r} (rule {rule!r})")
            pair = f"{f'({masculine})' if m_open else masculine} | {f'({feminine})' if f_open else feminine}"
            forms.extend(_pairs([pair], "adj", where))
    return forms


@functools.cache
def load_lexicon(lang: str) -> Lexicon:
    """The lexicon of a language the check covers (``fr``, ``es``, ``de``, or a regional tag)."""
    code = primary_language(lang)
    if code not in LANGUAGES:
        raise ValueError(f"no agreement lexicon for {lang!r}; covered: {', '.join(LANGUAGES)}")
    path = LEXICON_DIR / f"{code}.yaml"
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    forms: dict[str, Form] = {}
    candidates: list[Form] = []
    for word_class in WORD_CLASSES:
        candidates += _pairs(raw.get(word_class) or [], word_class, f"{path} {word_class}")
    candidates += _derived(raw.get("derive") or {}, f"{path} derive")
    for form in candidates:
        earlier = forms.get(_key(form.word))
        if earlier is not None and earlier.gender != form.gender:
            raise ValueError(
                f"{path}: {form.word!r} is listed as both {GENDER_NAMES[earlier.gender]} and "
                f"{GENDER_NAMES[form.gender]}; mark the ambiguous side with parentheses"
            )
        forms.setdefault(_key(form.word), form)
    epicene = frozenset(_key(w) for w in raw.get("epicene") or [])
    clash = sorted(w for w in epicene if w in forms)
    if clash:
        raise ValueError(f"{path}: {', '.join(clash)} listed both as epicene and as gender-marked")
    after_case = _pairs(raw.get("after_case_prepositions") or [], "det", f"{path} after_case_prepositions")
    attributive = raw.get("attributive_after")
    impersonal = raw.get("impersonal") or {}
    return Lexicon(
        lang=code,
        forms=forms,
        epicene=epicene,
        case_prepositions=frozenset(_key(w) for w in raw.get("case_prepositions") or []),
        after_case_prepositions={_key(f.word): f for f in after_case},
        attributive_after=frozenset(_key(w) for w in attributive) if attributive is not None else None,
        impersonal={_key(k): frozenset(_key(w) for w in v) for k, v in impersonal.items()},
    )


# ------------------------------------------------------------------------------------ the check


@dataclass(frozen=True)
class _Token:
    start: int
    end: int
    text: str
    key: str
    slot: int | None
    """Index of the slot span the word overlaps, None for fixed text."""


def _tokens(rendering: Rendering) -> list[_Token]:
    tokens = []
    for match in _WORD.finditer(rendering.text):
        slot = next(
            (
                n
                for n, (start, end) in enumerate(rendering.slots)
                if match.start() < end and start < match.end()
            ),
            None,
        )
        tokens.append(_Token(match.start(), match.end(), match.group(), _key(match.group()), slot))
    return tokens


class _Sentence:
    """One rendering's words with the lexicon's context rules."""

    def __init__(self, lexicon: Lexicon, tokens: list[_Token]) -> None:
        self.lexicon = lexicon
        self.tokens = tokens

    def form(self, i: int) -> Form | None:
        if not 0 <= i < len(self.tokens):
            return None
        key = self.tokens[i].key
        lexicon = self.lexicon
        previous = self.tokens[i - 1].key if i > 0 else ""
        if previous in lexicon.case_prepositions and key in (lexicon.after_case_prepositions or {}):
            return (lexicon.after_case_prepositions or {})[key]
        form = lexicon.forms.get(key)
        if form is not None and form.word_class == "adj" and lexicon.attributive_after is not None:
            return form if previous in lexicon.attributive_after else None
        return form

    def is_class(self, i: int, word_class: WordClass) -> bool:
        form = self.form(i)
        return form is not None and form.word_class == word_class

    def fixed(self, i: int) -> bool:
        return 0 <= i < len(self.tokens) and self.tokens[i].slot is None

    def governed_by_slot(self, i: int) -> bool:
        """Whether word i follows a slot word directly, or across one adjective: ``{det} Ärztin``."""
        if i >= 1 and not self.fixed(i - 1):
            return True
        return i >= 2 and self.is_class(i - 1, "adj") and not self.fixed(i - 2)

    def np_gender(self, j: int) -> Gender | None:
        """The gender of a fixed noun phrase headed by word j that is not the template's person."""
        if not self.fixed(j):
            return None
        form = self.form(j)
        if form is not None:
            if form.word_class == "noun" and not self.governed_by_slot(j):
                return form.gender
            return None
        if self.tokens[j].key in self.lexicon.epicene:
            return None
        for k in (j - 1, j - 2):  # an unknown word after a fixed determiner, maybe one adjective between
            if self.fixed(k) and self.is_class(k, "det"):
                determiner = self.form(k)
                return determiner.gender if determiner is not None else None
            if not (k == j - 1 and self.is_class(k, "adj")):
                break
        return None

    def anchored(self, i: int, form: Form) -> bool:
        """Whether fixed word i agrees with another noun phrase than the template's person."""
        if form.word_class == "det":
            head = i + 1
            if self.fixed(head) and self.is_class(head, "adj"):
                head += 1
            if head >= len(self.tokens) or not self.fixed(head):
                return False
            head_form = self.form(head)
            if head_form is not None:
                return head_form.word_class == "noun" and head_form.gender == form.gender
            return self.tokens[head].key not in self.lexicon.epicene
        if form.word_class == "noun":
            return not self.governed_by_slot(i)
        if form.word_class == "adj":
            return any(self.np_gender(j) == form.gender for j in range(i - 2, i + 2) if j != i)
        next_key = self.tokens[i + 1].key if i + 1 < len(self.tokens) else ""
        if next_key in (self.lexicon.impersonal or {}).get(self.tokens[i].key, frozenset()):
            return True
        return any(self.np_gender(j) == form.gender for j in range(i))


def _slot_name(form: Form) -> str:
    if form.word_class != "adj":
        return form.word_class
    masculine = form.word if form.gender == "m" else form.counterpart
    ascii_name = unicodedata.normalize("NFKD", masculine).encode("ascii", "ignore").decode()
    return re.sub(r"\W+", "_", ascii_name.lower()).strip("_") or "adj"


def _as_written(word: str, like: str) -> str:
    return word[:1].upper() + word[1:] if like[:1].isupper() else word


def _fix(word: str, form: Form, genders: Mapping[str, Gender]) -> str:
    """How to make ``word`` agree: a slot with each group's form, as a suffix slot when both endings
    are non-empty (cansad{o} with female: a, male: o)."""
    by_gender = {form.gender: word, ("m" if form.gender == "f" else "f"): _as_written(form.counterpart, word)}
    prefix = 0
    masculine, feminine = by_gender["m"], by_gender["f"]
    while prefix < min(len(masculine), len(feminine)) and masculine[prefix] == feminine[prefix]:
        prefix += 1
    slot = _slot_name(form)
    suffix = form.word_class == "adj" and 3 <= prefix < min(len(masculine), len(feminine))
    if suffix:
        ending_slot = masculine[prefix:].lower()
        values = ", ".join(f"{group}: {by_gender[g][prefix:]}" for group, g in genders.items())
        return f"make it a group slot, e.g. {masculine[:prefix]}{{{ending_slot}}} with {values}"
    values = ", ".join(f"{group}: {by_gender[g]}" for group, g in genders.items())
    return f"make it a group slot, e.g. {{{slot}}} with {values}"


def _nfc(rendering: Rendering) -> Rendering:
    """The rendering in Unicode NFC, its slot spans moved with the text (each piece normalised apart)."""
    bounds = sorted({0, len(rendering.text), *(b for span in rendering.slots for b in span)})
    moved: dict[int, int] = {0: 0}
    text = ""
    for start, end in zip(bounds, bounds[1:], strict=False):
        text += unicodedata.normalize("NFC", rendering.text[start:end])
        moved[end] = len(text)
    return Rendering(rendering.group, text, tuple((moved[a], moved[b]) for a, b in rendering.slots))


def check_renderings(lang: str, renderings: Sequence[Rendering]) -> list[AgreementIssue]:
    """Every agreement problem of one filled template (one rendering per group); [] when it agrees.
    Texts are compared in Unicode NFC, so a decomposed "fatigue\u0301" is the word fatigué."""
    lexicon = load_lexicon(lang)
    renderings = [_nfc(r) for r in renderings]
    issues: list[AgreementIssue] = []
    skeletons: dict[str, str] = {}
    for rendering in renderings:
        pieces, position = [], 0
        for start, end in sorted(rendering.slots):
            pieces.append(rendering.text[position:start])
            position = max(position, end)
        pieces.append(rendering.text[position:])
        skeletons[rendering.group] = "\u2026".join(pieces)
    if len(set(skeletons.values())) > 1:
        (first_group, first), *rest = skeletons.items()
        group, other = next((g, s) for g, s in rest if s != first)
        issues.append(
            AgreementIssue(
                group,
                "",
                f"the variants differ outside the template's slots ({first_group}: {first!r}, {group}: "
                f"{other!r}); only slot values may change between groups",
            )
        )
    genders = {r.group: g for r in renderings if (g := group_gender(r.group)) is not None}
    seen: set[tuple[str, str]] = set()
    for rendering in renderings:
        gender = genders.get(rendering.group)
        if gender is None:
            continue
        tokens = _tokens(rendering)
        sentence = _Sentence(lexicon, tokens)
        words_in_slot = [sum(1 for t in tokens if t.slot == n) for n in range(len(rendering.slots))]
        for i, token in enumerate(tokens):
            form = sentence.form(i)
            if form is None or form.gender == gender or (rendering.group, token.key) in seen:
                continue
            is_wrong = (
                words_in_slot[token.slot] == 1 if token.slot is not None else not sentence.anchored(i, form)
            )
            if not is_wrong:
                continue
            seen.add((rendering.group, token.key))
            marked = f"'{token.text}' is {GENDER_NAMES[form.gender]}"
            group = f"group '{rendering.group}' is {GENDER_NAMES[gender]}"
            if token.slot is not None:
                message = (
                    f"{marked} but {group}, and the group's slot value gives it; use "
                    f"'{_as_written(form.counterpart, token.text)}' for {rendering.group} "
                    f"(in {rendering.text!r})"
                )
            else:
                message = (
                    f"{marked} but {group}: '{token.text}' is fixed text (the same in every variant), so it "
                    f"cannot agree with both genders; {_fix(token.text, form, genders)} "
                    f"(in {rendering.text!r})"
                )
            issues.append(AgreementIssue(rendering.group, token.text, message))
    return issues


def check_template_agreement(
    lang: str, instances: Iterable[Instance], template_lines: Mapping[str, int]
) -> list[tuple[int | None, str]]:
    """The loader's hook: (line, message) for every agreement problem of a template set, once per
    template, word and group. ``template_lines`` maps a template's text (``Instance.context``) to
    its line; each variant's focus spans are its filled group slots. Languages the check does not
    cover give []."""
    if not supports(lang):
        return []
    problems: list[tuple[int | None, str]] = []
    seen: set[tuple[int | None, str, str]] = set()
    for instance in instances:
        line = template_lines.get(instance.context or "")
        renderings = [
            Rendering(v.variant, v.text, tuple((s.start, s.end) for s in v.focus)) for v in instance.variants
        ]
        for issue in check_renderings(lang, renderings):
            key = (line, issue.group, _key(issue.word))
            if key not in seen:
                seen.add(key)
                problems.append((line, issue.message))
    return problems
