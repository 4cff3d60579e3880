"""Input checks shared by the detectors that read a numeric series (streaming and change points)."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray


def as_1d_finite(values: ArrayLike, name: str) -> NDArray[np.float64]:
    """Return ``values`` as a 1-D float64 array, rejecting NaN and infinities.

    Args:
        values: A scalar or a one-dimensional sequence of numbers.
        name: The argument's name, for the error message.

    Raises:
        ValueError: ``values`` has more than one dimension or holds NaN or an infinity.
    """
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim == 0:
        arr = arr.reshape(1)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or infinite values")
    return arr
