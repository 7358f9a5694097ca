"""Hugging Face datasets as corpora, through the optional `datasets` package.

Two forms: a folder written by `Dataset.save_to_disk` / `DatasetDict.save_to_disk`
(recognised by its state.json or dataset_dict.json), and `hf:NAME[:CONFIG][@SPLIT]`,
which `datasets.load_dataset` resolves (a hub name, streamed with whatever network
the machine has, or a local folder of data files). Each row is one document: the
text is the column named by text_field.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gptcore.data.compressed import display, need_extra
from gptcore.errors import CorpusError

HF_PREFIX = "hf:"
DEFAULT_SPLIT = "train"
BATCH_ROWS = 1000


@dataclass(frozen=True)
class HubSpec:
    """What `hf:NAME[:CONFIG][@SPLIT]` names."""

    name: str
    config: str | None
    split: str

    @classmethod
    def parse(cls, source: str) -> HubSpec:
        body = source.removeprefix(HF_PREFIX)
        body, _, split = body.partition("@")
        name, _, config = body.partition(":")
        if not name.strip():
            raise CorpusError(f"{source!r} names no dataset: write hf:NAME[:CONFIG][@SPLIT]")
        return cls(name.strip(), config.strip() or None, split.strip() or DEFAULT_SPLIT)


def is_hub_source(source: str) -> bool:
    return source.startswith(HF_PREFIX)


def is_saved_dataset(folder: Path) -> bool:
    """A folder written by save_to_disk (a Dataset or a DatasetDict)."""
    return (folder / "dataset_dict.json").is_file() or (
        (folder / "state.json").is_file() and (folder / "dataset_info.json").is_file()
    )


def _datasets(what: str) -> Any:
    try:
        import datasets
    except ImportError:
        raise need_extra("datasets", what) from None
    return datasets


def _rows(dataset: Any, column: str, where: str) -> Iterator[str]:
    names = list(dataset.column_names or [])
    if names and column not in names:
        raise CorpusError(
            f"{where} has no column {column!r} (its columns: {', '.join(names[:8])}); "
            "choose one with text_field"
        )
    for batch in dataset.iter(batch_size=BATCH_ROWS):
        for text in batch[column]:
            if text is None:
                continue
            if not isinstance(text, str):
                raise CorpusError(
                    f"{where}: column {column!r} holds {type(text).__name__}, not text"
                )
            if text and not text.isspace():
                yield text


def saved_dataset_documents(folder: Path, column: str, split: str | None = None) -> Iterator[str]:
    """The documents of a save_to_disk folder (a DatasetDict's `split`, "train" by default)."""
    datasets = _datasets(f"the dataset folder {display(folder)}")
    where = display(folder)
    try:
        loaded = datasets.load_from_disk(str(folder))
    except (OSError, ValueError) as exc:
        raise CorpusError(f"{where} is not a readable saved dataset: {exc}") from None
    if isinstance(loaded, datasets.DatasetDict):
        split = split or DEFAULT_SPLIT
        if split not in loaded:
            raise CorpusError(f"{where} has no split {split!r} (its splits: {', '.join(loaded)})")
        loaded, where = loaded[split], f"{where} split {split}"
    yield from _rows(loaded, column, where)


def hub_documents(source: str, column: str) -> Iterator[str]:
    """The documents of `hf:NAME[:CONFIG][@SPLIT]`, streamed through load_dataset."""
    spec = HubSpec.parse(source)
    datasets = _datasets(f"the dataset {source}")
    try:
        dataset = datasets.load_dataset(spec.name, spec.config, split=spec.split, streaming=True)
    except Exception as exc:  # datasets raises many kinds (network, missing config, ...)
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise CorpusError(f"cannot load the dataset {source}: {message}") from None
    yield from _rows(dataset, column, source)
