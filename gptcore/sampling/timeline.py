"""The sample timeline: one prompt, one seed, the same settings, generated from each
checkpoint of a run, oldest first, so a learner sees the model go from noise to words.

Each sample is exactly what `gpt-tui generate --checkpoint C --prompt P --sample-seed S`
prints for that checkpoint: the model is loaded by gptcore.modelspec.load_spec and
sampled by gptcore.sampling.stream.generate with the same settings. An optional second
model (another run's checkpoint, a GPT-2 size) is sampled once with the same
settings and shown beside every entry.

Samples are cached in RUN/timeline.json, keyed by the model (a checkpoint's name,
save time and size; another spec's text) and by the prompt and settings, so each
checkpoint is generated once per prompt/seed/settings; a replaced checkpoint or a
changed setting generates again.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import msgspec

from gptcore.errors import CheckpointError, DamagedFile, GptTuiError
from gptcore.runs.checkpoint import load_checkpoint
from gptcore.runs.checkpoints import list_checkpoints
from gptcore.runs.rundir import RunDir, checkpoint_label
from gptcore.sampling.stream import generate
from gptcore.settings.sampling import GenerationSettings, make_settings
from gptcore.settings.train import TrainConfig
from gptcore.util.fsutil import atomic_write_text
from gptcore.util.progress import Stages
from gptcore.util.typedfile import CACHE_LIMIT as CACHE_BYTES
from gptcore.util.typedfile import read_json
from gptcore.weights.modelspec import checkpoint_path, load_spec
from gptcore.weights.spec import CHECKPOINT_KINDS, parse_spec

# The book's chapter-5 prompt and seed: the run's own defaults.
DEFAULT_PROMPT, DEFAULT_SEED = TrainConfig.start_context, TrainConfig.seed
CACHE_FORMAT = "gpt-tui-timeline"
CACHE_VERSION = 1
CACHE_LIMIT = 2000  # samples kept in timeline.json (the oldest go first)

Progress = Callable[[int, int], None]
Cancel = Callable[[], bool]


@dataclass(frozen=True)
class TimelineEntry:
    """One checkpoint's sample. `text` is the continuation after the prompt (None when
    the checkpoint is damaged: `error` says why); `other_text` is the second model's
    continuation (the same on every entry; None without one)."""

    checkpoint: Path
    label: str  # RUN/NAME
    step: int | None
    tokens_seen: int | None
    val_loss: float | None
    text: str | None
    other_text: str | None = None
    error: str | None = None

    def to_record(self) -> dict[str, Any]:
        """The entry as plain JSON values (`gpt-tui timeline --json`)."""
        record = asdict(self)
        record["checkpoint"] = str(self.checkpoint)
        return record


class CachedSample(msgspec.Struct):
    """One sample in timeline.json: the model's key, the prompt and settings, the text."""

    model: str
    query: dict[str, Any]
    text: str


class CacheFile(msgspec.Struct):
    """timeline.json's schema. A file of another format or version is not used."""

    format: Any = None
    version: Any = None
    samples: list[CachedSample] = []


class SampleCache:
    """RUN/timeline.json: sample text by (model key, prompt, settings).

    Read through the typed reader: a damaged file (a wrong type, a FIFO in its
    place, too large) is only a cache: it is set aside (`problem` says why) and the
    samples are generated again."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.samples: dict[str, dict[str, Any]] = {}
        self.dirty = False
        self.problem: str | None = None
        try:
            data = read_json(path, CacheFile, CACHE_BYTES)
        except FileNotFoundError:
            return
        except DamagedFile as exc:
            self.problem = str(exc)
            return
        if data.format == CACHE_FORMAT and data.version == CACHE_VERSION:
            for item in data.samples:
                self.samples[self._key(item.model, item.query)] = msgspec.structs.asdict(item)

    @staticmethod
    def _key(model: str, query: dict[str, Any]) -> str:
        return json.dumps([model, query], sort_keys=True)

    def get(self, model: str, query: dict[str, Any]) -> str | None:
        item = self.samples.get(self._key(model, query))
        return None if item is None else item["text"]

    def put(self, model: str, query: dict[str, Any], text: str) -> None:
        key = self._key(model, query)
        self.samples.pop(key, None)  # re-inserted last: the newest
        self.samples[key] = {"model": model, "query": query, "text": text}
        self.dirty = True

    def save(self) -> None:
        """Write what changed; a run folder that cannot be written (someone else's,
        a full disk) is no error: the next timeline generates again."""
        if not self.dirty:
            return
        kept = list(self.samples.values())[-CACHE_LIMIT:]
        data = {"format": CACHE_FORMAT, "version": CACHE_VERSION, "samples": kept}
        with contextlib.suppress(OSError):
            atomic_write_text(self.path, json.dumps(data, ensure_ascii=False, indent=1))
        self.dirty = False


def _query(prompt: str, settings: GenerationSettings) -> dict[str, Any]:
    return {"prompt": prompt, "settings": json.loads(json.dumps(asdict(settings)))}


def _other_key(spec: str) -> str:
    """A cache key for the second model: a checkpoint's resolved folder and save time,
    else the spec itself (GPT-2 weights and presets do not change)."""
    parsed = parse_spec(spec)
    if parsed.kind not in CHECKPOINT_KINDS:
        return str(parsed)
    path = checkpoint_path(parsed).resolve()
    return f"checkpoint:{path}@{load_checkpoint(path, verify=False).created!r}"


def _sample(
    spec: str | Path, prompt: str, settings: GenerationSettings, device: str, cancel: Cancel | None
) -> str:
    model = load_spec(spec, device).model
    return generate(model, prompt, settings, cancel=cancel).samples[0].text


def sample_timeline(
    run: str | Path,
    prompt: str = DEFAULT_PROMPT,
    seed: int | None = DEFAULT_SEED,
    settings: GenerationSettings | None = None,
    other: str | None = None,
    progress: Progress | None = None,
    cancel: Cancel | None = None,
    device: str = "auto",
) -> list[TimelineEntry]:
    """One entry per checkpoint of `run`, by step (damaged ones last, with their error).

    `settings` default to `gpt-tui generate`'s (50 greedy tokens, stop at
    <|endoftext|>); `seed` replaces theirs. `other` is a model spec sampled once and
    shown on every entry. `progress(done, total)` is called as models are done;
    `cancel()` returning True stops between tokens: the entries finished so far are
    returned and the sample cut short is not cached. Raises GptTuiError for a folder
    that is no run, settings a model refuses, or an `other` model that cannot be loaded.
    """
    folder = RunDir(run)
    if not folder.is_run() and not folder.has_checkpoints():
        raise GptTuiError(f"{folder.path} is not a run folder (no config.toml or checkpoints/)")
    settings = make_settings(settings, seed=seed)
    query = _query(prompt, settings)
    infos = list_checkpoints(folder.path) if folder.has_checkpoints() else []
    infos.sort(key=lambda i: (i.error is not None, i.step or 0, i.created or 0.0, i.name))
    samples = Stages(len(infos) + (other is not None), progress)
    cache = SampleCache(folder.timeline)
    # An unseeded sampled text differs every time: nothing to remember.
    cacheable = settings.seed is not None or settings.temperature == 0

    def stopped() -> bool:
        return cancel is not None and bool(cancel())

    samples.start()
    entries: list[TimelineEntry] = []
    try:
        other_text = None
        if other is not None:
            key = _other_key(other)
            other_text = cache.get(key, query) if cacheable else None
            if other_text is None:
                other_text = _sample(other, prompt, settings, device, cancel)
                if stopped():
                    return entries
                if cacheable:
                    cache.put(key, query, other_text)
            samples.done(1)
        for info in infos:
            if stopped():
                break
            text, error = None, info.error
            if error is None:
                key = f"{info.name}@{info.created!r}/{info.size_bytes}"
                text = cache.get(key, query) if cacheable else None
                if text is None:
                    try:
                        text = _sample(info.path, prompt, settings, device, cancel)
                    except CheckpointError as exc:  # damaged since it was listed
                        error = str(exc)
                    else:
                        if stopped():
                            break
                        if cacheable:
                            cache.put(key, query, text)
            entries.append(
                TimelineEntry(
                    checkpoint=info.path,
                    label=checkpoint_label(info.path),
                    step=info.step,
                    tokens_seen=info.tokens_seen,
                    val_loss=info.val_loss,
                    text=text,
                    other_text=other_text,
                    error=error,
                )
            )
            samples.done(1)
    finally:
        cache.save()
    return entries
