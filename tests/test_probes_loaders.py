"""Loaders on real small files: YAML templates, CSV/JSONL pairs and variants, local HF datasets."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

from audit.errors import ProbeFileError, UserError  # noqa: E402
from probes import ProbeSet, load_hf_dataset, load_probe_set, validate_file  # noqa: E402
from probes.long_document import count_words, materialize  # noqa: E402

DATA = Path(__file__).parent / "data" / "probes"
DOCS = Path(__file__).parent.parent / "docs" / "probes.md"


def by_id(probe_set: ProbeSet) -> dict[str, dict[str, tuple[str, list[str]]]]:
    """instance id -> variant -> (text, focused substrings)."""
    return {
        i.instance_id: {v.variant: (v.text, [v.text[s.start : s.end] for s in v.focus]) for v in i.variants}
        for i in probe_set.instances
    }


def test_yaml_templates_expand_with_lexicons_paired_lists_filters_and_focus() -> None:
    probe_set = load_probe_set(DATA / "templates.yaml")
    got = by_id(probe_set)
    assert list(got) == [
        "t1-nurse",
        "t1-engineer",
        "t1-software-developer",
        "t2-1",
        "t2-2",
        "report-nurse",
        "report-engineer",
        "report-software-developer",
    ]
    assert got["t1-engineer"] == {
        "male": ("He works as an engineer.", ["He"]),
        "female": ("She works as an engineer.", ["She"]),
    }
    # name i of every group makes instance i; both group slots are focus spans
    assert got["t2-2"] == {
        "male": ("John said he was tired.", ["John", "he"]),
        "female": ("Patricia said she was tired.", ["Patricia", "she"]),
    }
    # nonbinary defines only the possessive, so it appears only where that is all a template needs
    assert got["report-nurse"]["nonbinary"] == ("I read their report on the nurse shortage.", ["their"])
    assert "nonbinary" not in got["t1-nurse"]
    report = next(i for i in probe_set.instances if i.instance_id == "report-nurse")
    assert {v.label for v in report.variants} == {"neutral"}
    assert report.context == "I read {possessive} report on the {occupation} shortage."
    assert probe_set.name == "gender-occupations"
    assert probe_set.attributes == ["gender"]
    assert probe_set.card.startswith("# gender-occupations (test card)")
    (association,) = probe_set.associations
    assert association.name == "career_vs_family" and len(association.a) == 8 and "home" in association.b


def test_loading_is_stable() -> None:
    first = load_probe_set(DATA / "templates.yaml")
    second = load_probe_set(str(DATA / "templates.yaml"))
    assert first.content_hash() == second.content_hash()


@pytest.mark.parametrize("name", ["pairs.csv", "pairs.jsonl"])
def test_pairs_rows_make_two_variants_with_word_level_focus(name: str) -> None:
    probe_set = load_probe_set(DATA / name)
    got = by_id(probe_set)
    assert got["nurse"] == {"male": ("He is a nurse.", ["He"]), "female": ("She is a nurse.", ["She"])}
    # no instance_id: named after its line; a change inside a word widens to the whole word
    assert got["line3"] == {"short": ("John is here.", ["John"]), "long": ("Jonathan is here.", ["Jonathan"])}
    nurse = next(i for i in probe_set.instances if i.instance_id == "nurse")
    assert [v.label for v in nurse.variants] == ["positive", "positive"]
    assert probe_set.name == "pairs"
    assert sorted(probe_set.attributes) == ["gender", "name_length"]


def test_pairs_csv_quoting_and_insertions() -> None:
    got = by_id(load_probe_set(DATA / "pairs.csv"))
    assert got["quote"] == {
        "male": ('The man said, "hello".', ["man"]),
        "female": ('The woman said, "hello".', ["woman"]),
    }
    # a text that only lacks a word gets no focus; the other text's focus has no stray spaces
    assert got["insert"] == {
        "unmarked": ("I met the nurse.", []),
        "marked": ("I met the male nurse.", ["male"]),
    }


def test_variants_csv_groups_rows_by_instance() -> None:
    probe_set = load_probe_set(DATA / "variants.csv")
    got = by_id(probe_set)
    assert got["greet"] == {
        "male": ("He said hello.", ["He"]),
        "female": ("She said hello.", ["She"]),
        "nonbinary": ("They said hello.", ["They"]),
    }
    assert got["cook"]["muslim"] == ("My Muslim neighbour cooks well.", ["Muslim"])
    assert {i.instance_id: i.attribute for i in probe_set.instances} == {
        "greet": "gender",
        "cook": "religion",
    }


def test_variants_jsonl_keeps_languages() -> None:
    probe_set = load_probe_set(DATA / "variants.jsonl")
    (instance,) = probe_set.instances
    assert [(v.variant, v.lang) for v in instance.variants] == [("en", "en"), ("de", "de"), ("fr", "fr")]
    # all three texts differ up to the final full stop
    assert [v.text[v.focus[0].start : v.focus[0].end] for v in instance.variants] == [
        "Good morning, friend",
        "Guten Morgen, Freund",
        "Bonjour, mon ami",
    ]


def test_builtin_names_resolve_and_unknown_names_say_what_exists() -> None:
    assert load_probe_set("gender").source == "builtin:gender"
    assert load_probe_set("builtin:age").name == "age"
    with pytest.raises(
        UserError, match=r"gendr is neither a file nor a built-in probe set; built-in sets: age, "
    ):
        load_probe_set("gendr")


def test_load_raises_with_every_problem_and_returns_nothing() -> None:
    with pytest.raises(ProbeFileError) as caught:
        load_probe_set(DATA / "bad_pairs.csv")
    assert len(caught.value.problems) == 6
    assert str(caught.value).splitlines()[0].startswith(f"{DATA / 'bad_pairs.csv'}:3: column text_a is empty")


def test_mapping_and_defaults_rename_and_fill_csv_columns(tmp_path: Path) -> None:
    path = tmp_path / "crows.csv"
    path.write_text(
        "sent_more,sent_less,bias_type\nHe is a doctor.,She is a doctor.,gender\n", encoding="utf-8"
    )
    probe_set = load_probe_set(
        path,
        mapping={"text_a": "sent_more", "text_b": "sent_less", "attribute": "bias_type"},
        defaults={"group_a": "more", "group_b": "less"},
        name="crows-mini",
    )
    assert probe_set.name == "crows-mini"
    assert by_id(probe_set) == {
        "line2": {"more": ("He is a doctor.", ["He"]), "less": ("She is a doctor.", ["She"])}
    }


# ------------------------------------------------------------------------------ Hugging Face


def test_hf_dataset_saved_to_disk_with_column_mapping(tmp_path: Path) -> None:
    from datasets import Dataset

    Dataset.from_dict(
        {
            "sent_more": ["He is a doctor.", "Tyrone was arrested."],
            "sent_less": ["She is a doctor.", "Greg was arrested."],
            "bias_type": ["gender", "race"],
        }
    ).save_to_disk(str(tmp_path / "crows"))
    probe_set = load_hf_dataset(
        tmp_path / "crows",
        mapping={"text_a": "sent_more", "text_b": "sent_less", "attribute": "bias_type"},
        defaults={"group_a": "more", "group_b": "less"},
    )
    assert probe_set.name == "crows"
    assert by_id(probe_set) == {
        "record1": {"more": ("He is a doctor.", ["He"]), "less": ("She is a doctor.", ["She"])},
        "record2": {"more": ("Tyrone was arrested.", ["Tyrone"]), "less": ("Greg was arrested.", ["Greg"])},
    }
    assert probe_set.attributes == ["gender", "race"]


def test_hf_dataset_dict_needs_a_split_and_reports_records(tmp_path: Path) -> None:
    from datasets import Dataset, DatasetDict

    rows = {
        "instance_id": ["a", "a", "b", "b"],
        "variant": ["male", "female", "male", "female"],
        "attribute": ["gender"] * 4,
        "text": ["He sings.", "She sings.", "He reads.", ""],
    }
    good = Dataset.from_dict({k: v[:2] for k, v in rows.items()})
    DatasetDict({"train": good, "test": Dataset.from_dict(rows)}).save_to_disk(str(tmp_path / "dd"))
    problems = validate_file(tmp_path / "dd")
    assert [str(p) for p in problems] == [
        f"{tmp_path / 'dd'}: the dataset has several splits; choose one with --probe-split NAME "
        "(Python: split='NAME'): train, test"
    ]
    assert len(load_probe_set(tmp_path / "dd", split="train").instances) == 1
    problems = validate_file(tmp_path / "dd", split="test")
    assert [str(p) for p in problems] == [
        f"{tmp_path / 'dd'}[test]:3: instance 'b' has only 1 variant ('male'); add at least one more row with "
        "instance_id b",
        f"{tmp_path / 'dd'}[test]:4: column text is empty; every variants row needs instance_id,variant,attribute,text",
    ]


def test_hf_loader_reads_a_local_csv_through_datasets() -> None:
    probe_set = load_hf_dataset(DATA / "variants.csv")
    assert by_id(probe_set) == by_id(load_probe_set(DATA / "variants.csv"))


def test_hf_loader_refuses_paths_that_do_not_exist(tmp_path: Path) -> None:
    with pytest.raises(ProbeFileError, match="local paths only, never the hub"):
        load_hf_dataset("someone/some-dataset-on-the-hub")


# ------------------------------------------------------------------------------- docs examples


def _doc_examples() -> list[tuple[str, str]]:
    text = DOCS.read_text(encoding="utf-8")
    return re.findall(r"```(yaml|csv|jsonl) probe-example\n(.*?)```", text, flags=re.S)


def test_docs_have_one_complete_example_per_format() -> None:
    assert sorted({fmt for fmt, _ in _doc_examples()}) == ["csv", "jsonl", "yaml"]
    assert len(_doc_examples()) == 6
    assert sum("kind: long_document" in body for _, body in _doc_examples()) == 1


@pytest.mark.parametrize("index", range(6))
def test_every_docs_example_loads(index: int, tmp_path: Path) -> None:
    fmt, body = _doc_examples()[index]
    path = tmp_path / f"example{index}.{fmt}"
    path.write_text(body, encoding="utf-8")
    assert validate_file(path) == []
    probe_set = load_probe_set(path)
    if probe_set.kind == "long_document":  # instances are built per model
        assert not probe_set.materialized
        probe_set = materialize(probe_set, count_words, model_max=512)
    assert len(probe_set.instances) >= 1


def test_article_filter_reads_words_and_numbers(tmp_path: Path) -> None:
    f = tmp_path / "articles.yaml"
    f.write_text(
        "attribute: age\n"
        "groups:\n"
        "  young: {age: [18-year-old, 25-year-old, 11-year-old]}\n"
        "  old: {age: [80-year-old, 70-year-old, 8-year-old]}\n"
        "lexicons:\n"
        "  thing: [hour, university, engineer, European, umbrella, honest answer]\n"
        'templates:\n  - "{age|a|cap} waited {thing|a}."\n',
        encoding="utf-8",
    )
    texts = {(i.instance_id, v.variant): v.text for i in load_probe_set(f).instances for v in i.variants}
    assert texts[("t1-hour-1", "young")] == "An 18-year-old waited an hour."
    assert texts[("t1-university-1", "old")] == "An 80-year-old waited a university."
    assert texts[("t1-engineer-2", "young")] == "A 25-year-old waited an engineer."
    assert texts[("t1-european-2", "old")] == "A 70-year-old waited a European."
    assert texts[("t1-umbrella-3", "young")] == "An 11-year-old waited an umbrella."
    assert texts[("t1-honest-answer-3", "old")] == "An 8-year-old waited an honest answer."


def test_article_filter_reads_initialisms_and_letters_as_spoken(tmp_path: Path) -> None:
    f = tmp_path / "initialisms.yaml"
    things = [
        "FBI agent",
        "MBA student",
        "x-ray technician",
        "HR manager",
        "LLM",
        "SQL developer",
        "NGO",
        "HTML page",
        "NASA engineer",
        "UFO",
        "NATO summit",
        "BBC reporter",
        "T-shirt",
        "U-turn",
        "e-mail",
        "AI",
    ]
    f.write_text(
        "attribute: gender\ngroups:\n  m: {p: He}\n  f: {p: She}\n"
        f"lexicons:\n  thing: [{', '.join(things)}]\n"
        'templates:\n  - "{p} saw {thing|a}."\n',
        encoding="utf-8",
    )
    seen = [i.variants[0].text for i in load_probe_set(f).instances]
    assert seen == [
        "He saw an FBI agent.",
        "He saw an MBA student.",
        "He saw an x-ray technician.",
        "He saw an HR manager.",
        "He saw an LLM.",
        "He saw an SQL developer.",
        "He saw an NGO.",
        "He saw an HTML page.",
        "He saw a NASA engineer.",
        "He saw a UFO.",
        "He saw a NATO summit.",
        "He saw a BBC reporter.",
        "He saw a T-shirt.",
        "He saw a U-turn.",
        "He saw an e-mail.",
        "He saw an AI.",
    ]


def test_docs_example_labels_exist_in_the_bundled_sentiment_classifier(tmp_path: Path) -> None:
    from audit.bundled.minilm_sentiment import LABELS

    labels = set()
    for index, (fmt, body) in enumerate(_doc_examples()):
        path = tmp_path / f"example{index}.{fmt}"
        path.write_text(body, encoding="utf-8")
        labels |= {v.label for v in load_probe_set(path).variants if v.label is not None}
    assert labels, "the docs should show at least one expected label"
    assert labels <= set(LABELS)
