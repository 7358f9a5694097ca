"""Setting a run up: everything the Trainer builds before its first step.

RunSetup checks the configs (and a resumed checkpoint) before any slow work, then
builds the run's parts in the book's order, so that the RNG stream is the book's:
the device and precision, the corpus (the one a resumed checkpoint was trained
on), `torch.manual_seed`, the model (fresh, a checkpoint's, or downloaded weights
with `--init`), the data order, the optimizer (a resume restores its state and the
RNG), and the wrapper that trains (DDP, torch.compile). `run_folder` picks the run's
folder, which only the main process writes.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from gptcore.data.order import DataOrder
from gptcore.data.plan import BatchPlan, batch_plan
from gptcore.data.runcorpus import run_corpus
from gptcore.data.tokens import TokenizedCorpus
from gptcore.errors import CheckpointError, GptTuiError
from gptcore.hardware.device import pick_device
from gptcore.hardware.perf import enable_tf32, make_adamw, peak_flops
from gptcore.hardware.precision import resolve_precision
from gptcore.model.gpt import GPTModel
from gptcore.planner.plan import check_fits
from gptcore.runs.checkpoint import Checkpoint, load_weights_into
from gptcore.runs.lock import check_run_dir_unused
from gptcore.runs.rundir import RunDir, new_run_dir
from gptcore.settings.model import PRESETS, GPTConfig
from gptcore.settings.train import TrainConfig, check_trainable
from gptcore.training.resume import check_resume, check_schedule, open_checkpoint
from gptcore.training.rng import restore_rng
from gptcore.weights.downloads import find_gpt2
from gptcore.weights.layouts import with_vocab_multiple
from gptcore.weights.loaders import weights_config
from gptcore.weights.modelspec import model_from_spec
from gptcore.weights.spec import GPT2, WEIGHTS, parse_spec


@dataclass
class RunParts:
    """What a run trains with, as RunSetup.build made it."""

    device: torch.device
    precision: str  # "bf16", "fp16" or "fp32"
    amp_dtype: torch.dtype | None  # autocast's dtype; None for fp32
    corpus: TokenizedCorpus
    plan: BatchPlan
    data: DataOrder
    model: GPTModel  # on the device, in train mode
    train_model: nn.Module  # what the steps call: `model`, or its DDP / compiled wrapper
    optimizer: torch.optim.Optimizer
    adamw_impl: str  # the AdamW update make_adamw chose
    scaler: torch.amp.GradScaler | None  # fp16 only
    peak_flops: float | None  # the device's, for MFU; None when unknown


class RunSetup:
    """Builds one process's parts of a run. `rank` and `world` place it among
    torchrun's processes; `phase` announces slow work ("corpus", "model")."""

    def __init__(
        self,
        model_config: GPTConfig,
        config: TrainConfig,
        *,
        rank: int,
        world: int,
        phase: Callable[[str], None],
    ) -> None:
        self.model_config = model_config
        self.config = config
        self.rank = rank
        self.world = world
        self.phase = phase

    def check(
        self, resume: Checkpoint | str | Path | None, run_dir: Path | None
    ) -> Checkpoint | None:
        """The checks made before any slow work (and before anything is written):
        the configs, the checkpoint to resume (opened from a spec) and the folder.
        Returns the checkpoint."""
        check_trainable(self.model_config, self.config)
        ckpt = open_checkpoint(resume) if isinstance(resume, str | Path) else resume
        if ckpt is not None:
            check_resume(ckpt, self.model_config, self.config, self.world)
        # An earlier run's folder is reused only by resuming it. Every rank checks (before
        # DDP's first broadcast, so before rank 0 writes there): all refuse together.
        if run_dir is not None:
            check_run_dir_unused(run_dir, ckpt.path if ckpt is not None else None)
        self._check_memory(ckpt)
        return ckpt

    def _check_memory(self, resume: Checkpoint | None) -> None:
        """Refuse a model this device cannot train before anything is allocated (the
        kernel would kill the process without a word). `init` weights bring their own
        shape, read from their config."""
        cfg = self.config
        model = resume.model_config if resume is not None else self.model_config
        if cfg.init and resume is None:
            model = _init_shape(cfg.init)
            if model is None:
                return
        device = self._device()
        recorded = resume.precision if resume is not None else None
        precision, _ = resolve_precision(cfg.precision, device, recorded)  # as build's
        check_fits(model, cfg, device, precision, self.world)

    def build(self, resume: Checkpoint | None) -> RunParts:
        """The run's parts, in the book's order: seed, model, (loaders), optimizer."""
        cfg = self.config
        device = self._device()
        # A resume keeps the precision its checkpoint trained in when the setting is "auto".
        recorded = resume.precision if resume is not None else None
        precision, amp_dtype = resolve_precision(cfg.precision, device, recorded)
        self.phase("corpus")
        corpus = self._corpus(resume)
        self.phase("model")
        torch.manual_seed(cfg.seed)
        model = self._model(resume)
        check_trainable(model.config, cfg)  # --init weights bring their own shape
        plan = batch_plan(
            len(corpus.train_tokens), len(corpus.val_tokens), model.config, cfg, self.world
        ).check()
        if resume is not None:
            check_schedule(resume, cfg, plan.steps_per_epoch)
        data = DataOrder(corpus, plan, cfg.shuffle, self.rank, pin_memory=device.type == "cuda")
        if resume is not None:
            load_weights_into(model, resume)
        model.to(device)
        model.train()
        enable_tf32(device)
        optimizer, adamw_impl = make_adamw(
            list(model.parameters()), cfg.lr, cfg.weight_decay, (cfg.beta1, cfg.beta2), cfg.adamw
        )
        flops = peak_flops(device, precision)
        scaler = torch.amp.GradScaler("cuda") if precision == "fp16" else None
        if resume is not None:
            _restore_optimizer(resume, optimizer, scaler)
            restore_rng(resume.rng, device)
        return RunParts(
            device=device,
            precision=precision,
            amp_dtype=amp_dtype,
            corpus=corpus,
            plan=plan,
            data=data,
            model=model,
            train_model=self._training_wrapper(model, device),
            optimizer=optimizer,
            adamw_impl=adamw_impl,
            scaler=scaler,
            peak_flops=flops,
        )

    def _device(self) -> torch.device:
        """The device setting's; under torchrun a plain "cuda" is this rank's GPU."""
        device = pick_device(self.config.device)
        if self.world > 1 and device.type == "cuda" and device.index is None:
            device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", self.rank)))
        return device

    def _corpus(self, resume: Checkpoint | None) -> TokenizedCorpus:
        """The corpus tokenized and split; a resume must use the one it was trained on."""
        cfg = self.config
        corpus = run_corpus(cfg)
        if resume is not None and resume.data.get("corpus_key") not in (None, corpus.key):
            raise CheckpointError(
                f"checkpoint {resume.path} was trained on a different corpus "
                f"({resume.data.get('corpus_name')}); resume it with the same corpus"
            )
        return corpus

    def _model(self, resume: Checkpoint | None) -> GPTModel:
        """The model on the CPU, its weights drawn from torch's RNG: a resumed
        checkpoint's shape (its weights are loaded later), downloaded weights for
        `init`, or the model config's, fresh."""
        if resume is not None:
            return GPTModel(resume.model_config)
        if self.config.init:
            model = model_from_spec(self.config.init, "cpu")
            # The weights bring their shape; padding is the run's speed setting.
            return with_vocab_multiple(model, self.model_config.vocab_multiple)
        return GPTModel(self.model_config)

    def _training_wrapper(self, model: nn.Module, device: torch.device) -> nn.Module:
        """`model` under DDP when there are several processes, compiled when asked."""
        wrapped = model
        if self.world > 1:
            from torch.nn.parallel import DistributedDataParallel  # only torchrun runs use it

            ids = [device.index] if device.type == "cuda" else None
            wrapped = DistributedDataParallel(model, device_ids=ids)
        if self.config.compile:
            wrapped = torch.compile(wrapped)
        return wrapped


def _init_shape(spec: str) -> GPTConfig | None:
    """The shape of the weights `init` names, read from their config alone; None where
    it cannot be told now (loading them then says what is wrong)."""
    try:
        parsed = parse_spec(spec)
        if parsed.kind == GPT2:
            return weights_config(find_gpt2(parsed.target))
        if parsed.kind == WEIGHTS:
            return weights_config(parsed.target)
    except GptTuiError:
        return None
    return None  # a checkpoint's or a preset's: checked as they load


def _restore_optimizer(
    resume: Checkpoint, optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler | None
) -> None:
    """Load a checkpoint's optimizer (and fp16 scaler) state, when it saved one."""
    opt = resume.optimizer_state()
    if opt is None:
        return
    try:
        optimizer.load_state_dict(opt["optimizer"])
        if scaler is not None and opt.get("scaler"):
            scaler.load_state_dict(opt["scaler"])
    except (KeyError, ValueError, TypeError, RuntimeError) as exc:
        raise CheckpointError(
            f"the optimizer state in {resume.path} does not fit this model: {exc}"
        ) from None


def _preset_name(config: GPTConfig) -> str:
    for name, preset in PRESETS.items():
        if preset == config:
            return name
    return "gpt"


def run_folder(run_dir: Path | None, resume: Checkpoint | None, model_config: GPTConfig) -> Path:
    """The run's folder, created: `run_dir`, else a resumed checkpoint's run, else a
    new folder named after the model's preset."""
    if run_dir is None:
        run = RunDir.of_checkpoint(resume.path) if resume is not None else None
        run_dir = run.path if run is not None else new_run_dir(_preset_name(model_config))
    run_dir.mkdir(parents=True, exist_ok=True)
    return run_dir
