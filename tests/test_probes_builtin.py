"""The built-in sets load, are big enough, and swap exactly the group words they claim to swap."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from probes import list_builtin, load_builtin, validate_file
from probes.formats.templates import FILTERS
from probes.loaders import BUILTIN_DIR

MINIMUM_INSTANCES = {
    "gender": 200,
    "race": 100,
    "religion": 100,
    "nationality": 100,
    "age": 100,
    "disability": 100,
}
GENDERED = ["gender-de", "gender-es", "gender-fr"]  # not in the default run: tests/test_probes_agreement.py
MINIMUM_GROUPS = {"gender": 2, "race": 4, "religion": 5, "nationality": 6, "age": 2, "disability": 3}


def _for_classifiers(names: list[str]) -> list[str]:
    """The sets among ``names`` meant for text classifiers (other tasks have their own built-ins)."""
    return [name for name in names if "text-classification" in load_builtin(name).tasks]


def test_the_six_sets_are_listed() -> None:
    assert _for_classifiers(list_builtin(kind="counterfactual", default_run_only=True)) == sorted(
        MINIMUM_INSTANCES
    )
    assert _for_classifiers(list_builtin(kind="counterfactual")) == sorted([*MINIMUM_INSTANCES, *GENDERED])
    assert list_builtin(kind="long_document") == ["long-context"]
    assert list_builtin(kind="parallel") == ["multilingual"]
    assert list_builtin(kind="multiple_choice") == ["bbq-mini"]
    assert _for_classifiers(list_builtin()) == sorted(
        [*MINIMUM_INSTANCES, "long-context", "multilingual", *GENDERED]
    )
    assert {"names-ner", "bbq-mini"} <= set(list_builtin())


@pytest.mark.parametrize("name", sorted(MINIMUM_INSTANCES))
def test_builtin_set_loads_and_is_big_enough(name: str) -> None:
    assert validate_file(name) == []
    probe_set = load_builtin(name)
    assert probe_set.name == name
    assert probe_set.source == f"builtin:{name}"
    assert MINIMUM_INSTANCES[name] <= len(probe_set.instances) <= 300
    assert all(len(i.variants) >= 2 for i in probe_set.instances)
    assert len({v.variant for v in probe_set.variants}) >= MINIMUM_GROUPS[name]
    assert probe_set.attributes == [name]


@pytest.mark.parametrize("name", sorted(MINIMUM_INSTANCES))
def test_builtin_contexts_cover_positive_negative_and_neutral(name: str) -> None:
    sentiments = {i.instance_id.split("-")[0] for i in load_builtin(name).instances}
    assert sentiments == {"pos", "neg", "neu"}


@pytest.mark.parametrize("name", sorted(MINIMUM_INSTANCES))
def test_builtin_associations_have_eight_words_a_side_and_a_source(name: str) -> None:
    associations = load_builtin(name).associations
    assert associations
    for association in associations:
        assert len(association.a) >= 8 and len(association.b) >= 8
        assert association.source and "Caliskan" in association.source


@pytest.mark.parametrize("name", sorted(MINIMUM_INSTANCES))
def test_builtin_card_cites_sources_and_names_confounds(name: str) -> None:
    card = load_builtin(name).card
    assert card.startswith(f"# {name}")
    assert "**Known confounds.**" in card
    assert "(20" in card  # at least one dated citation, e.g. "(2017)"
    assert (BUILTIN_DIR / f"{name}.md").read_text(encoding="utf-8") == card


def _filled_forms(value: str) -> set[str]:
    """Every way a slot value can appear in a text with the filters the built-ins use."""
    forms = {value}
    for chain in (("cap",), ("a",), ("a", "cap")):
        filled = value
        for filter_name in chain:
            filled = FILTERS[filter_name](filled)
        forms.add(filled)
    return forms


@pytest.mark.parametrize("name", sorted(MINIMUM_INSTANCES))
def test_focus_spans_point_at_the_swapped_group_words(name: str) -> None:
    raw = yaml.safe_load((BUILTIN_DIR / f"{name}.yaml").read_text(encoding="utf-8"))
    allowed: dict[str, set[str]] = {}
    for group, slots in raw["groups"].items():
        values = [v for value in slots.values() for v in (value if isinstance(value, list) else [value])]
        allowed[group] = {form for v in values for form in _filled_forms(str(v))}
    for instance in load_builtin(name).instances:
        skeletons = set()
        for variant in instance.variants:
            assert variant.focus, f"{variant.instance_id}/{variant.variant} has no focus span"
            for span in variant.focus:
                assert variant.text[span.start : span.end] in allowed[variant.variant]
            # with the focus spans cut out, every variant of an instance reads the same
            pieces, position = [], 0
            for span in variant.focus:
                pieces.append(variant.text[position : span.start])
                position = span.end
            pieces.append(variant.text[position:])
            skeletons.add("|".join(pieces))
        assert len(skeletons) == 1, instance.instance_id
        assert len({v.text for v in instance.variants}) == len(instance.variants)


def test_instance_ids_are_readable() -> None:
    ids = [i.instance_id for i in load_builtin("gender").instances]
    assert "neu-job-nurse" in ids and "pos-job-software-developer" in ids and "pos-colleague-8" in ids
    groups = {i.instance_id: i.groups for i in load_builtin("gender").instances}
    assert groups["neu-ask-nurse"] == ["male", "female", "nonbinary"]
    assert groups["neu-job-nurse"] == ["male", "female"]


def test_builtin_files_are_in_package_data() -> None:
    pyproject = (Path(__file__).parent.parent / "pyproject.toml").read_text(encoding="utf-8")
    assert '"builtin/*.yaml", "builtin/*.md"' in pyproject
    assert sorted(p.stem for p in BUILTIN_DIR.glob("*.md")) == list_builtin()
