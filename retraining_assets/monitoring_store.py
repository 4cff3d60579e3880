"""What the monitoring assets write and the sensors read, behind one small typed interface.

The run worker that measures a batch and the daemon whose sensors react to it may sit on different
hosts, so nothing here is a local path: every artifact is bytes under a key of the ``monitoring``
area of the run-time :class:`~retraining_assets.storage.ObjectStore` (a folder by default,
``s3://bucket/prefix`` in a distributed deployment). Layout, relative to that area::

    profiles/<model md5>-<profile key>.npz     drift reference of one production model
    errors/<batch id>.v<version>.npy           per-row squared errors of production v<version>
    shadow/<challenger md5>/<batch id>.npz     live labels + champion and challenger scores
    calibrators/<model md5>.npz                score calibration of one production model (CBPE)
    calibrators/<model md5>.test-split.npz     its test split's labels and raw scores
    scores/<batch id>.v<version>.npz           labels + raw scores of production v<version>

and, in the ``shared`` area only (a replay's, shared by its policies; no record of any policy)::

    predictions/<model md5>/<key>.npy          a model's scores of some rows (core/score_cache.py)

Arrays are written with ``np.save``/``np.savez`` into memory and read back with
``allow_pickle=False``: a file in the store can hold numbers, never code. Every name that becomes
part of a key (md5, profile key, batch id) is checked with :func:`storage.check_name`, so a
partition key such as ``../../x`` cannot leave the area.

No Dagster import: the resource in ``defs/state.py`` builds a :class:`MonitoringStore`.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from retraining_assets.storage import InvalidKey, ObjectStore, StoreError, check_key, check_name

if TYPE_CHECKING:
    import numpy as np

    from retraining_assets.core.drift import ReferenceProfile
    from retraining_assets.core.performance_estimation import LabelledScores, ScoreCalibrator

#: The sub-area of the state store that holds monitoring artifacts.
AREA = "monitoring"

_T = TypeVar("_T")

_PROFILES = "profiles"
_ERRORS = "errors"
_SHADOW = "shadow"
_CALIBRATORS = "calibrators"
_SCORES = "scores"
_PREDICTIONS = "predictions"
_LOCKS = "building"


class MonitoringDataError(StoreError):
    """A monitoring artifact exists but cannot be read as what it should be (torn, foreign)."""


@dataclass(frozen=True)
class ShadowScores:
    """One live batch scored by the champion and by the challenger beside it.

    Attributes:
        batch_id: The batch.
        y: Labels, in the batch's time order.
        champion: The serving model's probabilities for the same rows.
        challenger: The challenger's probabilities for the same rows.
    """

    batch_id: str
    y: np.ndarray
    champion: np.ndarray
    challenger: np.ndarray


def _npy_bytes(array: np.ndarray) -> bytes:
    import numpy as np

    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def _npz_bytes(**arrays: np.ndarray) -> bytes:
    import numpy as np

    buffer = io.BytesIO()
    np.savez(buffer, allow_pickle=False, **arrays)
    return buffer.getvalue()


class MonitoringStore:
    """Reference profiles, error streams and shadow scores in the ``monitoring`` area.

    Args:
        store: The monitoring area itself (e.g. ``open_store(url).child("monitoring")``).
    """

    def __init__(self, store: ObjectStore, shared: ObjectStore | None = None) -> None:
        self.store = store
        self.shared = shared

    def _model_bytes(self, key: str) -> bytes | None:
        """A model-keyed entry (profile, thresholds, calibrator): here, else the shared area's.

        Such an entry is a function of the model's bytes (and of the key's other parts), so a copy
        found in the ``shared`` area (e.g. written by another policy of a replay serving the same
        booster) is what this area would compute; it is copied here, so this area ends up holding
        the same bytes as if it had been computed here.
        """
        data = self.store.get_or_none(key)
        if data is None and self.shared is not None:
            data = self.shared.get_or_none(key)
            if data is not None:
                self.store.put(key, data)
        return data

    def building(self, name: str) -> contextlib.AbstractContextManager[None]:
        """Hold while looking up and building the model-keyed entries ``name`` stands for.

        Processes sharing the ``shared`` area (the policies of a replay, serving the same
        booster at the same time) then build them once: the second waits for the first and
        finds them (the shared store's :meth:`~retraining_assets.storage.ObjectStore.lock`: a
        file lock in a folder, released if the holder dies; none on S3, where each builds its
        own copy, the same bytes). No shared area: nothing to wait for. Not reentrant.

        Args:
            name: One key segment naming what is built (e.g. ``<model md5>-calibrator``).
        """
        if self.shared is None:
            return contextlib.nullcontext()
        return self.shared.lock(f"{_LOCKS}/{check_name(name, 'lock name')}")

    def _put_model_bytes(self, key: str, data: bytes) -> None:
        """Store a model-keyed entry here and, if there is one, in the shared area."""
        self.store.put(key, data)
        if self.shared is not None:
            self.shared.put(key, data)

    @property
    def location(self) -> str:
        """Where the area lives (folder or s3 URL), for messages and metadata."""
        return self.store.location

    def location_of(self, key: str) -> str:
        """Human-readable location of one key (file path, or s3 URL and endpoint)."""
        return self.store.location_of(key)

    def _read_npz(self, key: str, names: tuple[str, ...]) -> dict[str, np.ndarray]:
        from retraining_assets.core.npz import NpzError, read_arrays

        try:
            return read_arrays(self.store.get(key), names)
        except NpzError as exc:
            if exc.missing:
                raise MonitoringDataError(
                    f"{key} in {self.location} lacks arrays {exc.missing}: not a monitoring record"
                ) from None
            raise MonitoringDataError(f"{key} in {self.location} is {exc}") from None

    def _parsed(self, key: str, parse: Callable[[bytes], _T]) -> _T | None:
        """``parse`` of the model-keyed bytes under ``key``; ``None`` if there are none.

        The bytes may come from the shared area (see :meth:`_model_bytes`).

        Raises:
            MonitoringDataError: if the bytes are there but ``parse`` refuses them.
        """
        data = self._model_bytes(key)
        if data is None:
            return None
        try:
            return parse(data)
        except ValueError as exc:
            raise MonitoringDataError(f"{key} in {self.location}: {exc}") from None

    def _cached_json(self, key: str, convert: Callable[[Any], _T]) -> _T | None:
        """``convert`` of the model-keyed JSON under ``key``; ``None`` if absent, torn or foreign.

        A cache: the caller recomputes what this cannot read.
        """
        import json

        data = self._model_bytes(key)
        if data is None:
            return None
        try:
            return convert(json.loads(data.decode()))
        except (ValueError, AttributeError, TypeError):
            return None

    # -- reference profiles ---------------------------------------------------------------------

    @staticmethod
    def profile_key(model_md5: str, profile_key: str) -> str:
        """Key of the drift reference of one model and monitored feature set."""
        return (
            f"{_PROFILES}/{check_name(model_md5, 'model md5')}-"
            f"{check_name(profile_key, 'profile key')}.npz"
        )

    def get_profile(self, model_md5: str, profile_key: str) -> ReferenceProfile | None:
        """The cached reference profile, or ``None`` if none was built yet.

        Raises:
            MonitoringDataError: if a profile is stored but cannot be read.
        """
        from retraining_assets.core.drift import ReferenceProfile

        key = self.profile_key(model_md5, profile_key)
        data = self._model_bytes(key)
        if data is None:
            return None
        try:
            return ReferenceProfile.from_bytes(data)
        except Exception as exc:  # a torn or foreign archive: say which one
            raise MonitoringDataError(
                f"{key} in {self.location} is not a readable reference profile "
                f"({type(exc).__name__}: {exc})"
            ) from None

    def put_profile(self, model_md5: str, profile_key: str, profile: ReferenceProfile) -> str:
        """Store the reference profile of a model (replacing a previous one); return its key."""
        key = self.profile_key(model_md5, profile_key)
        self._put_model_bytes(key, profile.to_bytes())
        return key

    @staticmethod
    def thresholds_key(model_md5: str, profile_key: str, quantile: float) -> str:
        """Key of the calibrated per-feature PSI thresholds beside a reference profile."""
        return (
            f"{_PROFILES}/{check_name(model_md5, 'model md5')}-"
            f"{check_name(profile_key, 'profile key')}-q{round(quantile * 1000):d}.thresholds.json"
        )

    def get_thresholds(
        self, model_md5: str, profile_key: str, quantile: float
    ) -> dict[str, float] | None:
        """The cached calibrated PSI thresholds, or ``None`` if not built (or unreadable)."""
        return self._cached_json(
            self.thresholds_key(model_md5, profile_key, quantile),
            lambda loaded: {str(k): float(v) for k, v in loaded.items()},
        )

    def put_thresholds(
        self, model_md5: str, profile_key: str, quantile: float, thresholds: dict[str, float]
    ) -> str:
        """Store calibrated PSI thresholds (JSON); return the key."""
        import json

        key = self.thresholds_key(model_md5, profile_key, quantile)
        self._put_model_bytes(key, json.dumps(thresholds, sort_keys=True).encode())
        return key

    @staticmethod
    def correlations_key(model_md5: str, profile_key: str) -> str:
        """Key of the reference features' rank correlations beside a reference profile."""
        return (
            f"{_PROFILES}/{check_name(model_md5, 'model md5')}-"
            f"{check_name(profile_key, 'profile key')}.correlations.json"
        )

    def get_correlations(
        self, model_md5: str, profile_key: str
    ) -> dict[str, dict[str, float]] | None:
        """The cached |Spearman| between reference features; ``None`` if not built or unreadable."""
        return self._cached_json(
            self.correlations_key(model_md5, profile_key),
            lambda loaded: {
                str(a): {str(b): float(v) for b, v in row.items()} for a, row in loaded.items()
            },
        )

    def put_correlations(
        self, model_md5: str, profile_key: str, correlations: dict[str, dict[str, float]]
    ) -> str:
        """Store the reference features' |Spearman| (JSON); return the key."""
        import json

        key = self.correlations_key(model_md5, profile_key)
        self._put_model_bytes(key, json.dumps(correlations, sort_keys=True).encode())
        return key

    # -- error streams --------------------------------------------------------------------------

    @staticmethod
    def errors_key(batch_id: str, version: int) -> str:
        """Key of the error stream of production ``version`` on one batch."""
        if isinstance(version, bool) or not isinstance(version, int) or version < 0:
            raise InvalidKey(f"invalid production version {version!r}: a non-negative integer")
        return f"{_ERRORS}/{check_name(batch_id, 'batch id')}.v{version}.npy"

    def put_errors(self, batch_id: str, version: int, errors: np.ndarray) -> str:
        """Store the per-row errors (time order) of production ``version`` on a batch.

        Returns:
            The key, to record in the asset's metadata.
        """
        import numpy as np

        key = self.errors_key(batch_id, version)
        self.store.put(key, _npy_bytes(np.asarray(errors, dtype="float32").ravel()))
        return key

    def get_errors(self, batch_id: str, version: int) -> np.ndarray:
        """The error stream written by :meth:`put_errors` (float64).

        Raises:
            KeyNotFound: if none was written.
            MonitoringDataError: if it cannot be read.
        """
        return self.errors_at(self.errors_key(batch_id, version))

    def errors_at(self, key: str) -> np.ndarray:
        """The error stream under ``key`` (as recorded in ``batch_performance``'s metadata).

        Raises:
            KeyNotFound: if the key does not exist.
            MonitoringDataError: if the key is outside ``errors/`` or the bytes are not a 1-D array.
        """
        import numpy as np

        if not check_key(key).startswith(f"{_ERRORS}/"):
            raise MonitoringDataError(f"{key!r} is not an error-stream key (errors/...)")
        data = self.store.get(key)
        try:
            array = np.load(io.BytesIO(data), allow_pickle=False)
        except Exception as exc:
            raise MonitoringDataError(
                f"{key} in {self.location} is unreadable ({type(exc).__name__}: {exc})"
            ) from None
        if not isinstance(array, np.ndarray) or array.ndim != 1 or array.dtype.kind != "f":
            raise MonitoringDataError(f"{key} in {self.location} is not a 1-D float error stream")
        return array.astype("float64")

    # -- shadow scores --------------------------------------------------------------------------

    @staticmethod
    def shadow_key(challenger_md5: str, batch_id: str) -> str:
        """Key of one batch's shadow scores for one challenger."""
        return (
            f"{_SHADOW}/{check_name(challenger_md5, 'challenger md5')}/"
            f"{check_name(batch_id, 'batch id')}.npz"
        )

    def put_shadow(
        self,
        challenger_md5: str,
        batch_id: str,
        *,
        y: np.ndarray,
        champion: np.ndarray,
        challenger: np.ndarray,
    ) -> str:
        """Store the labels and both models' scores of one live batch; return the key.

        Raises:
            ValueError: if the three arrays do not have one value per row each.
        """
        import numpy as np

        arrays = {
            "y": np.asarray(y, dtype="float64").ravel(),
            "champion": np.asarray(champion, dtype="float64").ravel(),
            "challenger": np.asarray(challenger, dtype="float64").ravel(),
        }
        if len({len(a) for a in arrays.values()}) != 1:
            raise ValueError(
                "shadow scores need one label and two scores per row: lengths "
                + ", ".join(f"{k}={len(v)}" for k, v in arrays.items())
            )
        key = self.shadow_key(challenger_md5, batch_id)
        self.store.put(key, _npz_bytes(**arrays))
        return key

    def shadow_batches(self, challenger_md5: str) -> list[str]:
        """Batch ids on which the challenger was scored, sorted."""
        prefix = f"{_SHADOW}/{check_name(challenger_md5, 'challenger md5')}"
        return sorted(
            key.rsplit("/", 1)[1].removesuffix(".npz")
            for key in self.store.list(prefix)
            if key.endswith(".npz")
        )

    def get_shadow(self, challenger_md5: str, batch_id: str) -> ShadowScores:
        """The shadow scores of one batch.

        Raises:
            KeyNotFound: if the challenger was not scored on that batch.
            MonitoringDataError: if the record is unreadable or its arrays disagree in length.
        """
        key = self.shadow_key(challenger_md5, batch_id)
        arrays = self._read_npz(key, ("y", "champion", "challenger"))
        if len({a.shape for a in arrays.values()}) != 1 or arrays["y"].ndim != 1:
            raise MonitoringDataError(f"{key} in {self.location}: arrays differ in shape")
        return ShadowScores(batch_id=batch_id, **arrays)

    def all_shadow(self, challenger_md5: str) -> list[ShadowScores]:
        """Every batch's shadow scores for one challenger, in batch order."""
        return [self.get_shadow(challenger_md5, b) for b in self.shadow_batches(challenger_md5)]

    # -- shared scores of a model on some rows (a cache, not a record) --------------------------

    @property
    def shares_scores(self) -> bool:
        """Whether there is a shared area to keep a model's scores of a batch in."""
        return self.shared is not None

    @staticmethod
    def shared_scores_key(model_md5: str, key: str) -> str:
        """Key of one cached scoring (``core.score_cache.scores_key``) of one model."""
        return (
            f"{_PREDICTIONS}/{check_name(model_md5, 'model md5')}/"
            f"{check_name(key, 'scores key')}.npy"
        )

    def get_shared_scores(self, model_md5: str, key: str) -> bytes | None:
        """The cached scores' bytes in the shared area; ``None`` without one or an entry there.

        Unlike the model-keyed entries they are not copied into this area: they are no record
        of this policy, only the result of a computation another one already made.
        """
        if self.shared is None:
            return None
        return self.shared.get_or_none(self.shared_scores_key(model_md5, key))

    def put_shared_scores(self, model_md5: str, key: str, data: bytes) -> None:
        """Keep scores in the shared area (atomically replaced); nothing without one."""
        if self.shared is not None:
            self.shared.put(self.shared_scores_key(model_md5, key), data)

    # -- score calibrators (label-free performance estimation) ----------------------------------

    @staticmethod
    def calibrator_key(model_md5: str) -> str:
        """Key of the score calibrator of one production model."""
        return f"{_CALIBRATORS}/{check_name(model_md5, 'model md5')}.npz"

    def get_calibrator(self, model_md5: str) -> ScoreCalibrator | None:
        """The stored calibrator of a model, or ``None`` if none was fitted yet.

        Raises:
            MonitoringDataError: if one is stored but cannot be read.
        """
        from retraining_assets.core.performance_estimation import ScoreCalibrator

        return self._parsed(self.calibrator_key(model_md5), ScoreCalibrator.from_bytes)

    def put_calibrator(self, model_md5: str, calibrator: ScoreCalibrator) -> str:
        """Store a model's calibrator (plain arrays in an ``.npz``); return its key."""
        key = self.calibrator_key(model_md5)
        self._put_model_bytes(key, calibrator.to_bytes())
        return key

    @staticmethod
    def reference_scores_key(model_md5: str) -> str:
        """Key of the test split's labels and raw scores of one production model."""
        return f"{_CALIBRATORS}/{check_name(model_md5, 'model md5')}.test-split.npz"

    def get_reference_scores(self, model_md5: str) -> LabelledScores | None:
        """A model's stored test-split labels and scores, or ``None`` if not kept yet.

        Raises:
            MonitoringDataError: if they are stored but cannot be read.
        """
        from retraining_assets.core.performance_estimation import LabelledScores

        return self._parsed(self.reference_scores_key(model_md5), LabelledScores.from_bytes)

    def put_reference_scores(self, model_md5: str, reference: LabelledScores) -> str:
        """Store a model's test-split labels and scores (``.npz``); return the key."""
        key = self.reference_scores_key(model_md5)
        self._put_model_bytes(key, reference.to_bytes())
        return key

    # -- labelled scores of served batches (the calibration refit) -----------------------------

    @staticmethod
    def labelled_scores_key(batch_id: str, version: int) -> str:
        """Key of one batch's labels and the raw scores of production ``version``."""
        if isinstance(version, bool) or not isinstance(version, int) or version < 0:
            raise InvalidKey(f"invalid production version {version!r}: a non-negative integer")
        return f"{_SCORES}/{check_name(batch_id, 'batch id')}.v{version}.npz"

    def put_labelled_scores(self, version: int, labelled: LabelledScores) -> str:
        """Store a labelled batch's labels and production ``version``'s raw scores.

        Returns:
            The key, recorded in ``batch_performance``'s verdict (``scores_key``).
        """
        key = self.labelled_scores_key(labelled.batch_id, version)
        self.store.put(key, labelled.to_bytes())
        return key

    def labelled_scores_at(self, key: str) -> LabelledScores:
        """The labelled scores under ``key`` (as recorded in a performance verdict).

        Raises:
            KeyNotFound: if the key does not exist.
            MonitoringDataError: if the key is outside ``scores/`` or the bytes are unreadable.
        """
        from retraining_assets.core.performance_estimation import LabelledScores

        if not check_key(key).startswith(f"{_SCORES}/"):
            raise MonitoringDataError(f"{key!r} is not a labelled-scores key (scores/...)")
        try:
            return LabelledScores.from_bytes(self.store.get(key))
        except ValueError as exc:
            raise MonitoringDataError(f"{key} in {self.location}: {exc}") from None
