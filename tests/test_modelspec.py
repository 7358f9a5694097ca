"""Model specs: parsing every form, loading tiny models, the Chat picker's choices,
and "latest"/"best" of a run decided in one place."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from gptcore.errors import CheckpointError, GenerationError, GptTuiError, ModelSpecError
from gptcore.model.gpt import GPTModel
from gptcore.runs.checkpoint import save_checkpoint
from gptcore.runs.checkpoints import (
    best_checkpoint,
    latest_checkpoint,
    list_checkpoints,
    run_picks,
)
from gptcore.settings.model import GPTConfig, get_preset
from gptcore.util.paths import runs_dir
from gptcore.weights.gpt2 import gpt2_dir
from gptcore.weights.hf_export import export_hf
from gptcore.weights.modelspec import checkpoint_path, list_choices, load_spec
from gptcore.weights.spec import (
    BEST,
    CHECKPOINT,
    CHECKPOINT_KINDS,
    GPT2,
    LATEST,
    PRESET,
    WEIGHTS,
    ModelChoice,
    ModelSpec,
    describe_spec,
    parse_spec,
)

TINY = GPTConfig(context_length=32, emb_dim=32, n_heads=4, n_layers=2, drop_rate=0.0)


def _model(seed: int) -> GPTModel:
    torch.manual_seed(seed)
    return GPTModel(TINY).eval()


def _save(run: str, step: int, val_loss: float | None, seed: int | None = None) -> Path:
    return save_checkpoint(
        runs_dir() / run / "checkpoints" / f"step-{step:06d}",
        _model(step if seed is None else seed),
        train_config={"batch_size": 2},
        step=step,
        epoch=0,
        tokens_seen=step * 64,
        val_loss=val_loss,
    )


def _same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k].to(sa[k].device)) for k in sa)


def _same_outputs(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    """For GPT-2 layouts, which add zero q/k/v biases to a model without them."""
    ids = torch.tensor([[15496, 11, 995, 0]])
    with torch.no_grad():
        return torch.allclose(a.eval()(ids), b.eval()(ids), atol=1e-5)


# ---------------------------------------------------------------- parsing


@pytest.mark.parametrize(
    ("text", "kind", "target"),
    [
        ("/runs/r1/checkpoints/step-000005", CHECKPOINT, "/runs/r1/checkpoints/step-000005"),
        ("/runs/r1", CHECKPOINT, "/runs/r1"),
        ("my-run", CHECKPOINT, "my-run"),
        ("my-run:latest", LATEST, "my-run"),
        ("/runs/r1:best", BEST, "/runs/r1"),
        ("ckpt:/runs/r1/checkpoints/step-5", CHECKPOINT, "/runs/r1/checkpoints/step-5"),
        ("ckpt:my-run:best", BEST, "my-run"),
        ("gpt2:124M", GPT2, "124M"),
        ("gpt2:small", GPT2, "124M"),  # aliases resolve to the size's name
        ("GPT2:gpt2-xl", GPT2, "1558M"),
        ("weights:/w/gpt2/355M/hf", WEIGHTS, "/w/gpt2/355M/hf"),
        ("preset:tiny", PRESET, "tiny"),
        ("  preset:book-124m  ", PRESET, "book-124m"),
    ],
)
def test_parse_each_form_and_round_trip(text: str, kind: str, target: str) -> None:
    spec = parse_spec(text)
    assert spec == ModelSpec(kind, target)
    assert parse_spec(str(spec)) == spec  # the canonical text parses back to the same value
    assert parse_spec(spec) is spec


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty model spec"),
        ("   ", "empty model spec"),
        ("gpt2:", "'gpt2:' is missing its value"),
        ("gpt2:999M", "'gpt2:999M': unknown GPT-2 size '999M'"),
        ("weights:", "'weights:' is missing its value"),
        ("preset:huge", "'preset:huge': unknown preset 'huge'"),
        (":best", "':best' names no run"),
        ("ckpt:", "'ckpt:' names no checkpoint"),
    ],
)
def test_bad_specs_name_the_spec(text: str, message: str) -> None:
    with pytest.raises(ModelSpecError, match=message) as info:
        parse_spec(text)
    assert isinstance(info.value, GptTuiError)


def test_kinds_restrict_what_a_flag_accepts() -> None:
    assert parse_spec("run:best", CHECKPOINT_KINDS).kind == BEST
    with pytest.raises(ModelSpecError, match="'gpt2:124M' is not one of: a checkpoint folder"):
        parse_spec("gpt2:124M", CHECKPOINT_KINDS)
    with pytest.raises(ModelSpecError, match="RUN:best"):
        checkpoint_path("preset:tiny")


def test_labels() -> None:
    assert describe_spec("/x/my-run/checkpoints/step-000005") == "my-run/step-000005"
    assert describe_spec("my-run:best") == "my-run (best)"
    assert describe_spec("gpt2:medium") == "GPT-2 355M"
    assert describe_spec("weights:/data/weights/gpt2/124M/openai") == "GPT-2 124M (openai)"
    assert describe_spec("weights:/elsewhere") == "weights /elsewhere"
    assert describe_spec("preset:tiny") == "tiny (untrained)"
    assert describe_spec("gpt2:999M") == "gpt2:999M"  # unparsable: shown as typed


# ---------------------------------------------------------------- loading


def test_load_checkpoint_specs_resolve_latest_and_best() -> None:
    best = _save("myrun", 5, val_loss=2.0)
    latest = _save("myrun", 9, val_loss=3.0)
    run = runs_dir() / "myrun"
    for text, want in [
        (str(run), latest),
        ("myrun", latest),
        ("myrun:latest", latest),
        (f"{run}:best", best),
        ("myrun:best", best),
        (str(best), best),
        (f"ckpt:{best}", best),
    ]:
        loaded = load_spec(text, "cpu")
        assert loaded.checkpoint is not None and loaded.checkpoint.path == want, text
        assert _same_weights(loaded.model, _model(loaded.checkpoint.step))
        assert not loaded.model.training and loaded.device == torch.device("cpu")
        assert loaded.label == f"checkpoint {want} (step {loaded.checkpoint.step})"
    # The CLI's resolver and the checkpoint views agree with the loader.
    assert checkpoint_path("myrun:best") == best
    assert latest_checkpoint(run) == latest and best_checkpoint(run) == best


def test_load_preset_is_seeded_and_on_the_cpu_first() -> None:
    loaded = load_spec("preset:tiny", "cpu", seed=7)
    torch.manual_seed(7)
    assert _same_weights(loaded.model, GPTModel(get_preset("tiny")))
    assert loaded.checkpoint is None and loaded.label == "tiny (untrained, seed 7)"
    assert not _same_weights(loaded.model, load_spec("preset:tiny", "cpu", seed=8).model)


def test_load_weights_and_downloaded_gpt2(tmp_path: Path) -> None:
    model = _model(4)
    folder = export_hf(model, tmp_path / "hf")
    loaded = load_spec(f"weights:{folder}", "cpu")
    assert _same_outputs(loaded.model, model) and loaded.label == f"weights {folder}"
    with pytest.raises(CheckpointError, match="gpt-tui download gpt2 --size 124M"):
        load_spec("gpt2:124M", "cpu")
    shutil.copytree(folder, gpt2_dir("124M", "hf"))
    loaded = load_spec("gpt2:small", "cpu")
    assert _same_outputs(loaded.model, model) and loaded.label == "GPT-2 124M"


def test_load_precision_is_checked_before_loading_and_applied(tmp_path: Path) -> None:
    # fp16 needs CUDA/MPS: said before the missing checkpoint is even looked for.
    with pytest.raises(GenerationError, match="fp16 inference needs a CUDA or MPS device"):
        load_spec(str(tmp_path / "nope"), "cpu", precision="fp16")
    ckpt = _save("prec", 3, val_loss=1.0)
    loaded = load_spec(str(ckpt), "cpu", precision="bf16")
    assert loaded.precision == "bf16" and loaded.model.tok_emb.weight.dtype == torch.bfloat16


def test_missing_and_damaged_checkpoints_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="no run or checkpoint named 'nosuchrun'"):
        load_spec("nosuchrun", "cpu")
    _save("noval", 2, val_loss=None)
    with pytest.raises(CheckpointError, match="has no checkpoint with a validation loss"):
        load_spec("noval:best", "cpu")
    broken = runs_dir() / "noval" / "checkpoints" / "broken"
    broken.mkdir()
    (broken / "meta.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        load_spec(str(broken), "cpu")


# ---------------------------------------------------------------- latest / best, the picker


def test_run_picks_are_what_latest_and_best_load() -> None:
    a5 = _save("run-a", 5, val_loss=2.0)
    a7 = _save("run-a", 7, val_loss=2.0)  # ties with step 5 on val loss: more steps wins
    a9 = _save("run-a", 9, val_loss=3.0)
    b3 = _save("run-b", 3, val_loss=None)
    picks = run_picks(list_checkpoints())
    assert list(picks) == ["run-a", "run-b"]
    assert picks["run-a"].latest.path == a9 and picks["run-a"].best.path == a7
    assert picks["run-b"].latest.path == b3 and picks["run-b"].best is None
    assert checkpoint_path("run-a:best") == a7 and checkpoint_path("run-a") == a9
    assert a5.exists()


def test_picker_lists_runs_latest_best_other_checkpoints_then_gpt2(tmp_path: Path) -> None:
    a5 = _save("run-a", 5, val_loss=2.0)
    a7 = _save("run-a", 7, val_loss=4.0)
    a9 = _save("run-a", 9, val_loss=3.0)
    b3 = _save("run-b", 3, val_loss=1.0)  # latest and best at once: listed once
    broken = runs_dir() / "run-a" / "checkpoints" / "broken"
    broken.mkdir()
    (broken / "meta.json").write_text("{}", encoding="utf-8")
    shutil.copytree(export_hf(_model(1), tmp_path / "hf"), gpt2_dir("355M", "hf"))
    gpt2_dir("124M", "hf").mkdir(parents=True)  # an empty folder is not a download
    assert list_choices() == [
        ModelChoice("run-a · latest (step-000009)", str(a9), LATEST),
        ModelChoice("run-a · best (step-000005)", str(a5), BEST),
        ModelChoice("run-b · latest (step-000003)", str(b3), LATEST),
        ModelChoice("run-a · step-000007", str(a7), CHECKPOINT),
        ModelChoice("GPT-2 355M", "gpt2:355M", GPT2),
    ]
    # Every choice's spec loads the checkpoint its label names.
    assert load_spec(list_choices()[1].spec, "cpu").checkpoint.step == 5
    assert list_choices(tmp_path / "no-runs") == [ModelChoice("GPT-2 355M", "gpt2:355M", GPT2)]
