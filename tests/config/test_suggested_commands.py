"""Every command that README.md, a comment in conf/ or a message in src/ suggests composes, passes the config
checks and, where it is cheap, runs (on tiny MNIST files, in this process).

The commands are collected from the files, so that commands added later are checked too. The rules:

1. Texts: README.md; the comments (after `#`) of conf/**/*.yaml; in src/mlplab/**/*.py, the string literals
   of `raise` statements and of calls to `log.*`/`logger.*`/`warnings.warn`/`print` (an f-string's `{...}`
   field ends the word it is in: `lr={lr / 10:g}` is an example with a computed value, not a command).
   README spans and lines that quote an error (`...Error: ...`, `... is invalid`) are left out.
2. `<...>` is a placeholder (`ckpt_path=<run folder>`): it becomes the word PLACEHOLDER; as a config group's
   option (`experiment=<name>`) it stands for each option of the group. A word `...` or a value `...` stands
   for anything and is dropped; so is a word with a `%s` (a logging field). `make train ARGS="..."` is the
   Makefile's train recipe.
3. Words are split at white space outside brackets, braces and quotes, and lose surrounding backticks,
   parentheses, quotes and trailing punctuation. A command is a run of consecutive override words
   (`key=value`, `+key=value`, `group/option=value`, `-m`), optionally right after a script word
   (`train.py`, `eval.py`, `predict.py`); a script word alone is the default command. A key counts only when
   its first part is a config group or a top-level key of conf/train.yaml (or `hydra`).
4. eval.py (predict.py) commands compose conf/eval.yaml (conf/predict.yaml), others conf/train.yaml.
   A comment in conf/<group>/<option>.yaml is read with that option chosen.
5. A sweep (`-m`, `a,b`) is composed as its first job.
6. Keys that exist only with some option (NEEDS_OPTION: `trainer.strategy.*` with a DDP accelerator) are
   composed with that option, unless the command picks one of that group itself; a key the config requires
   (`???`, eval's ckpt_path) that the command leaves out is PLACEHOLDER.
"""

from __future__ import annotations

import ast
import math
import re
from dataclasses import dataclass, field

import pytest
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import OmegaConf

from mlplab.config.compose import compose_run_config
from mlplab.config.location import CONFIG_DIR, PROJECT_ROOT
from mlplab.config.validation import validate_config
from mlplab.train import train
from mlplab.utils.errors import ConfigError
from tests.conftest import make_idx_dataset, tiny_overrides

SCRIPTS = {
    "train.py": "train",
    "mlplab.train": "train",
    "eval.py": "eval",
    "mlplab.eval": "eval",
    "predict.py": "predict",
    "mlplab.predict": "predict",
}
# Commands composed and checked, but not run here, and why (a word of the command starts with the key)
COMPOSE_ONLY = {
    "-m": "a sweep: its first job is composed here; tests/sweeps run sweeps",
    "hparams_search=": "an Optuna search (a sweep): tests/sweeps/test_optuna.py and tests/sweeps/test_resume.py run them",
    "hydra/launcher=": "a sweep launcher: tests/sweeps (test_parallel, test_submitit, stacked/) runs each",
    "accelerator=ddp": "DDP processes: tests/distributed/test_ddp.py runs accelerator=ddp_cpu",
    "accelerator=gpu": "needs a GPU",
    "accelerator=mps": "needs Apple silicon",
    "trainer.num_nodes=": "needs several machines",
    "data=": "another data set's real files: tests/e2e runs each data set",
    "experiment=": "a tuned run on real data (minutes): tests/e2e",
    "ckpt_path=": "needs a trained run: tests/checkpoints/test_resume.py and tests/test_eval.py",
    "eval.py": "needs a checkpoint: tests/test_eval.py",
    "compile=": "torch.compile takes about a minute on 2 CPU cores: tests/models/test_module_logging.py compiles",
}
# ...of which these need devices this machine may not have: composed, and refused only for the devices
NEEDS_DEVICES = ("accelerator=gpu", "accelerator=mps", "accelerator=ddp ", "trainer.num_nodes=")
# Keys that exist only with an option of a group: the option they are composed with (rule 6)
NEEDS_OPTION = {
    "trainer.strategy.": "accelerator=ddp_cpu",
    "hydra.sweeper.": "hparams_search=mnist_optuna",
    "hydra.launcher.": "hydra/launcher=parallel",
}
# Words quoted as values the checks refuse (not suggestions): checked to be refused
REFUSED = {
    "lr=-1": "README: the example of a bad value a sweep records as failed",
    "trainer.max_steps=0": "README, Troubleshooting: refused like trainer.max_epochs=0",
}

OVERRIDE = re.compile(r"^[+~]?(?P<key>[a-z_][a-z0-9_]*(?:[./][a-z0-9_]+)*)=(?P<value>.*)$")
PLACEHOLDER = "PLACEHOLDER"
FIELD = "\0"  # where an f-string field was


@dataclass(frozen=True)
class Command:
    config: str
    overrides: tuple[str, ...]
    where: str = field(compare=False)

    def __str__(self) -> str:
        return f"{self.config}: {' '.join(self.overrides) or '(defaults)'}"


def _known_roots() -> set[str]:
    groups = {p.name for p in CONFIG_DIR.iterdir() if p.is_dir()}
    return groups | set(OmegaConf.load(CONFIG_DIR / "train.yaml")) | {"hydra"}


def _words(text: str) -> list[str]:
    """Split at white space outside brackets, braces and quotes."""
    words, current, depth, quote = [], "", 0, ""
    for char in text:
        if quote:
            quote = "" if char == quote else quote
        elif char in "\"'" and depth:
            quote = char
        elif char in "[{":
            depth += 1
        elif char in "]}":
            depth = max(depth - 1, 0)
        if char.isspace() and not depth and not quote:
            words.append(current)
            current = ""
        else:
            current += char
    return [w for w in [*words, current] if w]


def _clean(word: str) -> str:
    word = word.strip("`")
    word = word.lstrip("(\"'")
    while (
        word
        and word[-1] in "`).,;:\"'"
        and not (word[-1] == ")" and word.count("(") > word.count(")") - 1 and "(" in word)
    ):
        word = word[:-1]
    return word


def commands_in(text: str, where: str, config: str = "train", chosen: tuple[str, ...] = ()) -> list[Command]:
    """The commands in `text` (rule 3), for `config`, with the `chosen` options of a conf/ file (rule 4)."""
    roots, found = _known_roots(), []
    while re.search(r"<[^<>\n]*>", text):  # placeholders in placeholders: <outputs/.../runs/<time>>
        text = re.sub(r"<[^<>\n]*>", PLACEHOLDER, text)
    text = re.sub(r"%[sdrf]", FIELD, text)
    recipe = re.search(r"^train:.*\n\t\$\(PY\) (.*)\$\(ARGS\)", (PROJECT_ROOT / "Makefile").read_text(), re.M)
    text = re.sub(r"make train ARGS=\"([^\"]*)\"", lambda m: f"{recipe.group(1)}{m.group(1)}", text)
    for line in text.splitlines():
        run: list[str] | None = None
        target = config
        for word in [*map(_clean, _words(line)), ""]:
            match = OVERRIDE.match(word)
            is_override = word in ("-m", "--multirun") or (
                match is not None and re.split(r"[./]", match["key"])[0] in roots and FIELD not in word
            )
            if word in SCRIPTS:
                if run is not None:
                    found.append((target, run))
                run, target = [], SCRIPTS[word]
            elif is_override:
                if match is None or match["value"] not in ("", "..."):
                    run = (run or []) + [word]
            elif word != "...":
                if run is not None:
                    found.append((target, run))
                run, target = None, config
    commands = []
    for target, overrides in found:
        if overrides in (["-m"], ["--multirun"]):
            continue
        for expanded in _each_option(overrides):
            groups = {re.split(r"[=.]", o.lstrip("+"))[0] for o in expanded}
            context = [option for start, option in NEEDS_OPTION.items() if any(o.startswith(start) for o in expanded)]
            required = [
                f"{k}={PLACEHOLDER}"
                for k, v in OmegaConf.to_container(OmegaConf.load(CONFIG_DIR / f"{target}.yaml")).items()
                if v == "???"
            ]
            extra = tuple(c for c in [*chosen, *context, *required] if re.split(r"[=.]", c)[0] not in groups)
            commands.append(Command(target, extra + tuple(expanded), where))
    return commands


def _each_option(overrides: list[str]) -> list[list[str]]:
    """`group=PLACEHOLDER` as each option of the group (rule 2)."""
    for i, override in enumerate(overrides):
        group, _, value = override.partition("=")
        if value == PLACEHOLDER and (CONFIG_DIR / group).is_dir():
            options = sorted(p.stem for p in (CONFIG_DIR / group).glob("*.yaml"))
            return [
                r
                for option in options
                for r in _each_option([*overrides[:i], f"{group}={option}", *overrides[i + 1 :]])
            ]
    return [overrides]


def readme_commands() -> list[Command]:
    text = (PROJECT_ROOT / "README.md").read_text()
    text = re.sub(r"\\\n\s*", " ", text)  # continued shell lines
    quoted_error = re.compile(r"Error\b|\bis invalid\b")
    spans = [s for s in re.findall(r"`([^`\n]+)`", text) if not quoted_error.search(s)]
    blocks = "\n".join(re.findall(r"```(?:bash|sh)?\n(.*?)```", text, re.S))
    lines = [line.split(" # ")[0] for line in blocks.splitlines() if not quoted_error.search(line)]
    return commands_in("\n".join(spans + lines), "README.md")


def conf_commands() -> list[Command]:
    commands = []
    for path in sorted(CONFIG_DIR.rglob("*.yaml")):
        relative = path.relative_to(CONFIG_DIR)
        comments = "\n".join(line.split("#", 1)[1] for line in path.read_text().splitlines() if "#" in line)
        if len(relative.parts) == 1:
            commands += commands_in(comments, str(relative), SCRIPTS.get(f"{path.stem}.py", "train"))
        else:
            chosen = (f"{'/'.join(relative.parts[:-1])}={path.stem}",)
            commands += commands_in(comments, f"conf/{relative}", "train", chosen)
    return commands


def _literal_text(node: ast.AST) -> str:
    """The text of the string literals under `node`; an f-string field leaves FIELD in its place."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(v.value if isinstance(v, ast.Constant) else FIELD for v in node.values)
    return " ".join(_literal_text(child) for child in ast.iter_child_nodes(node))


def _is_message_call(node: ast.AST) -> bool:
    if not isinstance(node, ast.Call):
        return False
    func = node.func
    name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
    owner = getattr(func.value, "id", "") if isinstance(func, ast.Attribute) else ""
    return name in ("print", "warn") or owner in ("log", "logger", "logging", "warnings")


def source_commands() -> list[Command]:
    commands = []
    for path in sorted((PROJECT_ROOT / "src" / "mlplab").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Raise) or _is_message_call(node):
                text = _literal_text(node).replace(FIELD, f" {FIELD} ")
                commands += commands_in(text, f"{path.relative_to(PROJECT_ROOT)}:{node.lineno}")
    return commands


def suggested_commands() -> list[Command]:
    unique: dict[Command, Command] = {}
    for command in readme_commands() + conf_commands() + source_commands():
        unique.setdefault(command, command)
    return [c for c in unique.values() if " ".join(c.overrides) not in REFUSED]


def first_job(overrides: tuple[str, ...]) -> list[str]:
    """A sweep's first job: the first value of every swept key (rule 5)."""
    parser = OverridesParser.create()
    job = []
    for override in overrides:
        if override in ("-m", "--multirun"):
            continue
        parsed = parser.parse_overrides([override])[0]
        if parsed.is_sweep_override():
            job.append(f"{override.split('=', 1)[0]}={next(parsed.sweep_string_iterator())}")
        else:
            job.append(override)
    return job


def compose_only(command: Command) -> str | None:
    """Why `command` is not run here, or None."""
    words = [command.config + ".py", *command.overrides]
    return next((why for start, why in COMPOSE_ONLY.items() if any(w.startswith(start) for w in words)), None)


COMMANDS = suggested_commands()


def test_the_files_suggest_the_commands_we_know_of():
    found = {str(c) for c in COMMANDS}
    for expected in (
        "train: trainer.gradient_clip_val=1.0",
        "train: accelerator=ddp trainer.devices=4",
        "train: callbacks.progress_bar=null",
        "train: accelerator=cpu",
    ):
        assert expected in found or any(expected in f for f in found), expected
    assert any(c.where.startswith("README") for c in COMMANDS)
    assert any(c.where.startswith("conf/") for c in COMMANDS)
    assert any(c.where.startswith("src/") for c in COMMANDS)


@pytest.mark.parametrize("command", COMMANDS, ids=str)
def test_a_suggested_command_composes_and_passes_the_checks(command, tmp_path):
    cfg = compose_run_config(first_job(command.overrides), tmp_path / "run", command.config)
    try:
        validate_config(cfg)
    except ConfigError as error:
        devices = any(w.startswith(NEEDS_DEVICES) or f"{w} ".startswith(NEEDS_DEVICES) for w in command.overrides)
        if not (devices and str(error).startswith(("trainer.devices=", "trainer.accelerator="))):
            raise


@pytest.mark.parametrize("words", REFUSED)
def test_a_value_quoted_as_bad_is_refused(words, compose_config):
    with pytest.raises(ConfigError):
        validate_config(compose_config(*words.split()))


RUNNABLE = [c for c in COMMANDS if compose_only(c) is None]


def _clashes(base: str, overrides: tuple[str, ...]) -> bool:
    def key(o: str) -> str:
        return o.lstrip("+~").split("=", 1)[0].replace("/", ".")

    return any(
        key(base) == key(o) or key(base).startswith(key(o) + ".") or key(o).startswith(key(base) + ".")
        for o in overrides
    )


@pytest.mark.parametrize("command", RUNNABLE, ids=str)
def test_a_suggested_command_runs(command, tmp_path):
    data_dir = tmp_path / "data"
    base = [
        *tiny_overrides(data_dir, make_idx_dataset(data_dir)),
        "logger=none",
        "baselines=false",
        "trainer.max_epochs=1",
        "callbacks=lean",
    ]
    overrides = [o for o in base if not _clashes(o, command.overrides)] + list(command.overrides)
    metrics = train(compose_run_config(overrides, tmp_path / "run", command.config))
    assert math.isfinite(metrics["test/loss"])
