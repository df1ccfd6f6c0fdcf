"""What every probe reader shares: the loading options, the problems of one file (each at a line),
reading a file as UTF-8, the normal form two texts are compared in, and building a validated
``ProbeSet``."""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from audit.errors import Problem
from probes.schema import ProbeSet


@dataclass(frozen=True)
class LoadOptions:
    """What ``load_probe_set`` was asked besides the path: the set's name and, for rows and
    datasets, the column mapping, defaults and split."""

    name: str | None = None
    mapping: Mapping[str, str] | None = None
    defaults: Mapping[str, str] | None = None
    split: str | None = None

    def has_row_options(self) -> bool:
        return bool(self.mapping or self.defaults or self.split)


class Problems:
    """Collects the problems of one file."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.items: list[Problem] = []

    def add(self, line: int | None, message: str) -> None:
        self.items.append(Problem(self.file, line, message))


def read_utf8(path: Path, problems: Problems) -> str | None:
    """The file as text, or None with one problem per line that is not valid UTF-8."""
    try:
        data = path.read_bytes()
    except OSError as error:
        problems.add(None, f"cannot read the file ({error.strerror}); check the path and its permissions")
        return None
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    for number, raw in enumerate(data.split(b"\n"), start=1):
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError as error:
            problems.add(
                number,
                f"byte 0x{raw[error.start]:02x} at column {error.start + 1} is not UTF-8; "
                "re-save the file as UTF-8 (e.g. iconv -f latin1 -t utf-8)",
            )
    return None


def normalised(text: str) -> str:
    """The text with Unicode in NFC form and whitespace collapsed and trimmed: two texts equal here
    reach the model as the same input."""
    return " ".join(unicodedata.normalize("NFC", text).split())


SAME_ONCE_NORMALISED = "are the same text once whitespace and Unicode (NFC) are normalised"


def validation_messages(error: ValidationError) -> list[str]:
    """Each of pydantic's validation errors as ``where: message``."""
    return [f"{'.'.join(str(p) for p in e['loc']) or 'value'}: {e['msg']}" for e in error.errors()]


def validated_probe_set(problems: Problems, line: int | None, **fields: Any) -> ProbeSet | None:
    """``ProbeSet(**fields)``, or None with each validation error a problem at ``line``."""
    try:
        return ProbeSet(**fields)
    except ValidationError as error:
        for message in validation_messages(error):
            problems.add(line, message)
        return None
