"""Engine errors told in the words of the command line: a setting's flag, not its field."""

from __future__ import annotations

from collections.abc import Mapping

from ..generate import FieldError, GenerationError


def name_flags(error: GenerationError, flags: Mapping[str, str]) -> GenerationError:
    """`error` with each field's message led by the flag that sets it
    (e.g. "--samples: draws must be ..."); the fields stay as they are."""

    def told(item: FieldError | str) -> FieldError | str:
        if isinstance(item, FieldError) and item.field in flags:
            return FieldError(item.field, f"{flags[item.field]}: {item.message}", item.unreachable)
        return item

    return GenerationError(*(told(item) for item in error.args))
