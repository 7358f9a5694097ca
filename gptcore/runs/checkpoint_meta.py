"""The schema of a checkpoint's meta.json: every field's type and range, declared once.

meta.json is covered by no hash, so it is read like any file from outside: decoded
by the typed reader (gptcore.util.typedfile) into `CheckpointMeta`, which refuses a
wrong type, a negative or huge count, a NaN or negative loss, a save time that is
no time, a file name that leaves the folder, and names the field.

Adding a field: give it a default (None, or a value that means "not recorded"), so
checkpoints written before it still load; fields this version does not know (a
newer gpt-tui's) are ignored. `save_checkpoint` (runs/checkpoint.py) writes them.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec

from gptcore.errors import DamagedCheckpoint, DamagedFile
from gptcore.settings.model import WEIGHT_PRECISIONS
from gptcore.util.typedfile import (
    META_LIMIT,
    NOT_JSON,
    Count,
    Timestamp,
    decode_json,
    read_bytes,
)

FORMAT = "gpt-tui-checkpoint"
FORMAT_VERSION = 1
WEIGHTS = "weights.safetensors"
META = "meta.json"

# A loss as meta.json records it: finite and >= 0 (NaN or infinite is written as null).
Loss = Annotated[float, msgspec.Meta(ge=0.0, le=sys.float_info.max)]
# A file of the checkpoint folder: a plain name (no separators, not hidden, so no "..").
FileName = Annotated[str, msgspec.Meta(pattern=r"^[^./\\][^/\\]*$", max_length=255)]
Sha256 = Annotated[str, msgspec.Meta(pattern=r"^[0-9a-f]{64}$")]
Seed = Annotated[int, msgspec.Meta(ge=0, le=2**63 - 1)]  # torch.int64 random_() draws
Precision = Literal[WEIGHT_PRECISIONS]  # type: ignore[valid-type]


class DataPosition(msgspec.Struct):
    """meta.json's "data": where in the data the run was (other keys are kept as written)."""

    step_in_epoch: Count = 0
    order_seed: Seed | None = None  # the current epoch's shuffle seed; None: not drawn yet
    world_size: Annotated[int, msgspec.Meta(ge=1, le=1 << 20)] = 1
    corpus_key: str | None = None
    corpus_name: str | None = None


class CheckpointMeta(msgspec.Struct, kw_only=True):
    """meta.json, field by field (see save_checkpoint for what each one holds)."""

    format: str
    format_version: int
    step: Count  # optimizer steps completed
    epoch: Count
    tokens_seen: Count
    model_config: dict[str, Any]  # checked against GPTConfig's own declarations
    train_config: dict[str, Any]
    files: dict[FileName, Sha256]
    sizes: dict[FileName, Count] = {}  # absent in checkpoints written before sizes were
    created: Timestamp = 0.0
    reason: str = ""
    best_val_loss: Loss | None = None
    val_loss: Loss | None = None
    train_loss: Loss | None = None
    loss_step: Count | None = None  # the step whose weights the losses were measured on
    precision: Precision | None = None  # what it trained in; None: not recorded
    rng: dict[str, Any] = {}
    data: DataPosition = msgspec.field(default_factory=DataPosition)


class _Head(msgspec.Struct):
    """The fields that say whose file this is, read before anything else."""

    format: Any = None
    format_version: Any = None


def read_meta(meta_path: Path) -> tuple[CheckpointMeta, dict[str, Any]]:
    """(the checked meta, the file's own JSON object) of a checkpoint's meta.json.

    DamagedCheckpoint (a CheckpointError) names the file and the first bad field;
    a file that is not gpt-tui's, or of another format version, says so;
    FileNotFoundError when it is missing."""
    folder = meta_path.parent
    try:
        data = read_bytes(meta_path, META_LIMIT)
        head = decode_json(data, _Head | list | str | float | bool | None, meta_path)
        if not isinstance(head, _Head) or head.format != FORMAT:
            raise DamagedCheckpoint(folder, f"is not a gpt-tui checkpoint (foreign {META})")
        if head.format_version != FORMAT_VERSION:
            raise DamagedCheckpoint(
                folder,
                f"has checkpoint format version {head.format_version!r}; "
                f"this gpt-tui reads version {FORMAT_VERSION}",
            )
        meta = decode_json(data, CheckpointMeta, meta_path)  # names the bad field
        raw = decode_json(data, dict[str, Any], meta_path)  # fields this version ignores too
    except DamagedCheckpoint:
        raise
    except DamagedFile as exc:
        problem = exc.problem
        if problem.startswith(NOT_JSON):  # the wording the Checkpoints screen has shown
            problem = f"is corrupted (not valid JSON): {problem[len(NOT_JSON) + 2 : -1]}"
        raise DamagedCheckpoint(meta_path, problem, exc.field) from None
    if WEIGHTS not in meta.files:
        raise DamagedCheckpoint(meta_path, f"must name {WEIGHTS}", "files")
    if any(name not in meta.files for name in meta.sizes):
        raise DamagedCheckpoint(meta_path, "must give sizes of the listed files only", "sizes")
    return meta, raw


def data_position(meta: CheckpointMeta, raw: dict[str, Any]) -> dict[str, Any]:
    """meta.json's "data" as a dict: the checked fields, and keys this version does
    not know as written."""
    return {**raw.get("data", {}), **msgspec.structs.asdict(meta.data)}
