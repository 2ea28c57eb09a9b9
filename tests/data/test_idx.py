import numpy as np
import pytest

from mlplab.data.idx import IDXFormatError, read_idx, write_idx


def test_write_then_read_round_trips_shape_and_values(tmp_path):
    array = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    write_idx(tmp_path / "a", array)
    assert read_idx(tmp_path / "a").numpy().tolist() == array.tolist()


def test_a_truncated_file_is_rejected_with_its_sizes(tmp_path):
    write_idx(tmp_path / "a", np.zeros((10, 28, 28), dtype=np.uint8))
    data = (tmp_path / "a").read_bytes()
    (tmp_path / "a").write_bytes(data[:-100])
    with pytest.raises(IDXFormatError, match=r"has 7756 bytes but its header \(10, 28, 28\) needs 7856"):
        read_idx(tmp_path / "a")


def test_a_file_that_is_not_idx_is_rejected(tmp_path):
    (tmp_path / "a").write_bytes(b"<html>not found</html>")
    with pytest.raises(IDXFormatError, match="not an IDX file"):
        read_idx(tmp_path / "a")
