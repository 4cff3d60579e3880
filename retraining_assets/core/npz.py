"""Named arrays out of ``.npz`` bytes, never unpickling: the one reader of stored archives."""

from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np


class NpzError(ValueError):
    """Bytes that are not an ``.npz`` archive, or one that lacks arrays.

    Attributes:
        missing: The wanted arrays the archive lacks (empty when it could not be read at all).
    """

    def __init__(self, message: str, missing: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.missing = list(missing)


def read_arrays(data: bytes, names: Sequence[str]) -> dict[str, np.ndarray]:
    """The arrays ``names`` of the ``.npz`` archive ``data``, read with ``allow_pickle=False``.

    Raises:
        NpzError: if ``data`` is unreadable as an archive, holds an object array (which would
            need unpickling) among ``names``, or lacks one of them (``missing``).
    """
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as archive:
            missing = [name for name in names if name not in archive.files]
            if missing:
                raise NpzError(f"arrays {missing} missing", missing)
            return {name: archive[name] for name in names}
    except NpzError:
        raise
    except Exception as exc:  # numpy raises ValueError, OSError, EOFError, BadZipFile ...
        raise NpzError(f"unreadable ({type(exc).__name__}: {exc})") from None
