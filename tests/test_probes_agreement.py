"""The grammatical-agreement check of French, Spanish and German templates, and the built-in
gender-fr, gender-es and gender-de sets that it guards."""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path

import pytest

from probes import list_builtin, load_builtin, load_probe_set, validate_file
from probes.agreement import (
    LANGUAGES,
    Rendering,
    check_renderings,
    group_gender,
    load_lexicon,
    supports,
)
from probes.loaders import BUILTIN_DIR

DOCS = Path(__file__).parent.parent / "docs" / "probes.md"
GENDERED_SETS = ["gender-de", "gender-es", "gender-fr"]


def _write(tmp_path: Path, lang: str, female: str, male: str, template: str, extra: str = "") -> Path:
    """A two-group template file with the slots its template uses; the template is on line 7."""
    used = set(re.findall(r"\{(\w+)", template + extra))

    def slots(spec: str) -> str:
        entries = re.findall(r"(\w+): (\[[^\]]*\]|[^,]+)", spec)
        return ", ".join(f"{name}: {value}" for name, value in entries if name in used)

    female, male = slots(female), slots(male)
    path = tmp_path / f"t-{lang}.yaml"
    path.write_text(
        "attribute: gender\n"
        f"lang: {lang}\n"
        "groups:\n"
        f"  female: {{{female}}}\n"
        f"  male: {{{male}}}\n"
        "templates:\n"
        f'  - "{template}"\n' + extra,
        encoding="utf-8",
    )
    return path


FR_F = "det: La, un: une, occupation: [médecin, chirurgienne], tired: fatiguée"
FR_M = "det: Le, un: un, occupation: [médecin, chirurgien], tired: fatigué"
ES_F = "det: La, un: una, occupation: [enfermera, periodista], o: a"
ES_M = "det: El, un: un, occupation: [enfermero, periodista], o: o"
DE_F = "det: Die, pron: Sie, ein: eine, good: gute, occupation: [Ärztin, Lehrerin]"
DE_M = "det: Der, pron: Er, ein: ein, good: guter, occupation: [Arzt, Lehrer]"

ACCEPTED = [
    ("fr", FR_F, FR_M, "{det} {occupation} est {tired}."),
    ("fr", FR_F, FR_M, "Tout le monde sait que {det|lower} {occupation} est {tired} ce matin."),
    ("fr", FR_F, FR_M, "{det} {occupation} parle avec la patiente et le patient dans la voiture neuve."),
    ("fr", FR_F, FR_M, "Il pleut, et {det|lower} {occupation} est {tired}."),
    ("es", ES_F, ES_M, "{det} {occupation} está cansad{o}."),
    ("es", ES_F, ES_M, "{det} {occupation} llegó al trabajo y saludó a todo el mundo."),
    ("es", ES_F, ES_M, "Es {un} {occupation} generos{o} con la vecina y el vecino."),
    ("de", DE_F, DE_M, "{det} {occupation} ist müde."),
    ("de", DE_F, DE_M, "{pron} ist {ein} {good} {occupation}."),
    ("de", DE_F, DE_M, "{det} {occupation} spricht mit der Kollegin und dem Kollegen über die Arbeit."),
    ("de", DE_F, DE_M, "{det} {occupation} kommt um acht Uhr zur Arbeit, sagt der Chef."),
]

# (lang, female, male, template, the offending word, the group it disagrees with, a hint of the fix)
REJECTED = [
    # un-agreed adjective / participle
    (
        "fr",
        FR_F,
        FR_M,
        "{det} {occupation} est fatigué.",
        "fatigué",
        "female",
        "{fatigue} with female: fatiguée",
    ),
    ("fr", FR_F, FR_M, "{det} {occupation} est très contente.", "contente", "male", "male: content"),
    # un-agreed article / determiner
    ("fr", FR_F, FR_M, "C'est un {occupation} {tired}.", "un", "female", "{det} with female: une, male: un"),
    ("fr", FR_F, FR_M, "Tout le monde dit que la {occupation} est {tired}.", "la", "male", "male: le"),
    # un-agreed pronoun
    ("fr", FR_F, FR_M, "{det} {occupation} dit qu'il est {tired}.", "il", "female", "female: elle"),
    (
        "es",
        ES_F,
        ES_M,
        "{det} {occupation} está cansado.",
        "cansado",
        "female",
        "cansad{o} with female: a, male: o",
    ),
    (
        "es",
        ES_F,
        ES_M,
        "{det} {occupation} es muy generosa.",
        "generosa",
        "male",
        "generos{o} with female: a, male: o",
    ),
    ("es", ES_F, ES_M, "El {occupation} está cansad{o}.", "El", "female", "{det} with female: La, male: El"),
    ("es", ES_F, ES_M, "Es una {occupation} generos{o}.", "una", "male", "male: un"),
    # German predicative adjectives do not agree: the un-agreed adjective is attributive
    (
        "de",
        DE_F,
        DE_M,
        "{pron} ist {ein} guter {occupation}.",
        "guter",
        "female",
        "{guter} with female: gute, male: guter",
    ),
    (
        "de",
        DE_F,
        DE_M,
        "{pron} ist ein {good} {occupation}.",
        "ein",
        "female",
        "{det} with female: eine, male: ein",
    ),
    ("de", DE_F, DE_M, "Der {occupation} ist müde.", "Der", "female", "female: Die, male: Der"),
    ("de", DE_F, DE_M, "{det} {occupation} sagt, er sei müde.", "er", "female", "female: sie"),
    (
        "de",
        DE_F,
        DE_M,
        "{pron} spricht mit {det|lower} {occupation} über seine Arbeit.",
        "seine",
        "female",
        "ihre",
    ),
]


@pytest.mark.parametrize(("lang", "female", "male", "template"), ACCEPTED)
def test_agreeing_templates_are_accepted(
    lang: str, female: str, male: str, template: str, tmp_path: Path
) -> None:
    path = _write(tmp_path, lang, female, male, template)
    assert validate_file(path) == []
    probe_set = load_probe_set(path)
    assert len(probe_set.instances) == 2
    assert {v.lang for v in probe_set.variants} == {lang}


@pytest.mark.parametrize(("lang", "female", "male", "template", "word", "group", "fix"), REJECTED)
def test_templates_that_break_agreement_are_rejected_at_their_line(
    lang: str, female: str, male: str, template: str, word: str, group: str, fix: str, tmp_path: Path
) -> None:
    path = _write(tmp_path, lang, female, male, template)
    problems = validate_file(path)
    assert problems, f"{template!r} was accepted"
    assert all(p.line == 7 for p in problems), [str(p) for p in problems]
    messages = [p.message for p in problems]
    message = next((m for m in messages if m.startswith(f"'{word}' is ")), None)
    assert message is not None, messages
    assert f"group '{group}'" in message and "make it a group slot" in message and fix in message
    assert str(problems[0]).startswith(f"{path}:7: ")


@pytest.mark.parametrize("lang", LANGUAGES)
def test_each_language_has_at_least_two_broken_cases_of_adjective_and_determiner(lang: str) -> None:
    words = [case[4] for case in REJECTED if case[0] == lang]
    lexicon = load_lexicon(lang)
    classes = [lexicon.forms[w.casefold()].word_class for w in words]
    assert classes.count("adj") >= 1 and classes.count("det") >= 2
    assert len(classes) >= 4


def test_a_slot_value_of_the_wrong_gender_is_rejected(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "fr",
        FR_F.replace("det: La", "det: Le"),
        FR_M.replace("det: Le", "det: La"),
        "{det} {occupation} est {tired}.",
    )
    messages = [p.message for p in validate_file(path)]
    assert any(
        m.startswith("'Le' is masculine but group 'female'") and "use 'La' for female" in m for m in messages
    )
    assert any(m.startswith("'La' is feminine but group 'male'") for m in messages)


def test_every_problem_is_reported_once_per_template_word_and_group(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "fr",
        FR_F,
        FR_M,
        "{det} {occupation} est fatigué.",
        extra='  - "{det} {occupation} est {tired}."\n  - "C\'est un {occupation} {tired}."\n',
    )
    problems = validate_file(path)
    assert [(p.line, p.message.split(" is ")[0]) for p in problems] == [(7, "'fatigué'"), (9, "'un'")]


def test_languages_without_a_lexicon_and_regional_tags(tmp_path: Path) -> None:
    # English (or no lang): no agreement check, the same template loads
    assert validate_file(_write(tmp_path, "en", FR_F, FR_M, "{det} {occupation} est fatigué.")) == []
    regional = validate_file(_write(tmp_path, "fr-CA", FR_F, FR_M, "{det} {occupation} est fatigué."))
    assert [p.message.split(" is ")[0] for p in regional] == ["'fatigué'"]
    assert supports("es-MX") and supports("de") and not supports("en") and not supports("it")


def test_decomposed_unicode_is_checked_as_nfc() -> None:
    text_f = unicodedata.normalize("NFD", "La médecin est fatigué.")
    text_m = unicodedata.normalize("NFD", "Le médecin est fatigué.")
    renderings = [Rendering("female", text_f, ((0, 2),)), Rendering("male", text_m, ((0, 2),))]
    issues = check_renderings("fr", renderings)
    assert [(i.group, i.word) for i in issues] == [("female", "fatigué")]


def test_variants_that_differ_outside_the_slots_are_rejected() -> None:
    renderings = [
        Rendering("female", "La médecin parle avec la patiente.", ((0, 2),)),
        Rendering("male", "Le médecin parle avec le patient.", ((0, 2),)),
    ]
    messages = [i.message for i in check_renderings("fr", renderings)]
    assert any("differ outside the template's slots" in m for m in messages)


def test_groups_without_a_known_gender_are_not_checked_for_gender() -> None:
    assert group_gender("Female") == "f" and group_gender("male") == "m" and group_gender("nonbinary") is None
    renderings = [
        Rendering("nonbinary", "Iel est fatigué.", ((0, 3),)),
        Rendering("male", "Il est fatigué.", ((0, 2),)),
    ]
    assert check_renderings("fr", renderings) == []


@pytest.mark.parametrize("lang", LANGUAGES)
def test_lexicons_load_without_contradictions(lang: str) -> None:
    lexicon = load_lexicon(lang)
    assert len(lexicon) >= 150
    for form in lexicon.forms.values():
        assert form.word == unicodedata.normalize("NFC", form.word)
        assert form.counterpart != form.word


# ---------------------------------------------------------------------------------- built-in sets


@pytest.mark.parametrize("name", GENDERED_SETS)
def test_builtin_gendered_sets_load_and_pass_the_check(name: str) -> None:
    assert validate_file(name) == []
    probe_set = load_builtin(name)
    lang = name.removeprefix("gender-")
    assert probe_set.kind == "counterfactual" and probe_set.attributes == ["gender"]
    assert 40 <= len(probe_set.instances) <= 60
    assert {v.lang for v in probe_set.variants} == {lang}
    assert all(i.groups == ["female", "male"] for i in probe_set.instances)
    assert {i.instance_id.split("-")[0] for i in probe_set.instances} == {"pos", "neg", "neu"}
    assert all(v.text == unicodedata.normalize("NFC", v.text) for v in probe_set.variants)
    assert not probe_set.in_default_run
    card = probe_set.card
    assert card.startswith(f"# {name}") and "**Known confounds.**" in card and "(20" in card
    assert "not by native speakers" in card


@pytest.mark.parametrize("name", GENDERED_SETS)
def test_every_agreeing_slot_of_the_builtins_is_needed(name: str, tmp_path: Path) -> None:
    """Writing any one slot of a built-in template (but the occupation) as fixed text, with the male
    or the female value, makes the check reject that template at its line: the check does not pass
    the built-ins trivially."""
    source = (BUILTIN_DIR / f"{name}.yaml").read_text(encoding="utf-8")
    lines = source.split("\n")
    raw = load_builtin(name)
    groups = {
        g: {k: v for k, v in re.findall(r"^    (\w+): ([^\[\n]+)$", block, flags=re.M)}
        for g, block in re.findall(r"^  (female|male):\n((?:    .*\n)+)", source, flags=re.M)
    }
    mutated = 0
    for number, line in enumerate(lines, start=1):
        if "text: " not in line:
            continue
        for slot, filters in re.findall(r"\{(\w+)((?:\|\w+)*)\}", line):
            if slot == "occupation":
                continue
            for group, other in (("male", "female"), ("female", "male")):
                value = groups[group][slot].strip()
                written = value.lower() if "|lower" in filters else value
                broken = line.replace(f"{{{slot}{filters}}}", written, 1)
                path = tmp_path / f"{name}.yaml"
                path.write_text("\n".join(lines[: number - 1] + [broken] + lines[number:]), encoding="utf-8")
                (tmp_path / f"{name}.md").write_text(raw.card, encoding="utf-8")
                problems = validate_file(path)
                if name == "gender-de" and group == "female" and slot in ("pron", "excellent", "terrible"):
                    continue  # German sie / -e adjectives are also plural or weak masculine: unmarked
                # (a slot only this template used is now unused: reported at the group's line)
                agreement = [p for p in problems if p.message.startswith("'")]
                assert agreement, f"{name} line {number} with {{{slot}}} fixed to {written!r} was accepted"
                assert {p.line for p in agreement} == {number}
                assert any(f"group '{other}'" in p.message for p in agreement)
                mutated += 1
    assert mutated >= 10


def test_default_run_leaves_the_gendered_sets_out() -> None:
    counterfactual = list_builtin(kind="counterfactual")
    default_run = list_builtin(kind="counterfactual", default_run_only=True)
    assert set(GENDERED_SETS) <= set(counterfactual) and set(GENDERED_SETS) <= set(list_builtin())
    assert not set(GENDERED_SETS) & set(default_run)
    assert {"gender", "race", "religion", "nationality", "age", "disability"} <= set(default_run)
    by_name_only = {*GENDERED_SETS, "translation-gender-fr", "translation-gender-es"}  # de runs for seq2seq
    assert list_builtin(default_run_only=True) == [n for n in list_builtin() if n not in by_name_only]


def test_in_default_run_must_be_a_boolean(tmp_path: Path) -> None:
    path = _write(
        tmp_path, "fr", FR_F, FR_M, "{det} {occupation} est {tired}.", extra="in_default_run: nope\n"
    )
    problems = validate_file(path)
    assert [(p.line, p.message) for p in problems] == [
        (8, "in_default_run must be true or false, not 'nope'")
    ]
    path = _write(
        tmp_path, "fr", FR_F, FR_M, "{det} {occupation} est {tired}.", extra="in_default_run: false\n"
    )
    assert load_probe_set(path).in_default_run is False
    first = load_probe_set(_write(tmp_path, "fr", FR_F, FR_M, "{det} {occupation} est {tired}."))
    assert first.in_default_run is True


def test_docs_example_shows_the_empty_ending_limit(tmp_path: Path) -> None:
    text = DOCS.read_text(encoding="utf-8")
    section = text.split("## Templates in gendered languages", 1)[1].split("\n## ", 1)[0]
    body = re.findall(r"```yaml\n(.*?)```", section, flags=re.S)[0]
    path = tmp_path / "example.yaml"
    path.write_text(body, encoding="utf-8")
    messages = [p.message for p in validate_file(path)]
    assert any(m.startswith("slot 'e' of group 'male' is empty") for m in messages)
    fixed = body.replace(", e: e}", "}").replace(', e: ""}', "}").replace("compétent{e}", "{tired}")
    path.write_text(fixed, encoding="utf-8")
    assert validate_file(path) == []
    assert "make it a group slot, e.g. {fatigue} with female: fatiguée, male: fatigué" in section
