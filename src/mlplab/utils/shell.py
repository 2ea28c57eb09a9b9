"""Commands printed for the user to paste into a shell: run by the interpreter that ran, each word quoted once."""

from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path

# characters a double-quoted shell word still gives a meaning to
_DOUBLE_QUOTE_SPECIAL = set('"$`\\!')


def interpreter() -> str:
    """The interpreter to print: `.venv/bin/python` (relative) when the one that ran lives under the working
    folder, else `python` (an absolute path elsewhere is this machine's detail, and usually an activated venv)."""
    # not resolved: a venv's python is a link to the system's, and the venv is what must run the command
    executable = Path(os.path.abspath(sys.executable))
    try:
        return shell_word(str(executable.relative_to(Path.cwd())))
    except ValueError:
        return "python"


def shell_word(word: str) -> str:
    """`word` as one shell word: as it is when plain, else in double quotes when that is enough (so that Hydra's
    own single quotes stay readable: "ckpt_path='/my runs/a'"), else shlex's quoting."""
    if shlex.quote(word) == word:
        return word
    if not _DOUBLE_QUOTE_SPECIAL & set(word):
        return f'"{word}"'
    return shlex.quote(word)


def command(script: str, *words: str) -> str:
    """`<interpreter> <script> <words...>`, each word quoted for the shell."""
    return " ".join([interpreter(), script, *(shell_word(w) for w in words)])
