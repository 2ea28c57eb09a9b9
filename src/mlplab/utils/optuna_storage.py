"""Where an Optuna study lives, as one text that the sweeper and every job process open the same way.

`hydra.sweeper.storage` is a database URL (`sqlite:///search.db`, `postgresql://...`: anything with `://`), or
the path of a journal file (Optuna's JournalStorage: appends to one file, safe for several processes and, with
a file system that honours fcntl/symlink locks, several machines). None: `<sweep folder>/optuna_journal.log`, so
that the study is reachable from every job process (the basic launcher's, joblib workers, submitit jobs).
"""

from __future__ import annotations

from pathlib import Path

import optuna
from optuna.storages import BaseStorage, JournalStorage, RDBStorage
from optuna.storages.journal import JournalFileBackend

JOURNAL_NAME = "optuna_journal.log"


def resolve_storage(storage: str | None, sweep_dir: str | Path) -> str:
    """The storage's text as every process opens it: a database URL as given, a journal file's absolute path."""
    if storage is None or str(storage).strip() == "":
        return str((Path(sweep_dir) / JOURNAL_NAME).resolve())
    storage = str(storage)
    if "://" in storage:
        return storage
    return str(Path(storage).expanduser().resolve())


def is_journal(resolved: str) -> bool:
    return "://" not in resolved


def open_storage(resolved: str) -> BaseStorage:
    """The storage `resolved` (from resolve_storage) names; a journal file's folder is made when missing."""
    if is_journal(resolved):
        Path(resolved).parent.mkdir(parents=True, exist_ok=True)
        return JournalStorage(JournalFileBackend(resolved))
    return RDBStorage(resolved)


def claim_lock_path(resolved: str) -> Path | None:
    """A file whose lock serialises claiming trials in this storage (None: a database server, no shared file)."""
    if is_journal(resolved):
        return Path(resolved + ".claim")
    if resolved.startswith("sqlite:///"):
        return Path(resolved.removeprefix("sqlite:///") + ".claim").resolve()
    return None


def load_study(resolved: str, study_name: str, pruner: optuna.pruners.BasePruner | None = None) -> optuna.Study:
    """The existing study `study_name` in the storage `resolved`, with `pruner` (pruners are not stored)."""
    return optuna.load_study(
        study_name=study_name, storage=open_storage(resolved), pruner=pruner or optuna.pruners.NopPruner()
    )
