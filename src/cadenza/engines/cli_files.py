"""Where the engines' local commands (``cadenza drums``, ``cadenza separate``) put their files.

An engine runs in a private temporary folder inside the destination; its outputs are then moved to
``<dest>/<download stem><ext>`` (:attr:`cadenza.engines.base.Output.download_stem`, else the output's
name). An existing file is never replaced unless ``force``: the command fails before moving anything.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from cadenza.engines.base import Output


class WouldOverwrite(FileExistsError):
    """Files of the destination that a command would replace; ``paths`` lists them."""

    def __init__(self, paths: list[Path]) -> None:
        self.paths = paths
        names = ", ".join(str(p) for p in paths)
        super().__init__(f"{names} already exist{'s' if len(paths) == 1 else ''}; pass --force to replace")


def target_name(output: Output) -> str:
    """``<download_stem><ext>`` when the engine gave a stem, else the output's own name."""
    return f"{output.download_stem}{Path(output.name).suffix}" if output.download_stem else output.name


@contextmanager
def workdir_in(dest: Path) -> Iterator[Path]:
    """A fresh temporary folder inside ``dest`` (created), removed with whatever is left in it."""
    dest.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".cadenza-", dir=dest))
    try:
        yield work
    finally:
        shutil.rmtree(work, ignore_errors=True)


def place_outputs(outputs: Sequence[Output], dest: Path, *, force: bool = False) -> list[Path]:
    """Move each output into ``dest`` under :func:`target_name`; returns the new paths in order.

    Raises :class:`WouldOverwrite` (nothing moved) when a target exists and ``force`` is false."""
    targets = [dest / target_name(output) for output in outputs]
    existing = [t for t in targets if t.exists()]
    if existing and not force:
        raise WouldOverwrite(existing)
    for output, target in zip(outputs, targets, strict=True):
        os.replace(output.path, target)
    return targets
