"""The instance view explains a pair's difference and says how far to trust it: on a run made by the
real CLI on the tiny planted-bias classifier (``cli_run_dir``), through Streamlit's AppTest, and its
pure helpers (dashboard/trust.py, dashboard/render.py)."""

from __future__ import annotations

import html
import re
import shutil
from pathlib import Path

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from dashboard.data import RUNS_DIR_ENV
from dashboard.render import text_html, tokens_from_pair_rows
from dashboard.trust import context_disagreement, disagreements, example_completeness, unconverged_line

APP = str(Path(__file__).resolve().parent.parent / "dashboard" / "app.py")
TIMEOUT = 60
OWN_TAG = re.compile(r'</?(?:span|div)(?:\s+[a-z-]+="[^"<>]*")*\s*>')


@pytest.fixture
def run_dir(tmp_path: Path, cli_run_dir: Path) -> Path:
    """A private copy of the CLI run (tests may change its tables)."""
    copy = tmp_path / "runs"
    shutil.copytree(cli_run_dir, copy)
    return copy / "tiny-biased"


def instances_page(run_dir: Path, monkeypatch: pytest.MonkeyPatch) -> AppTest:
    monkeypatch.setenv(RUNS_DIR_ENV, str(run_dir.parent))
    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    at.switch_page("app_pages/instances.py").run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def shown_instance(at: AppTest) -> str:
    return str(at.selectbox(key="i_instance").value)


def test_instance_view_explains_the_pair(run_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    at = instances_page(run_dir, monkeypatch)
    assert "What explains the difference" in [s.value for s in at.subheader]
    assert at.selectbox(key="i_pair").value == ("female", "male")
    labels = [m.value for m in at.markdown]
    assert any(label.startswith("**Occlusion") for label in labels)
    assert any(label.startswith("**Pair integrated gradients") for label in labels)
    texts = [h.value for h in at.html if 'class="probelens-pair-text"' in h.value]
    swapped = [t for t in texts if 'title="she → he: ' in t]
    assert len(swapped) == 2, "occlusion and pair IG each colour the swapped word on a's text"
    captions = [c.value for c in at.caption]
    assert any(c.startswith("pair IG sums to") and "complete" in c for c in captions)
    assert any(c.startswith("integrated gradients: complete") for c in captions), "per-variant IG status"
    pairs = pd.read_parquet(run_dir / "pair_attributions.parquet")
    own = pairs[(pairs["instance_id"] == shown_instance(at)) & (pairs["method"] == "occlusion")]
    top_is_swapped = bool(own.loc[own["attribution"].abs().idxmax(), "is_focus"])
    lines = [w.value for w in at.warning if w.value.startswith("Methods disagree")]
    attributions = pd.read_parquet(run_dir / "attributions.parquet")
    variant_a = attributions[attributions["example_id"] == f"gender-pairs/{shown_instance(at)}/female"]
    context = context_disagreement(own, variant_a)
    assert any("ranks the shared word" in line for line in lines) != top_is_swapped
    assert any("integrated gradients on variant a ranks" in line for line in lines) == (context is not None)
    if not lines:
        assert any(c.startswith("The methods agree") for c in captions)


def test_disagreeing_methods_get_one_line_with_guidance(
    run_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Gradient x input turned against integrated gradients on the focus word of the shown instance's
    variant a (as on MiniLM's top instance): the page says so in one line and says which to trust."""
    at = instances_page(run_dir, monkeypatch)
    instance = shown_instance(at)
    attributions = pd.read_parquet(run_dir / "attributions.parquet")
    example = f"gender-pairs/{instance}/female"
    ig_focus = attributions[
        (attributions["example_id"] == example)
        & (attributions["method"] == "integrated_gradients")
        & attributions["is_focus"]
    ]["attribution"].sum()
    flip = (
        (attributions["example_id"] == example)
        & (attributions["method"] == "gradient_x_input")
        & attributions["is_focus"]
    )
    attributions.loc[flip, "attribution"] = -abs(attributions.loc[flip, "attribution"]) * (
        1 if ig_focus > 0 else -1
    )
    attributions.to_parquet(run_dir / "attributions.parquet", index=False)
    at = instances_page(run_dir, monkeypatch)
    lines = [w.value for w in at.warning if w.value.startswith("Methods disagree")]
    assert len(lines) >= 1
    line = next(line for line in lines if "gradient × input" in line)
    assert "In variant 'female'" in line and "opposite signs" in line
    assert "integrated gradients converged, so trust it" in line


def test_unconverged_attributions_are_flagged(run_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A run whose IG misses what it explains (as on smollm2): flagged per variant, for the instance and
    for the pair, and the guidance turns to occlusion."""
    attributions = pd.read_parquet(run_dir / "attributions.parquet")
    ig = attributions["method"] == "integrated_gradients"
    attributions.loc[ig, "convergence_delta"] = 5.0  # far from the few tenths the attributions add up to
    # a run records per example whether it converged (that column wins over the convergence delta)
    attributions.loc[ig, "converged"] = False
    attributions.loc[ig, "completeness_error"] = 5.0
    attributions.to_parquet(run_dir / "attributions.parquet", index=False)
    pairs = pd.read_parquet(run_dir / "pair_attributions.parquet")
    pair_ig = pairs["method"] == "pair_integrated_gradients"
    pairs.loc[pair_ig, "converged"] = False
    pairs.loc[pair_ig, "completeness_error"] = 2.5
    pairs.to_parquet(run_dir / "pair_attributions.parquet", index=False)
    at = instances_page(run_dir, monkeypatch)
    warnings = [w.value for w in at.warning]
    assert any(w.startswith("Integrated gradients did not converge for 2 of 2") for w in warnings)
    assert any(w.startswith("pair IG sums to") and "NOT converged" in w and "250.0%" in w for w in warnings)
    assert any(c.value.startswith("integrated gradients: NOT converged") for c in at.caption)


# ---------------------------------------------------------------- the pure helpers


def test_converged_column_wins_over_the_convergence_delta() -> None:
    rows = pd.DataFrame(
        {
            "example_id": ["e", "e"],
            "method": ["integrated_gradients"] * 2,
            "attribution": [0.2, 0.1],
            "is_focus": [True, False],
            "convergence_delta": [5.0, 5.0],
        }
    )
    assert not example_completeness(rows)["e"].converged, "delta 5 against 0.3 - 5: far off"
    assert unconverged_line(rows) is not None
    newer = rows.assign(converged=True, completeness_error=0.01, n_steps=64)
    completeness = example_completeness(newer)["e"]
    assert completeness.converged and completeness.n_steps == 64 and completeness.relative_error == 0.01
    assert unconverged_line(newer) is None


def context_case(ig_on: str) -> tuple[pd.DataFrame, dict[str, pd.DataFrame]]:
    """Occlusion of "she was kind today" vs "he was kind today" ranking "kind" first among the shared
    words; variant a's own integrated gradients putting most on ``ig_on``."""
    text = "she was kind today"
    spans = {"she → he": (0, 3), "was": (4, 7), "kind": (8, 12), "today": (13, 18)}
    occlusion = pd.DataFrame(
        {
            "group_a": "female",
            "method": "occlusion",
            "unit_index": range(4),
            "text": list(spans),
            "spans": [f"[[{s}, {e}]]" for s, e in spans.values()],
            "is_focus": [True, False, False, False],
            "attribution": [0.5, 0.01, -0.2, 0.05],
        }
    )
    tokens = ["[CLS]", "she", "was", "kind", "today", "[SEP]"]
    starts = [None, 0, 4, 8, 13, None]
    ends = [None, 3, 7, 12, 18, None]
    ig = {"[CLS]": 0.9, "she": 0.4, "was": 0.0, "kind": 0.0, "today": 0.0, "[SEP]": 0.0}
    ig[ig_on] = -0.3
    attributions = pd.DataFrame(
        {
            "example_id": "s/i/female",
            "method": "integrated_gradients",
            "token_index": range(6),
            "token": tokens,
            "char_start": pd.array(starts, dtype="Int64"),
            "char_end": pd.array(ends, dtype="Int64"),
            "attribution": [ig[t] for t in tokens],
            "is_focus": [False, True, False, False, False, False],
            "converged": True,
            "completeness_error": 0.001,
            "n_steps": 32,
        }
    )
    assert text[8:12] == "kind"
    return occlusion, {"female": attributions}


def test_occlusion_and_the_variants_own_ig_naming_different_context_words_get_one_line() -> None:
    occlusion, variants = context_case("today")
    found = disagreements(occlusion, variants)
    assert len(found) == 1, found
    what, trust = found[0]
    assert "'kind' first" in what and "'today' first" in what
    assert "trust occlusion" in trust and "integrated gradients converged for a" in trust
    assert context_disagreement(occlusion, variants["female"]) == found[0]


def test_occlusion_and_the_variants_own_ig_naming_the_same_context_word_stay_silent() -> None:
    occlusion, variants = context_case("kind")
    assert disagreements(occlusion, variants) == [], "[CLS] is no word: it reaches no unit"
    without_ig = {"female": variants["female"].assign(method="gradient_x_input")}
    assert context_disagreement(occlusion, without_ig["female"]) is None, "nothing to compare with"


def test_pair_text_is_escaped_and_coloured_per_span() -> None:
    text = "<b>He</b> said <script>x</script> his"
    rows = pd.DataFrame(
        {
            "unit_index": [0, 1],
            "text": ["He his → She her", "said"],
            "spans": ["[[3, 5], [34, 37]]", "[[10, 14]]"],
            "is_focus": [True, False],
            "attribution": [-0.6, 0.1],
        }
    )
    tokens = tokens_from_pair_rows(rows)
    assert [(t.start, t.end) for t in tokens] == [(3, 5), (34, 37), (10, 14)]
    shown = text_html(text, tokens)
    text_only = OWN_TAG.sub("", shown)
    assert "<" not in text_only and ">" not in text_only
    assert html.unescape(text_only) == text
    assert shown.count('title="He his → She her: -0.6000"') == 2
