"""core/npz: named arrays out of stored bytes, never unpickled."""

from __future__ import annotations

import io

import numpy as np
import pytest

from retraining_assets.core.npz import NpzError, read_arrays


def _npz(**arrays: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def test_reads_the_named_arrays() -> None:
    got = read_arrays(_npz(a=np.arange(3), b=np.ones(2), c=np.zeros(1)), ("a", "b"))
    assert list(got) == ["a", "b"]
    np.testing.assert_array_equal(got["a"], np.arange(3))


def test_missing_arrays_are_named() -> None:
    with pytest.raises(NpzError, match=r"arrays \['b'\] missing") as caught:
        read_arrays(_npz(a=np.arange(3)), ("a", "b"))
    assert caught.value.missing == ["b"]


@pytest.mark.parametrize("data", [b"", b"not a zip", _npz(a=np.array([{"x": 1}], dtype=object))])
def test_unreadable_or_pickled_bytes_are_refused(data: bytes) -> None:
    with pytest.raises(NpzError, match="unreadable") as caught:
        read_arrays(data, ("a",))
    assert caught.value.missing == []
