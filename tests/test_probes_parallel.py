"""Parallel (multilingual) probe sets: the YAML, wide and long row formats, every problem at
FILE:LINE, and the built-in multilingual set (150 meanings x 11 languages, 7 scripts)."""

from __future__ import annotations

import csv
import json
import re
import unicodedata
from pathlib import Path

import pytest

from audit.errors import ProbeFileError
from probes import ProbeSet, list_builtin, load_builtin, load_probe_set, validate_file
from probes.languages import canonical_language, expected_scripts, script_of, scripts_in
from probes.schema import Instance, Variant

LANGUAGES = ["en", "de", "fr", "es", "tr", "sw", "ru", "ar", "hi", "zh", "ja"]
DOCS = Path(__file__).parent.parent / "docs" / "probes.md"

MINI = """\
name: mini
kind: parallel
reference: en
languages: [en, de, ru, ja]
instances:
  - id: pos-1
    label: positive
    texts:
      en: The soup was delicious.
      de: Die Suppe war köstlich.
      ru: Суп был очень вкусным.
      ja: スープはとてもおいしかった。
  - id: neu-1
    texts:
      en: The train leaves at nine.
      de: Der Zug fährt um neun ab.
      ru: Поезд отправляется в девять.
      ja: 電車は九時に出発する。
"""


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def messages(path: Path) -> list[str]:
    problems = validate_file(path)
    for problem in problems:
        assert str(problem).startswith(f"{path}:"), problem
    return [str(p).removeprefix(f"{path}:").lstrip() for p in problems]


# ------------------------------------------------------------------------------------ YAML format


def test_yaml_loads_one_instance_per_meaning_and_one_variant_per_language(tmp_path: Path) -> None:
    probe_set = load_probe_set(write(tmp_path, "mini.yaml", MINI))
    assert (probe_set.name, probe_set.kind, probe_set.reference_lang) == ("mini", "parallel", "en")
    assert probe_set.tasks == ("text-classification", "embedding")
    assert [i.instance_id for i in probe_set.instances] == ["pos-1", "neu-1"]
    first = probe_set.instances[0]
    assert (first.attribute, first.role, first.groups) == (
        "language",
        "counterfactual",
        ["en", "de", "ru", "ja"],
    )
    assert [(v.variant, v.lang, v.attribute, v.label, v.focus) for v in first.variants] == [
        (lang, lang, "language", "positive", ()) for lang in ("en", "de", "ru", "ja")
    ]
    assert first.variants[2].text == "Суп был очень вкусным."
    assert {v.label for v in probe_set.instances[1].variants} == {None}


def test_texts_are_stripped_and_nfc(tmp_path: Path) -> None:
    decomposed = unicodedata.normalize("NFD", "Die Suppe war köstlich.")
    assert decomposed != "Die Suppe war köstlich."
    text = MINI.replace("de: Die Suppe war köstlich.", f'de: "  {decomposed} "')
    probe_set = load_probe_set(write(tmp_path, "nfd.yaml", text))
    assert probe_set.instances[0].variants[1].text == "Die Suppe war köstlich."


def test_language_codes_are_put_in_canonical_case(tmp_path: Path) -> None:
    text = MINI.replace("[en, de, ru, ja]", "[en, DE-ch, ru, ja]").replace("      de:", "      de-CH:")
    probe_set = load_probe_set(write(tmp_path, "case.yaml", text))
    assert probe_set.instances[0].groups == ["en", "de-CH", "ru", "ja"]
    assert canonical_language("zh-hant-tw") == "zh-Hant-TW"
    assert canonical_language("sr-latn") == "sr-Latn"
    assert [canonical_language(c) for c in ("de_DE", "english", "e", "12")] == [None, None, None, None]


def test_every_yaml_problem_is_located(tmp_path: Path) -> None:
    text = """\
kind: parallel
reference: en
languages: [en, de, ru, ja, fr_FR]
colour: blue
instances:
  - id: a
    texts:
      en: The soup was hot.
      de: Die Suppe war heiß.
      ru: The soup was hot.
      ja: スープは熱かった。
  - id: a
    texts:
      en: The tea was cold.
  - id: b/c
    texts:
      en: The bread is fresh.
      de: ""
      ru: Bread is fresh.
      ja: パンは新しい。
      xx: Le pain est frais.
  - id: d
    label: positive
    texts:
      en: The soup was hot.
      de: Die Suppe war heiß.
      ru: Суп был горячим.
      ja: スープは熱かった。
"""
    path = write(tmp_path, "bad.yaml", text)
    got = messages(path)
    expected = [
        "3: languages: 'fr_FR' is not a BCP-47 language code (BCP-47 codes join their parts with '-', not '_')",
        "4: the file has an unknown key 'colour'",
    ]
    # the languages are unusable, so nothing is checked against them: fix them first
    assert len(got) == len(expected), got
    for message, start in zip(got, expected, strict=True):
        assert message.startswith(start), message
    path = write(tmp_path, "bad.yaml", text.replace(", fr_FR]", "]").replace("colour: blue\n", ""))
    got = messages(path)
    expected = [
        "9: the ru text of instance 'a' is the same as the en (reference) text; it looks untranslated",
        "11: instance id 'a' is already used on line 5; ids must be unique",
        "11: instance 'a' has no text in de, ru, ja; every instance needs a text in each of the set's "
        "languages (en, de, ru, ja)",
        "14: instance id 'b/c' must be letters, digits, _ . - only",
        "17: the de text of instance 'b/c' is empty; write the translation",
        "18: the ru text of instance 'b/c' has no Cyrillic letters (it is written in Latin); it looks untranslated",
        "20: instance 'b/c' has a text in xx, which is not among the set's languages (en, de, ru, ja)",
        "24: the en (reference) text of instance 'd' is the same as that of instance 'a' (line 5)",
    ]
    assert len(got) == len(expected), got
    for message, start in zip(got, expected, strict=True):
        assert message.startswith(start), message
    with pytest.raises(ProbeFileError):
        load_probe_set(path)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            MINI.replace("reference: en", "reference: fr"),
            ["3: the reference language fr is not among the languages (en, de, ru, ja)"],
        ),
        (
            MINI.replace("reference: en\n", "").replace("[en, de, ru, ja]", "[de, ru, ja]"),
            ["3: no reference language: the languages lack en"],
        ),
        (MINI.replace("[en, de, ru, ja]", "[en, de, en]"), ["4: languages lists en twice"]),
        (
            MINI.replace("[en, de, ru, ja]", "[en]"),
            ["4: languages gives 1 language(s); a parallel set needs at least 2"],
        ),
        (
            "kind: parallel\nlanguages: [en, de]\n",
            ["1: missing required key 'instances'"],
        ),
        (
            MINI.replace("      en: The train leaves at nine.\n", ""),
            ["13: instance 'neu-1' has no text in en"],
        ),
        (
            MINI.replace("    label: positive\n", "    label: positive\n    query: soup\n"),
            ["8: instance 1 has an unknown key 'query'"],
        ),
        (
            MINI.replace("kind: parallel", "kind: paralel"),
            ["2: kind 'paralel' is not known; use counterfactual or long_document or parallel"],
        ),
    ],
)
def test_single_problems_are_located(tmp_path: Path, text: str, expected: list[str]) -> None:
    path = write(tmp_path, "one.yaml", text)
    got = messages(path)
    assert len(got) == len(expected), got
    for message, start in zip(got, expected, strict=True):
        assert message.startswith(start), message


def test_same_script_languages_may_share_a_text(tmp_path: Path) -> None:
    """ "Taxi!" is German too; only a text in another script than the reference's looks untranslated."""
    text = MINI.replace("de: Der Zug fährt um neun ab.", "de: The train leaves at nine.")
    assert validate_file(write(tmp_path, "same.yaml", text)) == []


# --------------------------------------------------------------------------------- rows: CSV/JSONL


def wide_rows(probe_set: ProbeSet) -> list[dict[str, str]]:
    return [
        {"id": i.instance_id, "label": i.variants[0].label or "", **{v.lang: v.text for v in i.variants}}
        for i in probe_set.instances
    ]


def long_rows(probe_set: ProbeSet) -> list[dict[str, str]]:
    return [
        {"id": i.instance_id, "lang": v.lang, "text": v.text, "label": v.label or ""}
        for i in probe_set.instances
        for v in i.variants
    ]


def write_csv(path: Path, rows: list[dict[str, str]]) -> Path:
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def write_jsonl(path: Path, rows: list[dict[str, str]]) -> Path:
    lines = [json.dumps({k: v for k, v in row.items() if v}, ensure_ascii=False) for row in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_wide_and_long_rows_give_the_same_set_as_the_yaml(tmp_path: Path) -> None:
    builtin = load_builtin("multilingual")
    files = [
        write_csv(tmp_path / "wide.csv", wide_rows(builtin)),
        write_csv(tmp_path / "long.csv", long_rows(builtin)),
        write_jsonl(tmp_path / "wide.jsonl", wide_rows(builtin)),
        write_jsonl(tmp_path / "long.jsonl", long_rows(builtin)),
    ]
    for path in files:
        loaded = load_probe_set(path)
        assert (loaded.kind, loaded.reference_lang, loaded.name) == ("parallel", "en", path.stem)
        assert loaded.instances == builtin.instances, path.name


def test_rows_without_en_take_the_first_language_as_reference(tmp_path: Path) -> None:
    path = write(tmp_path, "de.csv", "id,de,fr\nx,Guten Morgen.,Bonjour.\n")
    assert load_probe_set(path).reference_lang == "de"


def test_every_rows_problem_is_located(tmp_path: Path) -> None:
    wide = write(
        tmp_path,
        "wide.csv",
        "id,label,en,ru,ja\n"
        "a,positive,Good soup.,Хороший суп.,おいしいスープ。\n"
        "b,,The bus is late.,,バスが遅れている。\n"
        "a,,Cold tea.,Холодный чай.,冷たいお茶。\n"
        ",,x,y,z\n"
        "c,,The park is open.,The park is open.,公園は開いている。\n",
    )
    assert messages(wide) == [
        "3: the ru text of instance 'b' is empty; write the translation",
        "4: instance id 'a' is already used on line 2; ids must be unique",
        "5: column id is empty; every parallel row needs an id",
        "6: the ru text of instance 'c' is the same as the en (reference) text; it looks untranslated",
    ]
    header = write(tmp_path, "header.csv", "id,en,russian\na,Good soup.,Хороший суп.\n")
    assert messages(header)[0].startswith("1: column 'russian' is not a BCP-47 language code")
    long = write(
        tmp_path,
        "long.csv",
        "id,lang,text,label\n"
        "a,en,Good soup.,positive\n"
        "a,ru,Хороший суп.,negative\n"
        "a,ru,Суп хороший.,\n"
        "b,en,The bus is late.,\n"
        "b,ru_RU,Автобус опаздывает.,\n",
    )
    got = messages(long)
    expected = [
        "3: instance 'a' has label 'negative' here but 'positive' on line 2; one instance has one label",
        "4: instance 'a' already has a ru text (line 3)",
        "5: instance 'b' has no text in ru",
        "6: language 'ru_RU' is not a BCP-47 language code",
    ]
    assert len(got) == len(expected), got
    for message, start in zip(sorted(got), sorted(expected), strict=True):
        assert message.startswith(start), message
    missing = write(tmp_path, "missing.jsonl", '{"id": "a", "lang": "en", "note": "x"}\n')
    assert messages(missing) == [
        "unknown column 'note'; long parallel rows have the columns id,lang,text and optional label "
        "(or write one column per language: id,label,en,de,...)",
        "missing column(s) text; long parallel rows need id,lang,text",
    ]


def test_row_options_do_not_apply_to_parallel_rows(tmp_path: Path) -> None:
    path = write(tmp_path, "p.csv", "id,en,de\na,Good soup.,Gute Suppe.\n")
    with pytest.raises(ProbeFileError, match="not to parallel rows"):
        load_probe_set(path, defaults={"attribute": "language"})


def test_variants_rows_are_not_read_as_parallel(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "v.csv",
        "instance_id,variant,attribute,text,lang\ng,en,language,Good morning.,en\ng,de,language,Guten Morgen.,de\n",
    )
    probe_set = load_probe_set(path)
    assert probe_set.kind == "counterfactual" and probe_set.reference_lang is None


# ------------------------------------------------------------------------------ the schema


def test_schema_ties_kind_parallel_to_a_reference_present_in_every_instance() -> None:
    variants = tuple(
        Variant(instance_id="x", variant=lang, attribute="language", text=text, lang=lang)
        for lang, text in (("en", "Hello."), ("de", "Hallo."))
    )
    instance = Instance(instance_id="x", attribute="language", variants=variants)
    ProbeSet(name="p", kind="parallel", instances=(instance,), reference_lang="de")
    with pytest.raises(ValueError, match="kind parallel goes with a reference_lang"):
        ProbeSet(name="p", kind="parallel", instances=(instance,))
    with pytest.raises(ValueError, match="kind parallel goes with a reference_lang"):
        ProbeSet(name="p", instances=(instance,), reference_lang="en")
    with pytest.raises(ValueError, match="no text in the reference language 'fr'"):
        ProbeSet(name="p", kind="parallel", instances=(instance,), reference_lang="fr")


def test_the_reference_language_is_part_of_the_content_hash() -> None:
    multilingual = load_builtin("multilingual")
    other = multilingual.model_copy(update={"reference_lang": "de"})
    assert multilingual.content_hash() != other.content_hash()


# ------------------------------------------------------------------------------------ scripts


def test_script_of_reads_unicode_names() -> None:
    assert [script_of(c) for c in "aЖشनि中あア한1 ,。"] == [
        "Latin",
        "Cyrillic",
        "Arabic",
        "Devanagari",
        "Devanagari",  # the vowel sign (a combining mark) belongs to its script
        "Han",
        "Hiragana",
        "Katakana",
        "Hangul",
        None,
        None,
        None,
        None,
    ]
    assert scripts_in("ホテルの部屋") == {"Katakana": 3, "Hiragana": 1, "Han": 2}
    assert expected_scripts("sr-Latn") == {"Latin"} and expected_scripts("ja") == {
        "Han",
        "Hiragana",
        "Katakana",
    }
    assert expected_scripts("tlh") is None


# ------------------------------------------------------------------------------ the built-in set


def test_builtin_multilingual_is_listed_apart_from_the_default_sets() -> None:
    assert "multilingual" in list_builtin()
    assert list_builtin(kind="parallel") == ["multilingual"]
    assert "multilingual" not in list_builtin(kind="counterfactual")


def test_builtin_multilingual_has_150_meanings_in_11_languages() -> None:
    assert validate_file("multilingual") == []
    probe_set = load_builtin("multilingual")
    assert (probe_set.kind, probe_set.reference_lang, probe_set.source) == (
        "parallel",
        "en",
        "builtin:multilingual",
    )
    assert len(probe_set.instances) >= 150
    for instance in probe_set.instances:
        assert instance.groups == LANGUAGES
        assert [v.lang for v in instance.variants] == LANGUAGES
        assert len({v.label for v in instance.variants}) == 1
        assert 5 <= len(instance.variants[0].text.split()) <= 15, instance.instance_id
    labels: dict[str, set[str | None]] = {}
    for instance in probe_set.instances:
        labels.setdefault(instance.instance_id.split("-")[0], set()).add(instance.variants[0].label)
    assert labels == {"pos": {"positive"}, "neg": {"negative"}, "neu": {None}}
    counts = {prefix: sum(i.instance_id.startswith(prefix) for i in probe_set.instances) for prefix in labels}
    assert counts == {"pos": 50, "neg": 50, "neu": 50}


def test_builtin_multilingual_covers_seven_scripts_each_where_it_belongs() -> None:
    probe_set = load_builtin("multilingual")
    per_language: dict[str, set[str]] = {lang: set() for lang in LANGUAGES}
    for variant in probe_set.variants:
        assert unicodedata.is_normalized("NFC", variant.text)
        written = set(scripts_in(variant.text))
        per_language[variant.lang] |= written
        expected = expected_scripts(variant.lang)
        assert expected is not None and written & expected, (variant.instance_id, variant.lang)
    all_scripts = set().union(*per_language.values())
    assert {"Latin", "Cyrillic", "Arabic", "Devanagari", "Han", "Hiragana", "Katakana"} <= all_scripts
    assert len(all_scripts) >= 5
    for variant in probe_set.variants:  # most letters are in the language's own script(s): "USB" is fine
        counts = scripts_in(variant.text)
        own = sum(n for script, n in counts.items() if script in (expected_scripts(variant.lang) or ()))
        assert own > 0.5 * sum(counts.values()), (variant.instance_id, variant.lang, counts)
    for lang in ("en", "de", "fr", "es", "tr", "sw"):
        assert per_language[lang] == {"Latin"}, lang
    assert "Hiragana" not in per_language["zh"] and "Katakana" not in per_language["zh"]
    japanese = [v.text for v in probe_set.variants if v.lang == "ja"]
    assert all(set(scripts_in(text)) & {"Hiragana", "Katakana"} for text in japanese)


def test_builtin_multilingual_texts_differ_within_every_instance() -> None:
    for instance in load_builtin("multilingual").instances:
        texts = [v.text for v in instance.variants]
        assert len(set(texts)) == len(texts), instance.instance_id


def test_builtin_multilingual_card_states_how_it_was_made() -> None:
    card = load_builtin("multilingual").card
    assert card.startswith("# multilingual")
    assert "not been checked by native speakers" in card
    assert "Apache-2.0" in card and "**Known limits and confounds.**" in card
    assert "**with no label**" in " ".join(card.split())


# ----------------------------------------------------------------------------- docs examples


def _doc_examples() -> list[tuple[str, str]]:
    text = DOCS.read_text(encoding="utf-8")
    return re.findall(r"```(yaml|csv|jsonl) parallel-example\n(.*?)```", text, flags=re.S)


def test_docs_show_the_three_parallel_formats() -> None:
    assert sorted(fmt for fmt, _ in _doc_examples()) == ["csv", "csv", "yaml"]


@pytest.mark.parametrize("index", range(3))
def test_every_parallel_docs_example_loads(index: int, tmp_path: Path) -> None:
    fmt, body = _doc_examples()[index]
    path = write(tmp_path, f"example{index}.{fmt}", body)
    assert validate_file(path) == []
    probe_set = load_probe_set(path)
    assert probe_set.kind == "parallel" and probe_set.reference_lang == "en"
    assert len(probe_set.instances) >= 2


def test_docs_wide_and_long_examples_match_the_yaml_one(tmp_path: Path) -> None:
    sets = [
        load_probe_set(write(tmp_path, f"e{i}.{fmt}", body)) for i, (fmt, body) in enumerate(_doc_examples())
    ]
    assert sets[0].instances == sets[1].instances == sets[2].instances
