"""`gpt-tui corpus prepare gutenberg` on Gutenberg-shaped files written here (none
of them real Gutenberg text): headers and footers cut, a non-English book and a
duplicate dropped, a book without markers kept and counted, resume after kill -9."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from gptcore.cli import main
from gptcore.data import gutenberg
from gptcore.data.gutenberg import is_english, prepare_gutenberg, strip_boilerplate
from gptcore.data.tokens import prepare_corpus

REPO = Path(__file__).resolve().parents[1]

HEADER = (
    "The Project Gutenberg eBook of {title}\n\nThis eBook is for the use of anyone anywhere.\n"
    "Title: {title}\n\n*** START OF THE PROJECT GUTENBERG EBOOK {upper} ***\n\n"
)
FOOTER = (
    "\n\n*** END OF THE PROJECT GUTENBERG EBOOK {upper} ***\n\n"
    "Section 1. General Terms of Use and Redistributing Project Gutenberg-tm electronic works\n"
)
ENGLISH = (
    "It was the end of a long day and the town was quiet. She walked down to the river "
    "with her brother, and they talked about what they would do when the summer came. "
    "There was no one else on the road, but he said that he could hear the bells of the "
    "old church from the hill.\n\n\n\nThe next morning they were up before the sun."
)
FRENCH = (
    "Il était une fois une petite maison près de la rivière. Les enfants jouaient dans "
    "le jardin pendant que leur mère préparait le repas. Le soir venu, toute la famille "
    "se réunissait autour de la table pour écouter les histoires du grand-père."
)


def book(title: str, body: str) -> str:
    upper = title.upper()
    return HEADER.format(title=title, upper=upper) + body + FOOTER.format(upper=upper)


def write_fixture(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "101.txt").write_text(book("A River", ENGLISH), encoding="utf-8")
    (folder / "102.txt").write_text(book("Une Maison", FRENCH), encoding="utf-8")
    # The same book again under another number (and another header): a duplicate.
    (folder / "sub").mkdir(exist_ok=True)
    (folder / "sub" / "103.txt").write_text(book("A River (reissue)", ENGLISH), encoding="utf-8")
    # No markers at all: kept whole, and counted.
    (folder / "104.txt").write_text("A plain text without any header. " * 5, encoding="utf-8")
    # Latin-1 bytes (an older file) with the markers.
    (folder / "105.txt").write_bytes(
        book("Old", "An old café by the sea and the town.").encode("latin-1")
    )
    (folder / "106.txt").write_text(book("Empty", "\n\n  \n"), encoding="utf-8")
    return folder


def test_strip_boilerplate_cuts_at_the_markers():
    body, markers = strip_boilerplate(book("A River", ENGLISH))
    assert markers == "both" and body.strip() == ENGLISH.strip()
    assert "Project Gutenberg" not in body
    assert strip_boilerplate("no markers here")[1] == "none"


def test_the_english_test_drops_french_but_keeps_english():
    assert is_english(ENGLISH) and not is_english(FRENCH)
    assert not is_english("Это не английский текст, а русский, и он длинный. " * 5)


def test_prepare_keeps_and_drops_exactly_what_it_should(tmp_path, capsys):
    src, out = write_fixture(tmp_path / "books"), tmp_path / "corpus"
    code = main(["corpus", "prepare", "gutenberg", str(src), "--out", str(out), "--english-only"])
    assert code == 0
    printed = capsys.readouterr().out
    kept = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.txt"))
    assert kept == ["101.txt", "104.txt", "105.txt"]
    assert (out / "101.txt").read_text() == ENGLISH.replace("\n\n\n\n", "\n\n") + "\n"
    assert "café" in (out / "105.txt").read_text(encoding="utf-8")
    report = json.loads((out / gutenberg.REPORT_FILE).read_text())
    assert report["dropped"] == {"not English": 1, "duplicate": 1, "empty": 1}
    assert (report["kept"], report["no_markers"], report["latin1"]) == (3, 1, 1)
    assert "1 duplicate" in printed and "1 not English" in printed
    done = json.loads((out / gutenberg.DONE_FILE).read_text())["entries"]
    dup = next(e for e in done if e["file"] == "sub/103.txt")
    assert dup["duplicate_of"] == "101.txt"
    # The output is a corpus gpt-tui reads as it is: one document per book.
    corpus = prepare_corpus(out)
    assert corpus.files == 3
    # Without --english-only the French book stays.
    again = prepare_gutenberg(src, tmp_path / "all")
    assert again.kept == 4 and "not English" not in again.dropped


_SLOW_RUN = """
import sys, time
from gptcore.data import gutenberg
real = gutenberg._judge
def slow(*args, **kwargs):
    entry = real(*args, **kwargs)
    print("judged", entry.file, flush=True)
    time.sleep(0.05)
    return entry
gutenberg._judge = slow
gutenberg.SAVE_EVERY_S = 0.0
gutenberg.prepare_gutenberg(sys.argv[1], sys.argv[2], english_only=True)
print("finished", flush=True)
"""


def test_prepare_resumes_after_kill_9(tmp_path):
    src, out = tmp_path / "books", tmp_path / "corpus"
    write_fixture(src)
    for i in range(40):  # more books, so the kill lands mid-way
        (src / f"2{i:03d}.txt").write_text(
            book(f"Book {i}", ENGLISH + f" Number {i}."), encoding="utf-8"
        )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    child = subprocess.Popen(
        [sys.executable, "-c", _SLOW_RUN, str(src), str(out)],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    judged = 0
    for line in child.stdout:
        judged += line.startswith("judged")
        if judged == 12:
            child.send_signal(signal.SIGKILL)
            break
    child.wait()
    child.stdout.close()
    assert child.returncode == -signal.SIGKILL
    done_before = json.loads((out / gutenberg.DONE_FILE).read_text())["entries"]
    assert 0 < len(done_before) < 46
    calls = []
    real = gutenberg._judge

    def counting(book_path, *args, **kwargs):
        calls.append(book_path.name)
        return real(book_path, *args, **kwargs)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(gutenberg, "_judge", counting)
        report = prepare_gutenberg(src, out, english_only=True)
    assert report.resumed == len(done_before)
    assert len(calls) == 46 - len(done_before)  # only what the done-list lacked
    assert (report.total, report.kept) == (46, 43)
    assert report.dropped == {"not English": 1, "duplicate": 1, "empty": 1}
    # No temporary files are left, and every kept book is whole.
    assert not [p for p in out.rglob("*") if ".tmp" in p.name or p.name.endswith(".partial")]
    assert (out / "2039.txt").read_text().endswith("Number 39.\n")


def test_an_output_folder_that_cannot_be_made_is_one_line(tmp_path, capsys):
    src = write_fixture(tmp_path / "books")
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder", encoding="utf-8")
    code = main(["corpus", "prepare", "gutenberg", str(src), "--out", str(blocker / "out")])
    err = capsys.readouterr().err.strip()
    assert code != 0 and "\n" not in err and "Traceback" not in err
    assert "cannot create the output folder" in err and "a-file/out" in err


def test_a_full_disk_while_saving_the_progress_is_one_line(tmp_path, capsys, monkeypatch):
    import errno

    src = write_fixture(tmp_path / "books")
    real_write = gutenberg.atomic_write_bytes

    def full(path, data):  # noqa: ANN001, ANN202
        if path.name == gutenberg.DONE_FILE:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_write(path, data)

    monkeypatch.setattr(gutenberg, "atomic_write_bytes", full)
    code = main(["corpus", "prepare", "gutenberg", str(src), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip()
    assert code != 0 and "\n" not in err and "Traceback" not in err
    assert "cannot write" in err and gutenberg.DONE_FILE in err and "No space left" in err
