"""`audit run`'s options are AuditConfig's fields: every setting on the command line with its default
in --help, the flags the README and the tests use, and flags over audit.yaml only where given."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import pytest
import typer
from pydantic import BaseModel, Field

from audit.cli import run_command
from audit.cli_settings import with_settings
from audit.config import AuditConfig, Flag, setting_flag
from audit.errors import UserError

FLAGS = {  # every flag `audit run` had before its options were derived from AuditConfig
    "--model", "-m", "--probes", "-p", "--probe-map", "--probe-default", "--probe-split", "--associations",
    "--task", "--config", "--out", "--name", "--overwrite", "--no-overwrite", "--device", "--revision",
    "--allow-pickle", "--no-allow-pickle", "--max-length", "--batch-tokens", "--max-instances", "--seed",
    "--alpha", "--min-effect", "--attribute-top", "--ig-steps", "--attributions", "--no-attributions",
    "--ig-max-steps", "--ig-tolerance", "--ig-rule",  # issue 13: integrated gradients complete within a tolerance
    "--attention", "--no-attention", "--long-inputs", "--window-stride", "--window-aggregate",
    "--max-doc-tokens", "--long-attribute-top", "--long-token-attributions", "--no-long-token-attributions",
    "--unknown-rate-limit", "--generate", "--sample", "--greedy", "--max-new-tokens", "--generation-scorer",
    "--patching", "--no-patching",
    "--fail-on", "--json", "--start-token",
}  # fmt: skip


def test_run_has_the_same_flags_and_every_setting_shows_its_default() -> None:
    params = run_command().params
    assert {flag for p in params for flag in [*p.opts, *p.secondary_opts]} == FLAGS
    settings = [p for p in params if p.name in AuditConfig.model_fields]
    on_command_line = [n for n in AuditConfig.model_fields if setting_flag(AuditConfig, n).on_command_line]
    assert [p.name for p in settings] == on_command_line
    for param in settings:
        assert isinstance(param.show_default, str) or param.default not in (None, [], ()), param.name


def test_help_shows_the_defaults(run_cli, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    result = run_cli("run", "--help")
    assert result.exit_code == 0
    for shown in ("[default: runs]", "[default: 0]", "[default: 0.05]", "[default: 0.02]", "[default: 10]",
                  "[default: 32]", "[default: 8192]", "[default: no-overwrite]", "[default: sample]",
                  "[default: (<timestamp>-<model>)]"):  # fmt: skip
        assert shown in result.stdout, shown
    assert result.stdout.count("<bool>") == 1  # typer's own --help; the settings' flags show none


def given(*args: str) -> dict[str, Any]:
    """The settings `audit run` hands on for these flags (what the command line gave, nothing else)."""
    seen: list[dict[str, Any]] = []

    def capture(settings: dict[str, Any], as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
        seen.append(settings)

    app = typer.Typer()
    app.command()(with_settings(AuditConfig, capture))
    typer.main.get_command(app).main(list(args), standalone_mode=False)
    return seen[0]


def test_only_flags_given_are_handed_on_and_they_win_over_the_file(tmp_path: Path) -> None:
    assert given() == {}
    assert given("--json") == {}
    flags = given("--seed", "0", "--no-attention", "--probe-map", "text_a=sent_more", "-m", "a", "-m", "b")
    assert flags == {
        "seed": 0,
        "attention": False,
        "probe_mapping": {"text_a": "sent_more"},
        "models": ["a", "b"],
    }
    config_file = tmp_path / "audit.yaml"
    config_file.write_text("seed: 5\nattention: true\nmin_effect: 0.1\nsample: false\n", encoding="utf-8")
    config = AuditConfig.from_yaml(config_file, **flags)
    assert (config.seed, config.attention, config.min_effect, config.sample) == (0, False, 0.1, False)
    assert config.models == ["a", "b"] and config.probe_mapping == {"text_a": "sent_more"}
    assert given("--greedy", "--task", "auto", "--attribute-top", "all") == {
        "sample": False,
        "task": "auto",
        "attribute_top": "all",
    }


def test_a_setting_without_a_visible_default_is_refused() -> None:
    class Settings(BaseModel):
        limit: int | None = Field(default=None, description="A cap.")
        shown: Annotated[int | None, Flag(shown_default="none")] = Field(default=None, description="A cap.")

    with pytest.raises(TypeError, match="Settings.limit"):
        with_settings(Settings, lambda settings: None)


def test_help_names_the_settings_only_a_config_file_sets(run_cli, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "400")
    result = run_cli("run", "--help")
    assert result.exit_code == 0
    text = " ".join(result.stdout.split())
    file_only = [n for n in AuditConfig.model_fields if not setting_flag(AuditConfig, n).on_command_line]
    assert file_only, "the test needs a config-file-only setting"
    for name in file_only:
        default = AuditConfig.model_fields[name].get_default(call_default_factory=True)
        shown = setting_flag(AuditConfig, name).shown_default or (
            ", ".join(map(str, default)) if isinstance(default, list) else str(default)
        )
        assert f"{name} = {shown}:" in text, name
    assert "confidence = 1 - alpha:" in text


def test_confidence_follows_alpha_unless_set_and_then_the_run_warns(tmp_path: Path) -> None:
    """The intervals agree with the raw p-value at 1 - confidence and significance reads q at alpha:
    left out, confidence is 1 - alpha, from the command line or a config file; set apart from alpha,
    it is kept and the run is warned (``interval_level_note``, a warning of the compare stage)."""
    assert AuditConfig.build({}).confidence == 0.95 and AuditConfig.build({}).interval_level_note() is None
    loose = AuditConfig.build(given("--alpha", "0.1"))
    assert loose.confidence == 0.9 and loose.test_options.confidence == 0.9
    assert loose.interval_level_note() is None
    config_file = tmp_path / "audit.yaml"
    config_file.write_text("alpha: 0.01\n", encoding="utf-8")
    assert AuditConfig.from_yaml(config_file).confidence == 0.99
    assert AuditConfig.from_yaml(config_file, **given("--alpha", "0.2")).confidence == 0.8  # the flag wins
    config_file.write_text("confidence: 0.95\n", encoding="utf-8")
    apart = AuditConfig.from_yaml(config_file, **given("--alpha", "0.1"))
    assert (apart.alpha, apart.confidence) == (0.1, 0.95)
    note = apart.interval_level_note()
    assert note is not None and "confidence = 0.95 is not 1 - alpha = 0.9" in note
    with pytest.raises(UserError, match="alpha"):
        AuditConfig.build({"alpha": 2})
