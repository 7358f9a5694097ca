"""GPT-2 loaders and export: parity with transformers on a small random GPT-2, no network."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
import torch

from gptcore.errors import CheckpointError, ConfigError
from gptcore.model.gpt import GPTModel
from gptcore.settings.model import GPTConfig
from gptcore.weights.downloads import find_gpt2, safetensors_complete
from gptcore.weights.gpt2 import SIZES, gpt2_dir, preset_for, resolve_size
from gptcore.weights.hf_export import export_hf, to_hf_state_dict
from gptcore.weights.layouts import detect_layout, expected_shapes
from gptcore.weights.loaders import load_weights
from gptcore.weights.modelspec import model_from_spec

transformers = pytest.importorskip("transformers")

SMALL = {"n_layer": 2, "n_head": 4, "n_embd": 64, "vocab_size": 50257, "n_positions": 128}
PROMPT = torch.tensor([[464, 3290, 318, 257, 1332, 286, 262, 6801]])  # arbitrary token ids


@pytest.fixture(scope="module")
def hf_model():
    torch.manual_seed(7)
    model = transformers.GPT2LMHeadModel(transformers.GPT2Config(**SMALL)).eval()
    with torch.no_grad():  # non-trivial LayerNorm and bias values, so a mix-up shows
        for name, p in model.named_parameters():
            if name.endswith("bias") or ".ln_" in name:
                p.add_(torch.randn_like(p) * 0.1)
    return model


@pytest.fixture(scope="module")
def hf_dir(hf_model, tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("weights") / "gpt2 klein ü 模型"
    hf_model.save_pretrained(d, safe_serialization=True)
    return d


def _write_openai_checkpoint(hf_model, d: Path) -> None:
    """Write the model as OpenAI's TF layout (variable names and shapes as in their release)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    tf = pytest.importorskip("tensorflow")
    sd = {k.removeprefix("transformer."): v.numpy() for k, v in hf_model.state_dict().items()}
    arrays = {"model/wte": sd["wte.weight"], "model/wpe": sd["wpe.weight"]}
    arrays["model/ln_f/g"], arrays["model/ln_f/b"] = sd["ln_f.weight"], sd["ln_f.bias"]
    for i in range(SMALL["n_layer"]):
        for mod in ("attn/c_attn", "attn/c_proj", "mlp/c_fc", "mlp/c_proj"):
            hf = f"h.{i}.{mod.replace('/', '.')}"
            arrays[f"model/h{i}/{mod}/w"] = sd[f"{hf}.weight"][None]  # [1, in, out]
            arrays[f"model/h{i}/{mod}/b"] = sd[f"{hf}.bias"]
        for ln in ("ln_1", "ln_2"):
            arrays[f"model/h{i}/{ln}/g"] = sd[f"h.{i}.{ln}.weight"]
            arrays[f"model/h{i}/{ln}/b"] = sd[f"h.{i}.{ln}.bias"]
    d.mkdir(parents=True)
    graph = tf.Graph()
    with graph.as_default():
        for name, value in arrays.items():
            tf.compat.v1.Variable(value, name=name)
        saver = tf.compat.v1.train.Saver()
        with tf.compat.v1.Session() as sess:
            sess.run(tf.compat.v1.global_variables_initializer())
            saver.save(sess, str(d / "model.ckpt"))
    # OpenAI's `checkpoint` file names the prefix relatively (TF writes an absolute path).
    (d / "checkpoint").write_text(
        'model_checkpoint_path: "model.ckpt"\nall_model_checkpoint_paths: "model.ckpt"\n'
    )
    hparams = {"n_vocab": 50257, "n_ctx": 128, "n_embd": 64, "n_head": 4, "n_layer": 2}
    (d / "hparams.json").write_text(json.dumps(hparams, indent=2))


@pytest.fixture(scope="module")
def tf_dir(hf_model, tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("tf") / "models ü" / "tiny"
    _write_openai_checkpoint(hf_model, d)
    return d


def _greedy(step, ids: torch.Tensor, n: int) -> list[int]:
    for _ in range(n):
        with torch.no_grad():
            nxt = step(ids)[:, -1].argmax(-1, keepdim=True)
        ids = torch.cat([ids, nxt], dim=1)
    return ids[0].tolist()


def _assert_parity(ours: GPTModel, hf_model) -> None:
    with torch.no_grad():
        diff = (ours(PROMPT) - hf_model(PROMPT).logits).abs().max().item()
    assert diff < 1e-4
    hf_tokens = hf_model.generate(PROMPT, max_new_tokens=12, do_sample=False, pad_token_id=50256)[
        0
    ].tolist()
    assert _greedy(ours, PROMPT, 12) == hf_tokens


def test_hf_layout_matches_transformers(hf_model, hf_dir):
    assert detect_layout(hf_dir) == "hf"
    model = model_from_spec(f"weights:{hf_dir}")
    assert model.config == GPTConfig(
        context_length=128, emb_dim=64, n_heads=4, n_layers=2, drop_rate=0.0,
        qkv_bias=True, tie_embeddings=True, init="gpt2",
    )  # fmt: skip
    assert model.out_head.weight is model.tok_emb.weight  # tied again after assign=True
    assert not model.training
    _assert_parity(model, hf_model)


def test_openai_tf_layout_matches_transformers(hf_model, tf_dir):
    assert detect_layout(tf_dir) == "openai"
    model = model_from_spec(f"weights:{tf_dir}")
    assert model.config.emb_dim == 64 and model.config.context_length == 128
    _assert_parity(model, hf_model)


def test_openai_layout_missing_tensorflow_names_the_extra(tf_dir, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorflow", None)  # `import tensorflow` now fails
    with pytest.raises(CheckpointError, match=r"pip install 'gpt-tui\[tf\]'"):
        load_weights(tf_dir)


def test_export_round_trips_through_transformers(hf_model, hf_dir, tmp_path):
    ours = load_weights(hf_dir)
    out = export_hf(ours, tmp_path / "export ü")
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "model.safetensors"]
    back = transformers.GPT2LMHeadModel.from_pretrained(out).eval()
    for name, tensor in hf_model.state_dict().items():
        if not name.endswith(("attn.bias", "attn.masked_bias")):
            assert torch.equal(back.state_dict()[name], tensor), name
    _assert_parity(ours, back)


def test_export_of_book_style_model(tmp_path):
    # No q/k/v bias (exported as zeros) and an untied output head.
    torch.manual_seed(3)
    cfg = GPTConfig(context_length=32, emb_dim=32, n_heads=4, n_layers=2, drop_rate=0.0)
    model = GPTModel(cfg).eval()
    out = export_hf(model, tmp_path / "book")
    assert json.loads((out / "config.json").read_text())["tie_word_embeddings"] is False
    back = transformers.GPT2LMHeadModel.from_pretrained(out).eval()
    ids = torch.randint(0, 50257, (2, 16))
    with torch.no_grad():
        assert (model(ids) - back(ids).logits).abs().max().item() < 1e-4
    reloaded = load_weights(out)  # and our loader reads our own export
    assert reloaded.config.tie_embeddings is False
    with torch.no_grad():
        assert (model(ids) - reloaded(ids)).abs().max().item() < 1e-5


def test_to_hf_state_dict_names_and_shapes(tiny_config):
    cfg = GPTConfig(**{**tiny_config.to_dict(), "qkv_bias": True, "tie_embeddings": True})
    sd = to_hf_state_dict(GPTModel(cfg))
    expected = {f"transformer.{k}": v for k, v in expected_shapes(cfg).items()}
    expected["lm_head.weight"] = (cfg.vocab_size, cfg.emb_dim)
    assert {k: tuple(v.shape) for k, v in sd.items()} == expected


def _copy_hf(hf_dir: Path, dest: Path, **config_changes) -> Path:
    dest.mkdir(parents=True)
    (dest / "model.safetensors").write_bytes((hf_dir / "model.safetensors").read_bytes())
    cfg = json.loads((hf_dir / "config.json").read_text())
    cfg.update(config_changes)
    (dest / "config.json").write_text(json.dumps(cfg))
    return dest


def test_wrong_config_names_tensor_and_both_shapes(hf_dir, tmp_path):
    d = _copy_hf(hf_dir, tmp_path / "short", n_positions=64)
    with pytest.raises(CheckpointError, match=r"'wpe\.weight' has shape \[128, 64\].*\[64, 64\]"):
        load_weights(d)
    d = _copy_hf(hf_dir, tmp_path / "deeper", n_layer=3)
    with pytest.raises(CheckpointError, match=r"missing tensor 'h\.2\.ln_1\.weight'.*\[64\]"):
        load_weights(d)
    d = _copy_hf(hf_dir, tmp_path / "shallower", n_layer=1)
    with pytest.raises(CheckpointError, match=r"unexpected tensor 'h\.1\..*' with shape \["):
        load_weights(d)
    d = _copy_hf(hf_dir, tmp_path / "relu", activation_function="relu")
    with pytest.raises(CheckpointError, match="activation_function 'relu'"):
        load_weights(d)


def test_truncated_safetensors_is_a_clear_error(hf_dir, tmp_path):
    d = _copy_hf(hf_dir, tmp_path / "cut")
    data = (d / "model.safetensors").read_bytes()
    (d / "model.safetensors").write_bytes(data[: len(data) // 2])
    assert not safetensors_complete(d / "model.safetensors")
    with pytest.raises(CheckpointError, match="model.safetensors"):
        load_weights(d)


def test_unknown_directory_and_specs(tmp_path):
    (tmp_path / "notes.txt").write_text("hi")
    with pytest.raises(CheckpointError, match="neither a Hugging Face.*notes.txt"):
        load_weights(tmp_path)
    with pytest.raises(CheckpointError, match="not found"):
        model_from_spec(f"weights:{tmp_path / 'nope'}")
    with pytest.raises(ConfigError, match="gpt2:SIZE"):
        model_from_spec("124M")
    with pytest.raises(ConfigError, match="unknown GPT-2 size '999M'"):
        model_from_spec("gpt2:999M")


def test_gpt2_spec_uses_the_downloaded_folder(hf_model, hf_dir):
    with pytest.raises(CheckpointError, match=r"gpt-tui download gpt2 --size 124M"):
        model_from_spec("gpt2:124M")
    # Any complete HF-layout folder in the size's place loads (hyperparameters from the file).
    target = gpt2_dir("small", "hf")
    _copy_hf(hf_dir, target)
    assert find_gpt2("gpt2-small") == target
    _assert_parity(model_from_spec("gpt2:124m"), hf_model)
    # A half-downloaded weights file makes the folder incomplete again.
    (target / "model.safetensors").rename(target / "model.safetensors.part")
    with pytest.raises(CheckpointError, match="not downloaded"):
        find_gpt2("124M")


def test_size_aliases():
    assert resolve_size("124m").name == "124M"
    assert resolve_size("gpt2-xl").preset == "gpt2-xl"
    assert preset_for("355M").emb_dim == 1024
    assert SIZES["124M"].openai_bytes["model.ckpt.data-00000-of-00001"] == 497_759_232


@pytest.mark.slow
def test_gpt2_small_shapes_round_trip(tmp_path):
    """The real 124M shapes: export, reload through our loader, identical logits."""
    torch.manual_seed(0)
    model = GPTModel(preset_for("124M")).eval()
    out = export_hf(model, tmp_path / "gpt2")
    back = load_weights(out)
    assert back.config == model.config
    with torch.no_grad():
        assert torch.equal(model(PROMPT), back(PROMPT))


def test_generate_cli_with_transformers_weights_gives_greedy_tokens(hf_model, hf_dir, capsys):
    from gptcore.cli import main
    from gptcore.model.tokenizer import get_tokenizer

    prompt = "Every effort moves you"
    code = main(["generate", "--weights", str(hf_dir), "--prompt", prompt, "--json",
                 "--max-new-tokens", "10", "--no-eos", "--device", "cpu"])  # fmt: skip
    assert code == 0
    (sample,) = json.loads(capsys.readouterr().out)["samples"]
    ids = torch.tensor([get_tokenizer().encode(prompt)])
    expected = hf_model.generate(ids, max_new_tokens=10, do_sample=False, pad_token_id=50256)
    assert sample["token_ids"] == expected[0, ids.shape[1] :].tolist()


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_files_load_as_float32(hf_dir, tmp_path, dtype):
    from safetensors.torch import load_file, save_file

    d = _copy_hf(hf_dir, tmp_path / "half")
    tensors = load_file(str(d / "model.safetensors"))
    save_file({k: v.to(dtype) for k, v in tensors.items()}, str(d / "model.safetensors"))
    ours, half = load_weights(hf_dir), load_weights(d)
    for (name, a), (_, b) in zip(ours.state_dict().items(), half.state_dict().items(), strict=True):
        assert b.dtype == torch.float32
        assert torch.equal(b, a.to(dtype).float()), name
