"""Optuna, the search engine of sweeps: imported only here (it is the optional
extra `sweep`), with the sampler, pruner and study a SweepSpec asks for.

Studies live in a database Optuna manages (SQLite by default; any SQLAlchemy URL,
so processes on several machines can share one study through PostgreSQL or MySQL).
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

from gptcore.errors import GptTuiError
from gptcore.sweep.spec import SweepSpec

if TYPE_CHECKING:
    import optuna

MISSING_MESSAGE = "sweeps need Optuna: pip install 'gpt-tui[sweep]'"
SQLITE_TIMEOUT_S = 60  # several processes writing one SQLite study wait for each other
STORAGE_ATTEMPTS = 4


def require_optuna() -> Any:
    """The optuna module, or GptTuiError naming the extra that installs it."""
    try:
        import optuna
    except ImportError:
        raise GptTuiError(MISSING_MESSAGE) from None
    optuna.logging.set_verbosity(logging.WARNING)  # gpt-tui prints its own lines
    return optuna


def make_sampler(spec: SweepSpec) -> optuna.samplers.BaseSampler:
    optuna = require_optuna()
    opts = spec.options
    if opts.sampler == "grid":
        return _grid_sampler(optuna)(spec.grid(), seed=opts.sampler_seed)
    if opts.sampler == "random":
        return optuna.samplers.RandomSampler(seed=opts.sampler_seed)
    return optuna.samplers.TPESampler(
        seed=opts.sampler_seed, n_startup_trials=max(1, opts.startup_trials)
    )


def _grid_sampler(optuna: Any) -> type:
    """Optuna's GridSampler for ask-and-tell: its own after_trial calls study.stop(),
    which raises outside study.optimize; the runner asks is_exhausted() instead."""

    class AskTellGridSampler(optuna.samplers.GridSampler):
        def after_trial(self, study: Any, trial: Any, state: Any, values: Any) -> None:
            return None

    return AskTellGridSampler


def make_pruner(spec: SweepSpec) -> optuna.pruners.BasePruner:
    """The pruner, in training tokens: trials report their val loss at each evaluation
    with the tokens seen by then (gptcore.sweep.prune)."""
    optuna = require_optuna()
    opts = spec.options
    after = opts.prune_after
    if after is None and opts.pruner != "successive-halving":
        after = first_eval_tokens(spec)
    if opts.pruner == "median":
        return optuna.pruners.MedianPruner(
            n_startup_trials=opts.startup_trials, n_warmup_steps=after
        )
    if opts.pruner == "successive-halving":
        return optuna.pruners.SuccessiveHalvingPruner(
            min_resource=after if after else "auto", reduction_factor=opts.reduction_factor
        )
    if opts.pruner == "hyperband":
        return optuna.pruners.HyperbandPruner(
            min_resource=max(1, after or 1),
            max_resource="auto",  # the tokens of the first trial to finish
            reduction_factor=opts.reduction_factor,
        )
    return optuna.pruners.NopPruner()


def first_eval_tokens(spec: SweepSpec) -> int:
    """Training tokens by the base config's first evaluation after step 0 (the one at
    step 0 follows a single step and tells nothing yet): the default prune_after."""
    train, model = spec.base_train, spec.base_model
    window = train.get("max_length") or model["context_length"]
    per_step = int(train["batch_size"]) * int(train["grad_accum"]) * int(window)
    return per_step * int(train["eval_freq"])


def storage_for(url: str) -> Any:
    """Optuna's storage for a database URL (SQLite waits for other writers)."""
    optuna = require_optuna()
    kwargs: dict[str, Any] = {}
    if url.startswith("sqlite:"):
        kwargs["engine_kwargs"] = {"connect_args": {"timeout": SQLITE_TIMEOUT_S}}
    for attempt in range(STORAGE_ATTEMPTS):
        try:
            return optuna.storages.RDBStorage(url, **kwargs)
        except Exception as exc:  # SQLAlchemy's: a bad URL, a missing driver, no server
            # Two processes opening a new database both create its tables: the
            # second fails once, then finds them made.
            if attempt + 1 == STORAGE_ATTEMPTS:
                first_line = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                raise GptTuiError(f"cannot open the sweep's storage {url}: {first_line}") from None
            time.sleep(0.2 * (attempt + 1))
    raise AssertionError("unreachable")


def open_study(spec: SweepSpec, url: str, *, create: bool) -> optuna.Study:
    """The sweep's study (created when `create`), with its sampler and pruner."""
    optuna = require_optuna()
    storage = storage_for(url)
    try:
        if create:
            return optuna.create_study(
                storage=storage,
                study_name=spec.name,
                sampler=make_sampler(spec),
                pruner=make_pruner(spec),
                direction="minimize",
                load_if_exists=True,  # another machine made it first: join it
            )
        return optuna.load_study(
            study_name=spec.name,
            storage=storage,
            sampler=make_sampler(spec),
            pruner=make_pruner(spec),
        )
    except KeyError:
        raise GptTuiError(f"no study named {spec.name!r} in {url}") from None
