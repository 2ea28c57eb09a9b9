"""What a `_target_` takes, read from its signature, and whether a config value fits a type hint."""

from __future__ import annotations

import collections.abc as abc
import inspect
import os
import types
import typing
from dataclasses import dataclass
from functools import cache
from pathlib import Path, PurePath
from typing import Any, Literal, Union

from hydra._internal.utils import _locate  # hydra.utils.get_object also logs an error of its own

NoneType = type(None)
UNKNOWN: Any = Any  # a parameter whose type nothing tells: every value fits


@dataclass(frozen=True)
class Parameters:
    """The keyword parameters of a `_target_`: name -> type hint, and whether it takes any other keyword."""

    hints: dict[str, Any]
    takes_any: bool


# Targets whose **kwargs go on to another callable, read for their parameters too ("where they go": "what takes them")
KWARGS_GO_TO = {
    "lightning.pytorch.loggers.wandb.WandbLogger": "wandb.init",
    "lightning.pytorch.strategies.ddp.DDPStrategy": "torch.nn.parallel.DistributedDataParallel",
}


# Parameters without hints whose default is None, by name: scikit-learn's, shared by its estimators
UNTYPED_WITH_NONE = {"n_jobs": int | None, "random_state": int | None, "max_depth": int | None}


def locate(target: str) -> Any:
    return _locate(target)


def _hints_of(function: Any) -> dict[str, Any]:
    """Type hints of `function`'s parameters; a hint that cannot be evaluated (a name imported for type checkers
    only) counts as unknown, and a parameter without one takes the type of a bool or number default."""
    try:
        hints = typing.get_type_hints(function)
    except Exception:  # one unresolvable name spoils the lot: evaluate them one by one
        hints = {}
        namespace = getattr(inspect.unwrap(function), "__globals__", {})
        for name, annotation in getattr(function, "__annotations__", {}).items():
            try:
                hints[name] = eval(annotation, namespace) if isinstance(annotation, str) else annotation
            except Exception:
                hints[name] = UNKNOWN
    result = {}
    for name, parameter in inspect.signature(function).parameters.items():
        if parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
            continue
        hint = hints.get(name, UNKNOWN)
        if hint is UNKNOWN and isinstance(parameter.default, (bool, int, float)):
            hint = type(parameter.default)  # e.g. scikit-learn, which has no hints: C=1.0, max_iter=100
        elif hint is UNKNOWN and parameter.default is None:
            hint = UNTYPED_WITH_NONE.get(name, UNKNOWN)
        result[name] = hint
    return result


def _takes_any_keyword(function: Any) -> bool:
    return any(p.kind is p.VAR_KEYWORD for p in inspect.signature(function).parameters.values())


@cache
def parameters(target: str) -> Parameters:
    """What `target` (a `_target_` string) accepts: a class's __init__ along its bases while they pass **kwargs on."""
    obj = locate(target)
    functions = (
        [cls.__dict__["__init__"] for cls in obj.__mro__ if "__init__" in cls.__dict__ and cls is not object]
        if inspect.isclass(obj)
        else [obj]
    )
    hints: dict[str, Any] = {}
    takes_any = bool(functions)  # a class with no __init__ of its own takes nothing
    for function in functions:
        for name, hint in _hints_of(function).items():
            hints.setdefault(name, hint)
        if not _takes_any_keyword(function):
            takes_any = False
            break
        owner = getattr(function, "__qualname__", "").rsplit(".", 1)[0]
        onward = KWARGS_GO_TO.get(f"{function.__module__}.{owner}")
        if onward:
            more = parameters(onward)
            for name, hint in more.hints.items():
                hints.setdefault(name, hint)
            takes_any = more.takes_any
            break
    hints.pop("self", None)
    return Parameters(hints, takes_any)


def fits(value: Any, hint: Any) -> bool:
    """Whether a plain config value (resolved: dicts, lists, str, numbers, bool, None) fits `hint`."""
    if hint is UNKNOWN or isinstance(hint, (typing.TypeVar, str, typing.ForwardRef)):
        return True
    if isinstance(value, dict) and "_target_" in value:
        return True  # an object Hydra builds: its own node is checked against its own target
    if hint is None or hint is NoneType:
        return value is None
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is Union or origin is types.UnionType:
        return any(fits(value, arg) for arg in args)
    if origin is Literal:
        return any(value == arg and type(value) is type(arg) for arg in args)
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is str:
        return isinstance(value, str)
    if hint in (Path, PurePath, os.PathLike):
        return isinstance(value, str)
    container = origin or hint
    if container in (list, tuple, set, frozenset, abc.Sequence, abc.Iterable, abc.Collection, abc.MutableSequence):
        if not isinstance(value, list):
            return False
        if container is tuple and args and args[-1] is not Ellipsis:
            return len(value) == len(args) and all(fits(v, a) for v, a in zip(value, args))
        return all(fits(v, args[0]) for v in value) if args else True
    if container in (dict, abc.Mapping, abc.MutableMapping):
        if not isinstance(value, dict):
            return False
        return all(fits(v, args[1]) for v in value.values()) if len(args) == 2 else True
    if container in (abc.Callable, typing.Callable):
        return False  # a config value is never a function (a `_target_` node was accepted above)
    if inspect.isclass(container):
        try:
            return isinstance(value, container)
        except TypeError:  # a Protocol: a plain value (text, a number, a mapping without _target_) implements none
            return False
    return True  # a typing construct not handled here: no opinion


_SEQUENCES = (list, tuple, set, frozenset, abc.Sequence, abc.Iterable, abc.Collection, abc.MutableSequence)


def element_hint(hint: Any) -> Any:
    """The type of the items of a list that `hint` allows (UNKNOWN when it allows none, or items by position)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is Union or origin is types.UnionType:
        items = [element_hint(a) for a in args if (typing.get_origin(a) or a) in _SEQUENCES]
        items = [i for i in items if i is not UNKNOWN]
        return Union[tuple(items)] if items else UNKNOWN  # noqa: UP007 (built at run time)
    if (origin or hint) in _SEQUENCES and len(args) == 1:
        return args[0]
    if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
        return args[0]
    return UNKNOWN


def describe(hint: Any) -> str:
    """`hint` in words, for messages: "an integer or null", "one of 'norm', 'value'", "a list of integers"."""
    if hint is None or hint is NoneType:
        return "null"
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is Union or origin is types.UnionType:
        # classes Hydra builds in one phrase: "a Precision, CheckpointIO or LayerSync (a node with a _target_)"
        nodes = [a.__name__ for a in args if inspect.isclass(a) and a not in _WORDS and a is not NoneType]
        parts = [describe(a) for a in args if a is not NoneType and not (inspect.isclass(a) and a.__name__ in nodes)]
        if nodes:
            names = ", ".join(nodes[:-1]) + " or " + nodes[-1] if len(nodes) > 1 else nodes[0]
            parts.insert(0, f"a {names} (a node with a _target_)")
        return " or ".join(dict.fromkeys(parts + (["null"] if NoneType in args else [])))
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in args)
    if hint in _WORDS:
        return _WORDS[hint]
    container = origin or hint
    if container in (list, tuple, set, frozenset, abc.Sequence, abc.Iterable, abc.Collection, abc.MutableSequence):
        if container is tuple and args and args[-1] is not Ellipsis:
            return f"a list of {len(args)}: " + ", ".join(describe(a) for a in args)
        return f"a list of {_plural(describe(args[0]))}" if args else "a list"
    if container in (dict, abc.Mapping, abc.MutableMapping):
        return "a mapping"
    if inspect.isclass(container):
        return f"a {container.__name__} (a node with a _target_)"
    return str(hint)


_WORDS = {
    bool: "true or false",
    int: "an integer",
    float: "a number",
    str: "a string",
    Path: "a path",
    PurePath: "a path",
    os.PathLike: "a path",
}


def _plural(words: str) -> str:
    for one, many in (
        ("an integer", "integers"),
        ("a number", "numbers"),
        ("a string", "strings"),
        ("a path", "paths"),
    ):
        words = words.replace(one, many)
    return words
