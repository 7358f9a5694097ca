"""The Chat pane: pick a model, type a prompt, watch the continuation stream in.

It composes the parts (the model menu, the transcript log, the confidence view,
the controls) and runs the workers: loading a model, streaming an answer
(generation.stream_answer), and the next-token inspector's one model call
(generation.inspect_turn). Stop sets a threading.Event the engine checks between
tokens. Two modes: "continue" is the book's plain continuation of the prompt;
"chat" feeds the User/Assistant transcript back as context
(gptcore.sampling.chat.next_turn, which the inspector uses too).
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Container, Horizontal, Vertical
from textual.widgets import Input, Select
from textual.worker import Worker, WorkerState

from gptcore.weights.spec import describe_spec

from ..inspector import InspectorScreen
from .confidence import ConfidenceView
from .controls import ChatControls
from .generation import inspect_turn, stream_answer
from .messages import (
    ChatChoices,
    ChatDelta,
    ChatDone,
    ChatNote,
    InspectReady,
    ModelLoaded,
    describe_error,
)
from .models import ModelPicker
from .transcript import ChatLog, Conversation, result_line, save_transcript

if TYPE_CHECKING:
    from gptcore.model.gpt import GPTModel
    from gptcore.settings.sampling import GenerationSettings

PROMPT_HINT = "prompt (p): Enter generates · Esc stops/leaves"
# Below these pane widths the controls column narrows (its key list goes: the footer
# and help have the keys), then gives the transcript all the room (chat.tcss).
NARROW_COLUMNS = 70
TIGHT_COLUMNS = 50


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
        self.conversation = Conversation()
        self.saved_path: Path | None = None
        self._generation = 0  # the latest generation: an older one's messages are dropped
        self._cancel: threading.Event | None = None  # set: stop the generation

    def compose(self) -> ComposeResult:
        with Horizontal():
            with Vertical(id="chat-main"):
                yield ModelPicker()
                yield ChatLog(id="chat-log")
                yield ConfidenceView(id="chat-confidence")
                yield Input(placeholder=PROMPT_HINT, id="chat-prompt", compact=True)
            yield ChatControls(id="chat-controls")

    def on_resize(self) -> None:
        width = self.size.width
        self.set_class(width < NARROW_COLUMNS, "-narrow")
        self.set_class(width < TIGHT_COLUMNS, "-tight")

    def on_show(self) -> None:
        # Not on mount: validating imports torch, which must not delay the app's
        # first frame; the Chat tab is shown later, when the engine is loaded.
        self.controls.validate()
        self.refresh_models()

    # ------------------------------------------------------------ the parts

    @property
    def controls(self) -> ChatControls:
        return self.query_one(ChatControls)

    @property
    def chat_log(self) -> ChatLog:
        return self.query_one(ChatLog)

    @property
    def confidence(self) -> ConfidenceView:
        return self.query_one(ConfidenceView)

    @property
    def picker(self) -> ModelPicker:
        return self.query_one(ModelPicker)

    @property
    def settings(self) -> GenerationSettings | None:
        """The controls' settings; None while a value is refused."""
        return self.controls.settings

    @property
    def generating(self) -> bool:
        return self._cancel is not None

    # ------------------------------------------------------------ the model

    @property
    def model(self) -> GPTModel | None:
        return self.picker.model

    @property
    def spec(self) -> str | None:
        return self.picker.spec

    def refresh_models(self) -> None:
        """Re-list checkpoints and downloaded GPT-2 sizes (in a worker)."""
        self.picker.list_models(self.app.state.run_dir)

    def on_chat_choices(self, message: ChatChoices) -> None:
        """After the picker offered the models: the precisions this device runs."""
        self.controls.set_precisions(message.precisions, self.picker.precision)

    @on(Select.Changed, "#chat-model")
    def _model_selected(self, event: Select.Changed) -> None:
        if isinstance(event.value, str) and event.value != self.spec:
            self.open_model(event.value)

    @on(Select.Changed, "#chat-dtype")
    def _dtype_selected(self, event: Select.Changed) -> None:
        spec = self.picker.choose_precision(str(event.value))
        if spec is not None:
            self.open_model(spec, reload=True)  # the model again, at that precision

    def open_model(self, spec: str, reload: bool = False) -> None:
        """Stop any generation and load the model a spec names (in a worker)."""
        if spec != self.spec or self.model is None or reload:
            self._stop_generation()
        self.picker.open(spec, self.picker.precision, reload)

    def on_model_loaded(self, message: ModelLoaded) -> None:
        """After the picker took the model: the prompt is next, checked against it."""
        if self.app.focused in (self, self.picker.menu):
            self.query_one("#chat-prompt", Input).focus()
        config = message.model.config
        self.controls.set_model(config.vocab_size, config.context_length)

    # ------------------------------------------------------------ generating

    @on(Input.Submitted, "#chat-prompt")
    def _submitted(self, event: Input.Submitted) -> None:
        self.send(event.value)

    def send(self, prompt: str) -> bool:
        """Start generating for `prompt`; False (with a notification) when impossible."""
        self.controls.validate()
        problem = self._cannot_generate()
        if problem:
            self.notify(problem, title="Can't generate", severity="warning", markup=False)
            return False
        assert self.model is not None and self.settings is not None
        chat = self.controls.mode == "chat"
        if chat and not prompt.strip():
            self.notify("type a message first", title="Chat", severity="warning", markup=False)
            return False
        history = list(self.conversation.history) if chat else None
        self.query_one("#chat-prompt", Input).value = ""
        self._generation += 1
        self._cancel = threading.Event()
        self.conversation.ask(prompt, chat)
        self.chat_log.start_turn(prompt, self.settings.num_samples)
        args = (self._generation, self.model, prompt, self.settings, history, self._cancel)
        self._run("chat-generate", stream_answer, *args)
        self._render_status()
        self.refresh_bindings()
        return True

    def _cannot_generate(self) -> str | None:
        if self.generating:
            return "already generating: Esc stops"
        if self.picker.opening:
            return f"{self.picker.opening} is still loading"
        if self.model is None:
            return "choose a model first (ctrl+o)"
        if self.controls.errors:
            return next(iter(self.controls.errors.values()))
        return None

    def on_chat_delta(self, message: ChatDelta) -> None:
        if message.generation == self._generation:
            self.chat_log.add_pieces(message.pieces)

    def on_chat_note(self, message: ChatNote) -> None:
        if message.generation == self._generation:
            self.chat_log.add_block(message.text, "note")

    def on_chat_done(self, message: ChatDone) -> None:
        if message.generation != self._generation:
            return
        log, result = self.chat_log, message.result
        texts = log.live_texts()
        if result is not None:
            texts = [s.text for s in result.samples]
            # Only the latest answer is coloured (ctrl+f).
            self.confidence.show_answers(log.finish_answer(result))
            log.add_block(result_line(result), "note")
        self.conversation.answered(texts)
        self._finish_generation()

    def _finish_generation(self) -> None:
        self._cancel = None
        self._render_status()
        self.refresh_bindings()

    def _stop_generation(self) -> None:
        if self._cancel is not None:
            self._cancel.set()

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        """The generation's and the inspector's failures (the picker has its own)."""
        if event.state != WorkerState.ERROR:
            return
        text = describe_error(event.worker.error)
        if event.worker.group == "chat-generate":
            self.chat_log.add_block(f"generation failed: {text}", "note")
            self.notify(text, title="Generation failed", severity="error", timeout=10, markup=False)
            self.conversation.pending_user = None
            self._finish_generation()
        else:
            self.notify(text, title="Inspector", severity="error", markup=False)

    # ------------------------------------------------------------ actions

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "stop":
            return self.generating  # False: Esc falls through to the app (leave input)
        if action == "copy":
            return True if self.conversation.last_answer else None
        if action == "select_token":
            return self.confidence.showing  # False: ←/→ fall through
        if action == "save":
            return True if self.conversation.transcript else None
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
        self.picker.menu.open_menu()

    def action_refresh_models(self) -> None:
        self.refresh_models()

    def action_new_seed(self) -> None:
        self.query_one("#chat-seed", Input).value = str(random.randrange(2**31))

    def action_confidence(self) -> None:
        """Colour the latest answer(s) by each token's probability; ←/→ select a token."""
        self.confidence.toggle()
        if self.confidence.showing:
            self.focus()  # so ←/→ reach the pane, not the prompt
        self.refresh_bindings()
        self._keep_answer_in_view()

    def action_select_token(self, step: int) -> None:
        self.confidence.step(step)
        self._keep_answer_in_view()

    def _keep_answer_in_view(self) -> None:
        """The panel takes rows from the log: once the layout has settled, scroll the
        log to the answer being coloured (it was left below the fold)."""

        def scroll() -> None:
            block = self.confidence.selected_block()
            if block is not None and block.is_mounted:
                self.chat_log.scroll_to_widget(block, animate=False)

        self.call_after_refresh(scroll)

    def action_clear(self) -> None:
        self._stop_generation()
        self.confidence.show_answers([])
        self.conversation.clear()
        self.chat_log.clear()
        self.refresh_bindings()

    def action_copy(self) -> None:
        answer = self.conversation.last_answer
        if answer:
            self.app.copy_to_clipboard(answer)  # OSC 52: works over SSH
            self.notify(f"copied {len(answer):,} characters", title="Chat", markup=False)

    def transcript_text(self) -> str:
        return self.conversation.text(describe_spec(self.spec) if self.spec else "no model")

    def action_save(self) -> None:
        if not self.conversation.transcript:
            return
        try:
            path = save_transcript(self.transcript_text())
        except OSError as exc:
            self.notify(f"could not save: {exc}", title="Chat", severity="error", markup=False)
            return
        self.saved_path = path
        self.notify(f"saved {path}", title="Chat", markup=False)

    # ------------------------------------------------------------ the inspector

    def action_inspect(self) -> None:
        """Open the next-token inspector on the context the next answer would start
        from (the toy vocabulary without a model)."""
        if self.model is None:
            self.app.push_screen(InspectorScreen(), self._inspector_closed)
            return
        self.controls.validate()
        if self.settings is None:
            problem = next(iter(self.controls.errors.values()))
            self.notify(problem, title="Can't inspect", severity="warning", markup=False)
            return
        prompt = self.query_one("#chat-prompt", Input).value
        history = list(self.conversation.history) if self.controls.mode == "chat" else None
        name = describe_spec(self.spec or "")
        self._run("chat-inspect", inspect_turn, self.model, prompt, self.settings, history, name)

    def _run(self, group: str, job: Callable[..., None], *args: object) -> None:
        """Run `job(post_message, *args)` in a thread worker, the only one of its group."""
        work = partial(job, self.post_message, *args)
        self.run_worker(work, thread=True, exclusive=True, exit_on_error=False, group=group)

    def on_inspect_ready(self, message: InspectReady) -> None:
        m = message
        screen = InspectorScreen(m.logits, m.context, m.source, m.settings, m.note)
        self.app.push_screen(screen, self._inspector_closed)

    def _inspector_closed(self, _result: object) -> None:
        # Back on the screen, not in the prompt: the inspector was left with Escape,
        # and digits typed next switch screens rather than land in the prompt.
        self.app.call_after_refresh(self.focus)

    # ------------------------------------------------------------ status

    def _render_status(self) -> None:
        self.picker.generating = self.generating
        self.picker.render_status()

    def on_unmount(self) -> None:
        self._stop_generation()
