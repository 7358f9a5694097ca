"""Keys typed right after Escape.

Terminals send Alt+key as Escape followed by the key, so an Escape and a key typed
quickly after it arrive together and read as Alt+key: Textual waits ESCDELAY
(100 ms) for the rest of a sequence, and tmux merges the two itself within its
escape-time (500 ms by default), before the app sees them. The app binds no
Alt+letter, so such a key is taken for what the user typed: Escape, then the key
(`after_escape`). Without this, Escape then `3` in the Chat prompt typed "3" into
the prompt, and Escape then `t` in the Runs filter did nothing.
"""

from __future__ import annotations

from textual import events


def after_escape(event: events.Key) -> events.Key | None:
    """The key that followed an Escape merged into `event` (Alt+<printable character>),
    or None when `event` is any other key."""
    character = event.character
    if not event.key.startswith("alt+") or character is None:
        return None
    if len(character) != 1 or not character.isprintable():
        return None
    key = event.key.removeprefix("alt+")
    if key.startswith("shift+") and character.isupper():
        key = character  # what the terminal sends for the capital letter alone
    return events.Key(key, character)
