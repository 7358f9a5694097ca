"""The Chat screen: pick a model (a checkpoint, the run just trained, downloaded
GPT-2), type a prompt, and watch the continuation stream in token by token.

Loading and generating run in thread workers. The generation worker never
touches widgets: it batches the engine's TextDeltas and posts at most about ten
ChatDelta messages a second; Stop sets a threading.Event the engine checks
between tokens. Model output is shown as Text, never as markup.

Two modes: "continue" is the book's plain continuation of the prompt; "chat"
keeps a User/Assistant transcript and feeds it back as context, dropping the
oldest turns (and saying so) when it no longer fits the model's window.
"""

from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Container, Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.timer import Timer
from textual.widgets import Checkbox, Collapsible, Input, Label, Select, Static
from textual.worker import Worker, WorkerState

from gptcore.errors import GptTuiError
from gptcore.settings.sampling import GenerationSettings, sampler_names
from gptcore.weights.spec import LATEST, ModelChoice, choice_for, describe_spec

from ..fields import setting_fields

if TYPE_CHECKING:
    from gptcore.model.gpt import GPTModel
    from gptcore.sampling.stream import GenerationResult, TokenRecord

POST_INTERVAL_S = 0.1  # at most ~10 transcript updates a second
USER, ASSISTANT = "User:", "Assistant:"

# The settings Chat edits, from their declarations (gptcore.settings.sampling); parsed
# and checked by gptcore.sampling.from_text.settings_from_text, like `gpt-tui generate`'s
# flags. Chat samples from the start (temperature 1, top-k 40); blank top-k / top-p /
# seed mean "off" / "random". The samplers beyond the book sit in a collapsed section;
# the list settings (logit bias, ban) take comma-separated items (split_ban_list).
CONTROLS = setting_fields(
    GenerationSettings,
    ["temperature", "top_k", "top_p", "max_new_tokens", "seed", "num_samples"],
    {"temperature": 1.0, "top_k": 40},
)
SAMPLER_CONTROLS = setting_fields(GenerationSettings, sampler_names())
LIST_CONTROLS = ("logit_bias", "ban")


# The confidence view (ctrl+f): alternatives recorded per generated token, and the
# colour bands of the probability a token had when drawn (after the settings).
CONFIDENCE_TOP = 5
BANDS = ((0.9, "green", "≥.9"), (0.5, "yellow", "≥.5"), (0.1, "dark_orange", "≥.1"))
LOW_BAND = ("red", "<.1")

# ---------------------------------------------------------------- pure helpers


def band_style(prob: float) -> str:
    """The colour of a token drawn with probability `prob`."""
    return next((style for floor, style, _ in BANDS if prob >= floor), LOW_BAND[0])


def confidence_text(text: str, records: list[TokenRecord], selected: int | None = None) -> Text:
    """`text` verbatim, each token's characters coloured by its band; the
    selected token reversed. A token ending mid-character colours nothing; the
    next one, which completes the character, carries it."""
    out = Text()
    start = 0
    for i, record in enumerate(records):
        style = band_style(record.token.prob) + (" reverse" if i == selected else "")
        out.append(text[start : record.end], style=style)
        start = max(start, record.end)
    out.append(text[start:])
    return out


def _p(prob: float) -> str:
    """A probability in 7 characters: an untrained model's are ~2e-05, not 0.000."""
    return f"{prob:.3f}" if prob >= 0.001 or prob == 0 else f"{prob:.1e}"


def confidence_panel(record: TokenRecord | None, position: str) -> Text:
    """The legend, then the selected token and its top alternatives, with their
    probability under the raw model and after the sampling settings."""
    out = Text("p ")
    for _, style, label in BANDS:
        out.append(f"■{label} ", style=style)
    out.append(f"■{LOW_BAND[1]}", style=LOW_BAND[0])
    out.append(" · ←/→ token · ctrl+f off")
    if record is None:
        out.append("\nno token recorded yet: generate an answer")
        return out
    t = record.token
    out.append(f"\n#{position} {t.text!r} p {_p(t.prob)} (raw {_p(t.raw_prob)})")
    for c in record.top:
        mark = "▸" if c.id == t.id else " "
        out.append(f"\n{mark} {c.text!r:<18.18} raw {_p(c.raw_prob)} → {_p(c.prob)}")
    return out


@dataclass(frozen=True)
class ChatPrompt:
    text: str
    dropped_turns: int


def chat_prompt(history: list[tuple[str, str]], message: str, budget_tokens: int) -> ChatPrompt:
    """The transcript as a prompt, oldest turns dropped until it fits `budget_tokens`."""
    from gptcore.model.tokenizer import encode

    def render(turns: list[tuple[str, str]]) -> str:
        lines = [f"{USER} {u}\n{ASSISTANT} {a}\n" for u, a in turns]
        return "".join(lines) + f"{USER} {message}\n{ASSISTANT}"

    turns = list(history)
    dropped = 0
    text = render(turns)
    while turns and len(encode(text)) > budget_tokens:
        turns.pop(0)
        dropped += 1
        text = render(turns)
    return ChatPrompt(text, dropped)


# ---------------------------------------------------------------- messages


class ChatChoices(Message):
    def __init__(self, choices: list[ModelChoice], precisions: list[str]) -> None:
        super().__init__()
        self.choices, self.precisions = choices, precisions


class ModelLoaded(Message):
    def __init__(self, token: int, spec: str, model: GPTModel, precision: str) -> None:
        super().__init__()
        self.token, self.spec, self.model, self.precision = token, spec, model, precision


class ChatDelta(Message):
    """New text per sample since the last message (from the generation worker)."""

    def __init__(self, token: int, pieces: dict[int, str]) -> None:
        super().__init__()
        self.token, self.pieces = token, pieces


class ChatNote(Message):
    def __init__(self, token: int, text: str) -> None:
        super().__init__()
        self.token, self.text = token, text


class ChatDone(Message):
    def __init__(self, token: int, result: GenerationResult | None) -> None:
        super().__init__()
        self.token, self.result = token, result


class InspectReady(Message):
    def __init__(self, logits: Any, source: str) -> None:
        super().__init__()
        self.logits, self.source = logits, source


# ---------------------------------------------------------------- the pane


class ChatPane(Container, can_focus=True):
    """Talk to a model with streamed output and validated sampling controls."""

    BINDINGS = [
        Binding("escape", "stop", "Stop", id="chat-stop"),
        Binding("ctrl+n", "inspect", "Inspect", id="chat-inspect"),
        Binding("ctrl+r", "new_seed", "New seed", id="chat-seed"),
        Binding("ctrl+y", "copy", "Copy answer", id="chat-copy"),
        Binding("ctrl+f", "confidence", "Confidence", id="chat-confidence"),
        Binding("left", "select_token(-1)", "Prev token", id="chat-token-prev", show=False),
        Binding("right", "select_token(1)", "Next token", id="chat-token-next", show=False),
        Binding("ctrl+s", "save", "Save", id="chat-save"),
        Binding("ctrl+o", "choose_model", "Model", id="chat-model", show=False),
        Binding("ctrl+l", "clear", "Clear", id="chat-clear", show=False),
        Binding("ctrl+g", "refresh_models", "Refresh models", id="chat-refresh", show=False),
        Binding("enter,p", "focus_prompt", "Prompt", id="chat-prompt", show=False),
    ]

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.model: GPTModel | None = None
        self.spec: str | None = None
        self.precision = "fp32"
        self.settings: GenerationSettings | None = None
        self.errors: dict[str, str] = {}
        self.history: list[tuple[str, str]] = []  # chat mode: (user, assistant)
        self.transcript: list[tuple[str, str]] = []  # (role, text) for saving
        self.last_answer = ""
        self.loading: str | None = None
        self.load_error: str | None = None
        self._load_started = 0.0
        self._load_token = 0
        self._gen_token = 0
        self._cancel: threading.Event | None = None
        self._live: dict[int, Static] = {}
        self._live_text: dict[int, str] = {}
        # The latest answer(s): (block, text, records) per sample, for the confidence view.
        self._answers: list[tuple[Static, str, list[TokenRecord]]] = []
        self.confidence = False
        self.selected_token = 0
        self._pending_user: str | None = None
        self._timer: Timer | None = None
        self._choices: list[ModelChoice] = []
        self._want_spec: str | None = None
        self._active = False  # validation (and its torch import) waits for the first show

    # ------------------------------------------------------------ layout

    def compose(self) -> ComposeResult:
        with Horizontal():
            with Vertical(id="chat-main"):
                yield Select([], prompt="model: none yet (ctrl+o)", id="chat-model", compact=True)
                yield Static("no model loaded", id="chat-status", markup=False)
                # Not focusable: focus that leaves the model menu lands on the prompt.
                yield VerticalScroll(id="chat-log", can_focus=False)
                yield Static("", id="chat-confidence", markup=False)
                yield Input(
                    placeholder="prompt: Enter generates · Esc stops/leaves",
                    id="chat-prompt",
                    compact=True,
                )
            with VerticalScroll(id="chat-controls"):
                with Horizontal(classes="chat-row"):
                    yield Label("mode", classes="chat-label")
                    yield Select(
                        [("continue", "continue"), ("chat", "chat")],
                        value="continue",
                        allow_blank=False,
                        id="chat-mode",
                        compact=True,
                    )
                for field in CONTROLS:
                    with Horizontal(classes="chat-row"):
                        yield Label(field.label, classes="chat-label")
                        yield Input(field.initial, id=f"chat-{field.name}", compact=True)
                with Collapsible(title="samplers", collapsed=True, id="chat-samplers"):
                    for field in SAMPLER_CONTROLS:
                        with Horizontal(classes="chat-row"):
                            yield Label(field.label, classes="chat-label")
                            yield Input(field.initial, id=f"chat-{field.name}", compact=True)
                yield Checkbox("stop at end-of-text", True, id="chat-eos", compact=True)
                with Horizontal(classes="chat-row"):
                    yield Label("dtype", classes="chat-label")
                    yield Select(
                        [("fp32", "fp32")],
                        value="fp32",
                        allow_blank=False,
                        id="chat-dtype",
                        compact=True,
                    )
                yield Static("", id="chat-reason", markup=False)
                yield Static(
                    "ctrl+n inspect\nctrl+f confidence\nctrl+r new seed\n"
                    "ctrl+y copy answer\nctrl+s save transcript\nctrl+l clear\nctrl+o model",
                    id="chat-keys",
                    markup=False,
                )

    def on_mount(self) -> None:
        self._render_status()

    def on_show(self) -> None:
        # Not on mount: validating imports torch, which must not delay the app's
        # first frame; the Chat tab is shown later, when the engine is loaded.
        self._validate()
        self.refresh_models()

    # ------------------------------------------------------------ model choice

    def refresh_models(self) -> None:
        """Re-list checkpoints and downloaded GPT-2 sizes (in a worker)."""
        self._list_models(self.app.state.run_dir)

    @work(thread=True, exclusive=True, exit_on_error=False, group="chat-list")
    def _list_models(self, trained_run: Path | None) -> None:
        from gptcore.weights.modelspec import available_precisions, list_choices

        choices = list_choices()
        just = _just_trained(trained_run)
        if just is not None:
            choices.insert(0, just)
        self.post_message(ChatChoices(choices, available_precisions()))

    def on_chat_choices(self, message: ChatChoices) -> None:
        choices = list(message.choices)
        # A model opened from another screen stays listed even if not found here.
        for spec in (self.spec, self._want_spec):
            if spec and all(c.spec != spec for c in choices):
                choices.append(choice_for(spec))
        self._choices = choices
        select = self.query_one("#chat-model", Select)
        with select.prevent(Select.Changed):
            select.set_options([(Text(c.label), c.spec) for c in choices])
            current = self._want_spec or self.spec
            if current is not None:
                select.value = Select.NULL  # set_options bypassed the display: force it
                select.value = current
        dtype = self.query_one("#chat-dtype", Select)
        with dtype.prevent(Select.Changed):
            dtype.set_options([(p, p) for p in message.precisions])
            dtype.value = self.precision if self.precision in message.precisions else "fp32"

    @on(Select.Changed, "#chat-model")
    def _model_selected(self, event: Select.Changed) -> None:
        if isinstance(event.value, str) and event.value != self.spec:
            self.open_model(event.value)

    @on(Select.Changed, "#chat-dtype")
    def _dtype_selected(self, event: Select.Changed) -> None:
        if isinstance(event.value, str) and event.value != self.precision:
            self.precision = event.value
            spec = self._want_spec or self.spec
            if spec is not None:
                self.open_model(spec, reload=True)

    def open_model(self, spec: str, reload: bool = False) -> None:
        """Load the model a spec names (gptcore.modelspec: PATH, RUN:best, gpt2:SIZE, ...)
        in a worker."""
        if spec == self.spec and self.model is not None and not reload:
            return
        self._stop_generation()
        # Let the old model go first: two large models at once may not fit in memory.
        self.model, self.spec = None, None
        self._want_spec = spec
        self._load_token += 1
        self.loading = describe_spec(spec)
        self.load_error = None
        self._load_started = time.monotonic()
        if self._timer is None:
            self._timer = self.set_interval(0.5, self._render_status)
        select = self.query_one("#chat-model", Select)
        if any(c.spec == spec for c in self._choices):
            with select.prevent(Select.Changed):
                select.value = spec
        else:
            self.refresh_models()
        self._render_status()
        self._load(self._load_token, spec, self.precision)

    @work(thread=True, exclusive=True, exit_on_error=False, group="chat-load")
    def _load(self, token: int, spec: str, precision: str) -> None:
        from gptcore.weights.modelspec import load_spec

        model = load_spec(spec, "auto", precision).model
        self.post_message(ModelLoaded(token, spec, model, precision))

    def on_model_loaded(self, message: ModelLoaded) -> None:
        if message.token != self._load_token:
            return  # a newer load was asked for
        self.model, self.spec, self.precision = message.model, message.spec, message.precision
        self._want_spec = None
        self._end_loading()
        if self.app.focused in (self, self.query_one("#chat-model", Select)):
            self.query_one("#chat-prompt", Input).focus()  # next: type a prompt
        self.notify(f"{describe_spec(message.spec)} is ready", title="Chat", markup=False)
        self._validate()

    def _end_loading(self) -> None:
        self.loading = None
        if self._timer is not None:
            self._timer.stop()
            self._timer = None
        self._render_status()

    # ------------------------------------------------------------ controls

    @on(Input.Changed)
    def _control_changed(self, event: Input.Changed) -> None:
        if event.input.id != "chat-prompt" and self._active:
            self._validate()

    @on(Checkbox.Changed, "#chat-eos")
    def _eos_changed(self, event: Checkbox.Changed) -> None:
        if self._active:
            self._validate()

    def _validate(self) -> None:
        from gptcore.errors import GenerationError
        from gptcore.sampling.from_text import messages_by_label, settings_from_text, split_ban_list

        self._active = True  # from now on, every change is validated as typed
        controls = (*CONTROLS, *SAMPLER_CONTROLS)
        values = {f.name: self.query_one(f"#chat-{f.name}", Input).value for f in controls}
        lists = {name: split_ban_list(values.pop(name)) for name in LIST_CONTROLS}
        # Without a model: GPT-2's vocabulary, and the context is not known yet.
        limits: dict[str, int] = {}
        if self.model is not None:
            config = self.model.config
            limits = {"vocab_size": config.vocab_size, "context_length": config.context_length}
        eos = self.query_one("#chat-eos", Checkbox).value
        try:
            self.settings = settings_from_text(values, stop_at_eos=eos, **lists, **limits)
            errors: dict[str, str] = {}
        except GenerationError as exc:
            labels = {f.name: f.label for f in controls}
            self.settings, errors = None, messages_by_label(exc, labels)
        self.errors = errors
        for f in controls:
            widget = self.query_one(f"#chat-{f.name}", Input)
            widget.set_class(f.name in errors, "-invalid")
            widget.tooltip = Text(errors.get(f.name, f.help))
        self.query_one("#chat-reason", Static).update(Text("\n".join(errors.values())))

    @property
    def mode(self) -> str:
        return str(self.query_one("#chat-mode", Select).value)

    # ------------------------------------------------------------ generating

    @property
    def generating(self) -> bool:
        return self._cancel is not None

    @on(Input.Submitted, "#chat-prompt")
    def _submitted(self, event: Input.Submitted) -> None:
        self.send(event.value)

    def send(self, prompt: str) -> bool:
        """Start generating for `prompt`; False (with a notification) when impossible."""
        self._validate()
        problem = self._cannot_generate()
        if problem:
            self.notify(problem, title="Can't generate", severity="warning", markup=False)
            return False
        assert self.model is not None and self.settings is not None
        if self.mode == "chat" and not prompt.strip():
            self.notify("type a message first", title="Chat", severity="warning", markup=False)
            return False
        self.query_one("#chat-prompt", Input).value = ""
        self._gen_token += 1
        self._cancel = threading.Event()
        settings = self.settings
        if self.mode == "chat":
            settings = _with_stop(settings, "\n" + USER)
            self._pending_user = prompt
        else:
            self._pending_user = None
        self._add_block(prompt if prompt else "(empty prompt: starting from <|endoftext|>)", "user")
        self.transcript.append(("prompt" if self.mode == "continue" else "user", prompt))
        self._live, self._live_text = {}, {}
        for i in range(settings.num_samples):
            if settings.num_samples > 1:
                self._add_block(f"sample {i + 1}", "sample")
            self._live[i] = self._add_block("", "model")
            self._live_text[i] = ""
        history = list(self.history) if self.mode == "chat" else None
        self._generate(self._gen_token, self.model, prompt, history, settings, self._cancel)
        self._render_status()
        self.refresh_bindings()
        return True

    def _cannot_generate(self) -> str | None:
        if self.generating:
            return "already generating: Esc stops"
        if self.loading:
            return f"{self.loading} is still loading"
        if self.model is None:
            return "choose a model first (ctrl+o)"
        if self.errors:
            return next(iter(self.errors.values()))
        return None

    @work(thread=True, exclusive=True, exit_on_error=False, group="chat-generate")
    def _generate(
        self,
        token: int,
        model: GPTModel,
        prompt: str,
        history: list[tuple[str, str]] | None,
        settings: GenerationSettings,
        cancel: threading.Event,
    ) -> None:
        from gptcore.sampling.stream import TextStream

        if history is not None:
            ctx = model.config.context_length
            budget = max(ctx - settings.max_new_tokens, ctx // 2)
            built = chat_prompt(history, prompt, budget)
            if built.dropped_turns:
                self.post_message(
                    ChatNote(
                        token,
                        f"history truncated: the {built.dropped_turns} oldest turn(s) no "
                        f"longer fit the model's {ctx}-token window",
                    )
                )
            prompt = built.text
        # Recorded always (one softmax and top-k a token): ctrl+f can colour any answer.
        text_stream = TextStream(model, prompt, settings, cancel, logprobs=CONFIDENCE_TOP)
        pending: dict[int, str] = {}
        last = time.monotonic()
        for delta in text_stream:
            pending[delta.sample] = pending.get(delta.sample, "") + delta.text
            now = time.monotonic()
            if now - last >= POST_INTERVAL_S:
                self.post_message(ChatDelta(token, pending))
                pending, last = {}, now
        if pending:
            self.post_message(ChatDelta(token, pending))
        result = text_stream.result
        if result is not None and result.notice:
            self.post_message(ChatNote(token, result.notice))
        self.post_message(ChatDone(token, result))

    def on_chat_delta(self, message: ChatDelta) -> None:
        if message.token != self._gen_token:
            return
        for sample, piece in message.pieces.items():
            if sample in self._live:
                self._live_text[sample] += piece
                # Text, never markup: "[/b]" from the model shows as typed.
                self._live[sample].update(Text(self._live_text[sample]))
        self.query_one("#chat-log", VerticalScroll).scroll_end(animate=False)

    def on_chat_note(self, message: ChatNote) -> None:
        if message.token == self._gen_token:
            self._add_block(message.text, "note")

    def on_chat_done(self, message: ChatDone) -> None:
        if message.token != self._gen_token:
            return
        result = message.result
        texts = [self._live_text[i] for i in sorted(self._live_text)]
        if result is not None:
            texts = [s.text for s in result.samples]
            for i, text in enumerate(texts):
                if i in self._live:
                    self._live[i].update(Text(text))
            for block, text, _ in self._answers:
                block.update(Text(text))  # only the latest answer is coloured
            self._answers = [
                (self._live[i], s.text, s.tokens or [])
                for i, s in enumerate(result.samples)
                if i in self._live
            ]
            self.selected_token = 0
            self._render_confidence()
            reasons = {s.finish_reason for s in result.samples}
            tail = f"{result.new_tokens} tokens · {result.tokens_per_s:,.1f} tok/s"
            if "cancelled" in reasons:
                tail = "stopped · " + tail
            self._add_block(tail, "note")
        self.last_answer = texts[0].strip() if self.mode == "chat" and texts else "".join(texts[:1])
        # In chat mode the model answered as the prompt's "Assistant:"; else it continued.
        role = "assistant" if self._pending_user is not None else "continuation"
        for text in texts:
            self.transcript.append((role, text))
        if self._pending_user is not None and texts:
            self.history.append((self._pending_user, texts[0].strip()))
        self._finish_generation()

    def _finish_generation(self) -> None:
        self._cancel = None
        self._pending_user = None
        self._render_status()
        self.refresh_bindings()

    def _stop_generation(self) -> None:
        if self._cancel is not None:
            self._cancel.set()

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        group = event.worker.group
        if event.state != WorkerState.ERROR or not group.startswith("chat-"):
            return
        error = event.worker.error
        text = str(error) if isinstance(error, GptTuiError) else _describe_error(error)
        if group == "chat-load":
            self._want_spec = None
            self.load_error = f"could not load {self.loading}: {text}"
            self._end_loading()
            self.notify(
                text, title="Could not load the model", severity="error", timeout=10, markup=False
            )
        elif group == "chat-generate":
            self._add_block(f"generation failed: {text}", "note")
            self.notify(text, title="Generation failed", severity="error", timeout=10, markup=False)
            self._finish_generation()
        elif group == "chat-inspect":
            self.notify(text, title="Inspector", severity="error", markup=False)
        else:
            self.notify(text, title="Chat", severity="error", markup=False)

    # ------------------------------------------------------------ transcript

    def _add_block(self, text: str, kind: str) -> Static:
        block = Static(Text(text), classes=f"chat-{kind}", markup=False)
        log = self.query_one("#chat-log", VerticalScroll)
        log.mount(block)
        log.scroll_end(animate=False)
        return block

    def transcript_text(self) -> str:
        """The turns as the model saw them: chat mode's `User:` / `Assistant:` lines
        (the prompt format), continue mode's `Prompt:` / `Continuation:`."""
        names = {"user": USER, "assistant": ASSISTANT, "prompt": "Prompt:"}
        model = describe_spec(self.spec) if self.spec else "no model"
        parts = [f"# gpt-tui chat with {model}\n"]
        parts += [
            f"{names.get(role, 'Continuation:')} {text.strip()}" for role, text in self.transcript
        ]
        return "\n".join(parts) + "\n"

    # ------------------------------------------------------------ actions

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "stop":
            return self.generating  # False: Esc falls through to the app (leave input)
        if action == "copy":
            return True if self.last_answer else None
        if action == "select_token":
            return self.confidence  # False: ←/→ fall through
        if action == "save":
            return True if self.transcript else None
        return True

    def action_stop(self) -> None:
        """Escape: stop the generation; with none running, leave the input (as
        everywhere else), so the screen's keys work again."""
        if self.generating:
            self._stop_generation()
        else:
            self.focus()

    def action_focus_prompt(self) -> None:
        self.query_one("#chat-prompt", Input).focus()

    def action_choose_model(self) -> None:
        select = self.query_one("#chat-model", Select)
        select.focus()

        def expand() -> None:
            # After the focus lands: expanding focuses the menu, which must come last.
            select.expanded = True
            if select.value is Select.NULL and self._choices:
                from textual.widgets._select import SelectOverlay

                select.query_one(SelectOverlay).highlighted = 1  # the first model, not the prompt

        self.call_after_refresh(expand)

    def action_refresh_models(self) -> None:
        self.refresh_models()

    def action_new_seed(self) -> None:
        self.query_one("#chat-seed", Input).value = str(random.randrange(2**31))

    def action_confidence(self) -> None:
        """Colour the latest answer(s) by each token's probability; ←/→ select a token."""
        self.confidence = not self.confidence
        if self.confidence:
            self.focus()  # so ←/→ reach the pane, not the prompt
        self._render_confidence()
        self.refresh_bindings()

    def action_select_token(self, step: int) -> None:
        total = sum(len(records) for _, _, records in self._answers)
        if total:
            self.selected_token = (self.selected_token + step) % total
            self._render_confidence()

    def _render_confidence(self) -> None:
        panel = self.query_one("#chat-confidence", Static)
        panel.set_class(self.confidence, "-on")
        offset, chosen, position = 0, None, ""
        total = sum(len(records) for _, _, records in self._answers)
        for block, text, records in self._answers:
            if not self.confidence:
                block.update(Text(text))
                continue
            local = self.selected_token - offset
            selected = local if 0 <= local < len(records) else None
            if selected is not None:
                chosen, position = records[selected], f"{self.selected_token + 1}/{total}"
            block.update(confidence_text(text, records, selected))
            offset += len(records)
        if self.confidence:
            panel.update(confidence_panel(chosen, position))

    def action_clear(self) -> None:
        self._stop_generation()
        self._answers = []
        self._render_confidence()
        self.history.clear()
        self.transcript.clear()
        self.last_answer = ""
        self.query_one("#chat-log", VerticalScroll).remove_children()
        self.refresh_bindings()

    def action_copy(self) -> None:
        if not self.last_answer:
            return
        self.app.copy_to_clipboard(self.last_answer)  # OSC 52: works over SSH
        self.notify(f"copied {len(self.last_answer):,} characters", title="Chat", markup=False)

    def action_save(self) -> None:
        if not self.transcript:
            return
        from gptcore.util.fsutil import atomic_write_text
        from gptcore.util.paths import transcripts_dir

        path = transcripts_dir() / time.strftime("chat-%Y%m%d-%H%M%S.txt")
        try:
            atomic_write_text(path, self.transcript_text())
        except OSError as exc:
            self.notify(f"could not save: {exc}", title="Chat", severity="error", markup=False)
            return
        self.saved_path = path
        self.notify(f"saved {path}", title="Chat", markup=False)

    def action_inspect(self) -> None:
        """Open the next-token inspector on the current prompt (toy vocabulary without a model)."""
        from .inspector import InspectorScreen

        if self.model is None:
            self.app.push_screen(InspectorScreen())
            return
        prompt = self.query_one("#chat-prompt", Input).value
        ctx = self.model.config.context_length
        history = list(self.history) if self.mode == "chat" else None
        self._inspect(self.model, prompt, history, ctx, describe_spec(self.spec or ""))

    @work(thread=True, exclusive=True, exit_on_error=False, group="chat-inspect")
    def _inspect(
        self,
        model: GPTModel,
        prompt: str,
        history: list[tuple[str, str]] | None,
        ctx: int,
        model_name: str,
    ) -> None:
        from gptcore.sampling.nexttoken import next_token_logits
        from gptcore.sampling.stream import encode_prompt

        if history is not None:
            prompt = chat_prompt(history, prompt, ctx).text
        ids = encode_prompt(prompt)
        logits = next_token_logits(model, ids)
        shown = prompt if len(prompt) <= 40 else "…" + prompt[-39:]
        source = f"{model_name} after {shown!r}"
        ready = InspectReady(logits, source)
        ready.ids = ids[-ctx:]  # the history the penalties read
        self.post_message(ready)

    def on_inspect_ready(self, message: InspectReady) -> None:
        from gptcore.model.tokenizer import get_tokenizer

        from .inspector import InspectorScreen

        enc = get_tokenizer()

        def label(token: int) -> str:
            return enc.decode_single_token_bytes(token).decode("utf-8", errors="backslashreplace")

        s = self.settings
        self.app.push_screen(
            InspectorScreen(
                message.logits,
                label,
                message.source,
                temperature=s.temperature if s and s.temperature > 0 else 1.0,
                top_k=s.top_k if s else None,
                top_p=s.top_p if s else None,
                samplers=s,
                history=getattr(message, "ids", ()),
            )
        )

    # ------------------------------------------------------------ status

    def _render_status(self) -> None:
        if self.loading:
            elapsed = time.monotonic() - self._load_started
            text = f"loading {self.loading} ({self.precision}) … {elapsed:.0f}s"
        elif self.load_error:
            text = self.load_error
        elif self.model is None:
            text = "no model loaded: choose one above (ctrl+o)"
        else:
            c = self.model.config
            state = "generating … (Esc stops)" if self.generating else "ready"
            text = (
                f"{describe_spec(self.spec or '')} · {self.precision} · "
                f"ctx {c.context_length} · {state}"
            )
        self.query_one("#chat-status", Static).update(Text(text))

    def on_unmount(self) -> None:
        self._stop_generation()


def _just_trained(run_dir: Path | None) -> ModelChoice | None:
    """The Train screen's run (tui.messages.RunFolderChanged), once it has a checkpoint."""
    from gptcore.runs.rundir import RunDir

    if run_dir is None or not RunDir(run_dir).has_checkpoints():
        return None
    return ModelChoice(f"just trained: {Path(run_dir).name} (latest)", str(run_dir), LATEST)


def _with_stop(settings: GenerationSettings, stop: str) -> GenerationSettings:
    from dataclasses import replace

    return replace(settings, stop=(*settings.stop, stop))


def _describe_error(error: BaseException | None) -> str:
    """A user-facing line for an unexpected failure (out of memory, a bug)."""
    if error is None:
        return "unknown error"
    text = str(error).strip().splitlines()[0] if str(error).strip() else ""
    if isinstance(error, MemoryError) or "out of memory" in text.lower():
        return f"out of memory: {text or 'try a smaller model or a lower precision'}"
    return f"{type(error).__name__}: {text}" if text else type(error).__name__
