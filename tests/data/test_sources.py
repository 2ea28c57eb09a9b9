import gzip
import hashlib
import logging
from pathlib import Path

import pytest

from mlplab.data.sources import DataUnavailableError, Mirror, SourceError, fetch_verified, md5sum


class Failing:
    def __str__(self):
        return "always-failing source"

    def fetch(self, names, dest):
        raise SourceError("no network")


class Crashing:
    """A source that fails in a way no source anticipates."""

    def __str__(self):
        return "crashing source"

    def fetch(self, names, dest):
        raise PermissionError(13, "Permission denied", str(dest / names[0]))


class Silent:
    """A source that says nothing went wrong but writes no file."""

    def __str__(self):
        return "silent source"

    def fetch(self, names, dest):
        pass


def _mirror(tmp_path: Path, compressed: bool = False) -> tuple[Mirror, dict[str, str]]:
    folder = tmp_path / "mirror" / "DS" / "raw"
    folder.mkdir(parents=True)
    files = {}
    for name, content in (("a", b"alpha" * 100), ("b", b"beta" * 100)):
        if compressed:
            (folder / f"{name}.gz").write_bytes(gzip.compress(content))
        else:
            (folder / name).write_bytes(content)
        (tmp_path / "expected").write_bytes(content)
        files[name] = md5sum(tmp_path / "expected")
    return Mirror(tmp_path / "mirror", "DS/raw"), files


@pytest.mark.parametrize("compressed", [False, True])
def test_files_come_from_the_first_source_that_works_and_are_verified(tmp_path, compressed):
    mirror, files = _mirror(tmp_path, compressed)
    dest = fetch_verified(tmp_path / "data", files, [Failing(), mirror])
    assert {name: md5sum(dest / name) for name in files} == files
    assert not list(dest.glob(".fetch-*"))  # no scratch folders left behind


def test_a_corrupted_local_file_is_replaced_by_a_verified_copy_and_one_log_line_says_so(tmp_path, caplog):
    mirror, files = _mirror(tmp_path)
    dest = fetch_verified(tmp_path / "data", files, [mirror])
    (dest / "a").write_bytes(b"corrupted")
    caplog.clear()  # only what the second fetch logs (an earlier test may have left INFO on for mlplab)
    with caplog.at_level(logging.INFO, logger="mlplab.data.sources"):
        fetch_verified(dest, files, [mirror], what="DS")
    assert md5sum(dest / "a") == files["a"]
    bad_md5 = hashlib.md5(b"corrupted").hexdigest()
    assert [r.getMessage() for r in caplog.records] == [
        f"DS: repaired a in {dest} (its md5 was {bad_md5}, expected {files['a']}) with a verified copy from {mirror}"
    ]
    assert caplog.records[0].levelno == logging.WARNING


def test_a_truncated_gz_in_one_source_is_recorded_and_the_next_source_is_tried(tmp_path):
    broken, files = _mirror(tmp_path / "broken", compressed=True)
    packed = tmp_path / "broken" / "mirror" / "DS" / "raw" / "a.gz"
    packed.write_bytes(packed.read_bytes()[:-8])  # cut short, as by a killed download
    good, _ = _mirror(tmp_path / "good")
    dest = fetch_verified(tmp_path / "data", files, [broken, good])
    assert {name: md5sum(dest / name) for name in files} == files
    with pytest.raises(DataUnavailableError) as error:
        fetch_verified(tmp_path / "other", files, [broken, Crashing(), Silent()])
    message = str(error.value)
    assert f"1. {broken}: {packed} is not a complete gzip file (Compressed file ended before" in message
    assert f"2. crashing source: PermissionError: [Errno 13] Permission denied: '{tmp_path / 'other'}" in message
    assert "3. silent source: FileNotFoundError: " in message
    assert f"put these uncompressed files in {tmp_path / 'other'}" in message
    assert not list((tmp_path / "other").glob(".fetch-*"))


def test_a_source_with_wrong_files_is_rejected_and_never_installed(tmp_path):
    mirror, files = _mirror(tmp_path)
    wrong = dict(files, a="0" * 32)
    with pytest.raises(DataUnavailableError) as error:
        fetch_verified(tmp_path / "data", wrong, [mirror])
    message = str(error.value)
    assert f"a has md5 {files['a']}, expected {'0' * 32}" in message
    assert not (tmp_path / "data" / "a").exists()


def test_when_every_source_fails_the_error_lists_each_and_how_to_provide_the_files(tmp_path):
    with pytest.raises(DataUnavailableError) as error:
        fetch_verified(tmp_path / "data", {"a": "1" * 32}, [Failing(), Mirror(None, "DS/raw")])
    message = str(error.value)
    assert "1. always-failing source: no network" in message
    assert "2. data mirror (not set): no mirror is set (paths.data_mirror=<folder> or the DATA_MIRROR" in message
    assert f"put these uncompressed files in {tmp_path / 'data'}" in message
    assert "a  md5 " + "1" * 32 in message
