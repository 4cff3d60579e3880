"""A served model's scores of a batch, kept by what decides them: the same rows are scored once.

The policies of a replay often serve byte-identical boosters (the training cache makes a
window's booster the same for every policy), and each one's monitoring scores every batch with
its booster: the same computation repeated. A key names one scoring by its inputs only: the
model file's md5, a SHA-256 of the exact float matrix LightGBM receives (the rows' features
encoded with the model's own categories, so it covers the batch's bytes, which rows were
selected and a later label join), the version of the scoring code and LightGBM's version, and
the thread count. Equal keys give bit-identical scores, so a hit returns what scoring would.

Entries are ``.npy`` bytes read with ``allow_pickle=False`` (numbers, never code); one that
does not read back as one float per row is a miss and is scored again. No I/O here: the caller
hands in ``get`` and ``put`` (the monitoring store's shared area).
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from retraining_assets.libraries import preload

if TYPE_CHECKING:
    import pandas as pd

    from retraining_assets.core.training import Scorer

#: Bumped when the key's parts or an entry's layout change.
CACHE_VERSION = 1


def scores_key(*, model_md5: str, matrix: np.ndarray, code_version: str, num_threads: int) -> str:
    """The SHA-256 naming one scoring: the model, the encoded rows, the code, the threads.

    Args:
        model_md5: md5 of the model file (the booster's exact bytes).
        matrix: The float matrix handed to LightGBM (:meth:`Scorer.encode`).
        code_version: Version of the scoring code (e.g. a hash of its modules' source).
        num_threads: LightGBM's prediction threads.
    """
    preload("lightgbm")
    import lightgbm  # already loaded by the scorer's booster; metadata lookup costs ~10 ms

    rows = np.ascontiguousarray(matrix)
    digest = hashlib.sha256(rows.tobytes()).hexdigest()
    parts = {
        "cache": CACHE_VERSION,
        "model_md5": model_md5,
        "matrix": [digest, str(rows.dtype), list(rows.shape)],
        "code_version": code_version,
        "lightgbm": lightgbm.__version__,
        "num_threads": num_threads,
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


def scores_to_bytes(scores: np.ndarray) -> bytes:
    """The scores as ``.npy`` bytes (float64, one per row)."""
    buffer = io.BytesIO()
    np.save(buffer, np.asarray(scores, dtype="float64").ravel(), allow_pickle=False)
    return buffer.getvalue()


def scores_from_bytes(data: bytes, n_rows: int) -> np.ndarray:
    """The scores stored by :func:`scores_to_bytes`, checked to hold ``n_rows`` floats.

    Raises:
        ValueError: if the bytes are not a 1-D float64 array of ``n_rows`` values.
    """
    try:
        array = np.load(io.BytesIO(data), allow_pickle=False)
    except Exception as exc:  # numpy raises ValueError, OSError, EOFError ...
        raise ValueError(f"unreadable scores ({type(exc).__name__}: {exc})") from None
    if not isinstance(array, np.ndarray) or array.dtype != np.float64 or array.shape != (n_rows,):
        raise ValueError(f"not {n_rows} float64 scores")
    return array


def predict_cached(
    scorer: Scorer,
    frame: pd.DataFrame,
    *,
    model_md5: str,
    code_version: str,
    get: Callable[[str], bytes | None],
    put: Callable[[str, bytes], None],
) -> np.ndarray:
    """``scorer.predict(frame)``, read from the cache when the same model scored the same rows.

    Args:
        scorer: The served model's scorer (its booster has the md5 ``model_md5``).
        frame: The rows to score.
        model_md5: md5 of the scorer's model file.
        code_version: Version of the scoring code, part of the key.
        get: The cached bytes under a key, or ``None``.
        put: Keep bytes under a key (a miss leaves its scores for the next caller).

    Returns:
        One probability per row, bit-identical to ``scorer.predict(frame)``.
    """
    matrix = scorer.encode(frame)
    key = scores_key(
        model_md5=model_md5,
        matrix=matrix,
        code_version=code_version,
        num_threads=scorer.num_threads,
    )
    cached = _readable(get(key), len(matrix))
    if cached is not None:
        return cached
    # A miss, or an entry torn or foreign: scored (again) and the entry replaced.
    scores = scorer.predict_encoded(matrix)
    put(key, scores_to_bytes(scores))
    return scores


def _readable(data: bytes | None, n_rows: int) -> np.ndarray | None:
    """The scores in ``data``, or ``None`` when there is no entry or it is not ``n_rows`` floats."""
    if data is None:
        return None
    try:
        return scores_from_bytes(data, n_rows)
    except ValueError:
        return None
