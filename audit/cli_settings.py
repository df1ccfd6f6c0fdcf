"""A pydantic model's fields as options of a typer command: how `audit run` gets one option per
AuditConfig setting without writing any of them again.

Each field becomes a keyword parameter annotated for typer (its flag, the type the command line parses,
its description as help, its default as --help shows it), and `with_settings` puts those parameters in
front of a command function's own. The function receives the settings given on the command line as a
dict (the model's field names as keys), ready to lay over a config file.
"""

from __future__ import annotations

import inspect
import types
import typing
from collections.abc import Callable
from typing import Annotated, Any, Literal, get_args, get_origin

import typer
from pydantic import BaseModel

from audit.config import setting_flag
from audit.errors import UserError

LONGEST_METAVAR = 20
"""Choices that take more characters than this go into the help text: the type column stays narrow."""


def with_settings(model: type[BaseModel], function: Callable[..., None]) -> Callable[..., None]:
    """`function(settings, **own_options)` as a typer command callback: one option per field of `model`,
    then the function's own options. `settings` holds only the fields given on the command line, so a
    default never hides a value from a config file."""
    own = list(inspect.signature(function, eval_str=True).parameters.values())[1:]
    options = setting_parameters(model)

    def command(ctx: typer.Context, **values: Any) -> None:
        settings = {p.name: values.pop(p.name) for p in options}
        given = {name: value for name, value in settings.items() if given_on_command_line(ctx, name)}
        function(command_line_settings(model, given), **values)

    command.__name__ = function.__name__
    command.__doc__ = function.__doc__
    context = inspect.Parameter("ctx", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=typer.Context)
    keyword_only = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in own]
    command.__signature__ = inspect.Signature([context, *options, *keyword_only])  # type: ignore[attr-defined]
    return command


def setting_parameters(model: type[BaseModel]) -> list[inspect.Parameter]:
    """One keyword parameter per field of `model` that is on the command line, annotated for typer."""
    parameters = []
    for name, field in model.model_fields.items():
        flag = setting_flag(model, name)
        if not flag.on_command_line:
            continue
        default = field.get_default(call_default_factory=True)
        if flag.shown_default is None and default in (None, [], {}):
            raise TypeError(
                f"{model.__name__}.{name}: say its default for --help with Flag(shown_default=...)"
            )
        parsed_as, metavar = command_line_type(field.annotation)
        long = str(flag.name)
        decls = [f"{long}/{flag.off or '--no-' + long[2:]}" if parsed_as is bool else long]
        help_text = field.description or ""
        if metavar and len(metavar) > LONGEST_METAVAR:  # a long list of choices reads better as help
            help_text, metavar = f"{help_text} One of: {metavar[1:-1].replace('|', ' | ')}.", "<choice>"
        option = typer.Option(
            *decls,
            *([flag.short] if flag.short else []),
            help=help_text,
            metavar=metavar,
            show_default=flag.shown_default or True,
        )
        annotation = Annotated[parsed_as, option]  # type: ignore[valid-type]
        parameters.append(
            inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=annotation)
        )
    return parameters


def file_only_settings_help(model: type[BaseModel]) -> str:
    """The settings of `model` that only a config file sets, with their defaults: the epilog of `--help`."""
    rows = []
    for name, field in model.model_fields.items():
        if setting_flag(model, name).on_command_line:
            continue
        default = field.get_default(call_default_factory=True)
        shown = setting_flag(model, name).shown_default or (
            ", ".join(map(str, default)) if isinstance(default, list) else str(default)
        )
        rows.append(f"{name} = {shown}: {field.description or ''}")
    if not rows:
        return ""
    return (
        "Set only in a --config file, whose keys are the settings' names (min_effect, attribute_top, ...): "
        + " ".join(rows)
    )


def command_line_type(annotation: Any) -> tuple[Any, str | None]:
    """The type the command line parses a field as, and the metavar --help shows (None: typer's own).

    Optional fields parse as their type; a dict parses from repeated KEY=VALUE flags; choices (Literal)
    and mixed unions such as `int | Literal["all"]` parse as text, which the model then checks, and show
    their choices."""
    members = (
        [a for a in get_args(annotation) if a is not type(None)] if is_union(annotation) else [annotation]
    )
    if len(members) == 1 and get_origin(members[0]) is not Literal:
        (parsed_as,) = members
        if get_origin(parsed_as) is dict:
            return list[str], "<KEY=VALUE>"
        return parsed_as, ("" if parsed_as is bool else None)
    words = [str(c) for m in members for c in (get_args(m) if get_origin(m) is Literal else [m.__name__])]
    return str, "<" + "|".join(words) + ">"


def is_union(annotation: Any) -> bool:
    return get_origin(annotation) in (typing.Union, types.UnionType)


def given_on_command_line(ctx: typer.Context, name: str) -> bool:
    source = ctx.get_parameter_source(name)
    return source is not None and source.name == "COMMANDLINE"


def command_line_settings(model: type[BaseModel], given: dict[str, Any]) -> dict[str, Any]:
    """Flag values as the model's fields take them: KEY=VALUE flags of a dict field become its dict."""
    return {
        name: parse_pairs(value, str(setting_flag(model, name).name))
        if get_origin(model.model_fields[name].annotation) is dict
        else value
        for name, value in given.items()
    }


def parse_pairs(values: list[str] | None, flag: str) -> dict[str, str]:
    """KEY=VALUE flags into a dict; a value without '=' is a user error naming the flag."""
    pairs: dict[str, str] = {}
    for value in values or []:
        key, sep, item = value.partition("=")
        if not sep or not key.strip() or not item.strip():
            raise UserError(f"{flag} takes KEY=VALUE (for example text_a=sent_more), not {value!r}")
        pairs[key.strip()] = item.strip()
    return pairs
