"""Progress bars for the steps of a retrain that take minutes on a CPU, shown only on a terminal:
a log file or a pipe gets the step's summary line instead of a bar redrawn in place."""

from __future__ import annotations

import sys
from collections.abc import Callable


def on_terminal() -> bool:
    return sys.stderr.isatty()


def progress_bar(label: str) -> Callable[[str, int], Callable[[int], None]] | None:
    """A factory of tqdm bars on stderr named `label: step`, or None off a terminal."""
    if not on_terminal():
        return None

    def start(step: str, total: int) -> Callable[[int], None]:
        from tqdm.auto import tqdm

        bar = tqdm(total=total, desc=f"{label}: {step}", unit="answer", leave=False)

        def advance(n: int) -> None:
            bar.update(n)
            if bar.n >= bar.total:
                bar.close()

        return advance

    return start
