"""Printed commands name the interpreter that ran, as the user can type it from where they are."""

from __future__ import annotations

import shlex
import sys

from mlplab.utils.shell import command, interpreter


def test_a_venv_under_the_working_folder_is_named_by_its_relative_path(tmp_path, monkeypatch):
    python = tmp_path / ".venv" / "bin" / "python"
    monkeypatch.setattr(sys, "executable", str(python))
    monkeypatch.chdir(tmp_path)
    assert interpreter() == ".venv/bin/python"
    assert command("train.py", "-m", "lr=1e-3") == ".venv/bin/python train.py -m lr=1e-3"


def test_an_interpreter_elsewhere_is_python(tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "executable", "/opt/elsewhere/bin/python3")
    monkeypatch.chdir(tmp_path)
    assert interpreter() == "python"


def test_every_word_comes_back_from_the_shell_as_it_was():
    words = ["ckpt_path='/my runs/é'", "a'b", 'x="$HOME"', "plain=1", "back\\slash"]
    assert shlex.split(command("train.py", *words))[1:] == ["train.py", *words]
