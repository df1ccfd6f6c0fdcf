"""The Patching page on real CLI runs: the circuit classifier with --patching shows its layer x
position heat map (the cells are the patching_effects rows) and one pair's layer x token map; a run
without --patching says so instead of drawing anything."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest
from streamlit.testing.v1 import AppTest

from dashboard.data import RUNS_DIR_ENV
from tests.support.cli import invoke_main

APP = str(Path(__file__).resolve().parent.parent / "dashboard" / "app.py")
PAGE = "app_pages/patching.py"


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.support.circuit_models import train_circuit_classifier
    from tests.support.tiny_models import write_pairs_csv

    root = tmp_path_factory.mktemp("patching-dashboard")
    model = train_circuit_classifier(root / "circuit", circuit_layer=2)
    pairs = write_pairs_csv(root / "pairs.csv")
    for name, extra in (("patched", ["--patching"]), ("plain", [])):
        code = invoke_main(
            "run", "--model", model, "--probes", pairs, "--out", root / "runs", "--name", name,
            "--attribute-top", "12", "--no-attributions", "--no-attention", *extra,
        )  # fmt: skip
        assert code == 0
    return root / "runs"


def open_page(runs: Path, name: str, monkeypatch: pytest.MonkeyPatch) -> AppTest:
    monkeypatch.setenv(RUNS_DIR_ENV, str(runs))
    at = AppTest.from_file(APP, default_timeout=90)
    at.query_params["run"] = json.loads((runs / name / "manifest.json").read_text())["run_id"]
    at.run()
    at.switch_page(PAGE).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def chart_cells(chart: object) -> list[pd.DataFrame]:
    proto = chart.proto  # type: ignore[attr-defined]
    return [pa.ipc.open_stream(ds.data.data).read_pandas() for ds in proto.datasets]


def test_the_page_draws_the_heat_map_of_a_patched_run(runs: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    at = open_page(runs, "patched", monkeypatch)
    charts = list(at.get("vega_lite_chart"))
    assert len(charts) == 2  # the probe set's map and one pair's
    effects = pd.read_parquet(runs / "patched" / "patching_effects.parquet")
    (cells,) = chart_cells(charts[0])
    shown = cells.set_index(["layer", "relative_position"])["effect"].sort_index()
    expected = effects.set_index(["layer", "relative_position"])["effect"].sort_index()
    pd.testing.assert_series_equal(shown, expected, check_dtype=False, check_index_type=False)
    assert json.loads(charts[0].proto.spec)["title"].startswith("pairs: mean restored fraction over 12")  # type: ignore[attr-defined]
    pair = at.selectbox(key="p_pair")
    assert "vs" in str(pair.value) and len(pair.options) == 12
    (tokens,) = chart_cells(charts[1])
    assert any("→" in label for label in tokens["label"])  # the swapped token is shown as a→b


def test_a_run_without_patching_says_how_to_get_it(runs: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    at = open_page(runs, "plain", monkeypatch)
    assert not list(at.get("vega_lite_chart"))
    assert any("without `--patching`" in info.value for info in at.info)
    assert any("--patching" in md.value for md in at.markdown)


def test_unbounded_cells_read_as_unbounded_in_the_hover() -> None:
    """Cells with 5 instances or fewer carry (-inf, inf) (the sign-flip test cannot bound them): the hover
    says "unbounded" as the findings do, and the chart still serialises (no bare infinities)."""
    import numpy as np

    from dashboard.patching import effect_cells, position_heatmap

    effects = pd.DataFrame(
        {
            "probe_set": "s", "layer": [0, 1], "relative_position": ["focus", "start"], "effect": [0.5, 0.1],
            "ci_low": [-np.inf, 0.01], "ci_high": [np.inf, 0.2], "p_value": [0.25, 0.001],
            "ci_method": ["sign-flip inversion", "BCa bootstrap"], "n": [3, 40], "n_pairs": [3, 40],
        }
    )  # fmt: skip
    cells = effect_cells(effects, "s", 0.9)
    assert cells["interval"].tolist() == [
        "unbounded (n = 3: too few instances to exclude any value at 90%)", "[+0.010, +0.200]",
    ]  # fmt: skip
    spec = position_heatmap(cells, title="s").to_dict()
    hover = [t["field"] for t in spec["layer"][0]["encoding"]["tooltip"]]
    assert {"interval", "p_value", "ci_method"} <= set(hover) and "ci_low" not in hover
    json.dumps(spec, allow_nan=False)
