"""Model artefacts that cannot run code on load, each with a card, and a registry that hot-reloads.

A pickle runs whatever its author wrote when it is loaded; a skops file only rebuilds objects of
types the loader names as trusted. So an artefact here is `<kind>-<UTC time>.skops` plus
`<same>.card.json` (library versions, feature schema, training window, data hash, scores and the
artefact's sha256), and `load_model` refuses, naming the file and the reason, unless:

1. the file lies inside the configured directory (after resolving symlinks),
2. its card exists and names it, and its sha256 matches the card,
3. every type in it is in TRUSTED_TYPES (scikit-learn's gradient boosting, numpy, our estimators).

The bytes are read once, hashed and loaded from memory, so the file cannot change in between.
Writes go to a temporary name and are renamed into place, the card last: a card that exists
always describes a complete artefact, which is what `ModelRegistry` polls for.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import polars as pl
import skops.io as sio

__all__ = [
    "TRUSTED_TYPES",
    "LoadedModel",
    "ModelCard",
    "ModelError",
    "ModelRefused",
    "ModelRegistry",
    "data_sha256",
    "load_model",
    "save_model",
]

CARD_SUFFIX = ".card.json"
MODEL_SUFFIX = ".skops"

TRUSTED_TYPES: frozenset[str] = frozenset(
    {
        # ours: plain parameter holders and numpy arrays
        "models._matrix.Encoding",
        "models.estimators.LastTwoAverage",
        "models.estimators.RuntimeQuantileRegressor",
        "models.estimators.UserEstimate",
        "models.estimators.WaitQuantileRegressor",
        "models.containers.estimators.ContainerEffectRegressor",
        # scikit-learn's fitted gradient-boosting trees (skops trusts the rest of sklearn/numpy)
        "sklearn.ensemble._hist_gradient_boosting.binning._BinMapper",
        "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    }
)
"""Types beyond skops' own safe set that our artefacts contain. Any other type is refused."""


class ModelError(Exception):
    """A model artefact could not be written or read."""


class ModelRefused(ModelError):
    """An artefact that must not be loaded: outside the directory, no card, wrong hash, untrusted types."""


@dataclass(frozen=True)
class ModelCard:
    """What a model is, what it was trained on and how well it did; written next to the artefact."""

    kind: str
    """What it predicts: "runtime" or "wait" (the registry's key)."""
    features: dict[str, str] = field(default_factory=dict)
    training_window: dict[str, Any] = field(default_factory=dict)
    """First/last submit instant, job count and sites of the training rows."""
    data_sha256: str = ""
    scores: dict[str, Any] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
    estimator: str = ""
    versions: dict[str, str] = field(default_factory=dict)
    created: str = ""
    artefact: str = ""
    artefact_sha256: str = ""

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True, default=str)

    @classmethod
    def from_json(cls, text: str) -> ModelCard:
        data = json.loads(text)
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in data.items() if k in known})


@dataclass(frozen=True)
class LoadedModel:
    model: Any
    card: ModelCard
    path: Path


def library_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for dist in ("scikit-learn", "skops", "numpy", "polars", "continuum-twin"):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[dist] = "unknown"
    return versions


def data_sha256(frame: pl.DataFrame, columns: tuple[str, ...] = ("site", "job_id", "submit_s")) -> str:
    """A stable fingerprint of the training rows (their ids, in order), as CSV bytes."""
    have = [c for c in columns if c in frame.columns]
    return hashlib.sha256(frame.select(have).write_csv().encode()).hexdigest()


def _atomic_write(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=path.suffix)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_model(model: Any, directory: str | Path, card: ModelCard) -> tuple[Path, ModelCard]:
    """Write `model` (skops) and its completed card into `directory`; returns the artefact's path."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)  # files are 0600 (mkstemp)
    if not card.kind or not card.kind.replace("_", "").isalnum():
        raise ModelError(f"model kind {card.kind!r} must be a plain name such as 'runtime'")
    now = datetime.now(UTC)
    stem = f"{card.kind}-{now.strftime('%Y%m%dT%H%M%S%fZ')}"
    path = directory / f"{stem}{MODEL_SUFFIX}"
    data = sio.dumps(model)
    _atomic_write(path, data)
    params = {k: v for k, v in model.get_params().items()} if hasattr(model, "get_params") else {}
    done = replace(
        card,
        estimator=f"{type(model).__module__}.{type(model).__qualname__}",
        params=json.loads(json.dumps(params, default=str)),
        versions=library_versions(),
        created=now.isoformat(),
        artefact=path.name,
        artefact_sha256=hashlib.sha256(data).hexdigest(),
    )
    _atomic_write(card_path(path), done.to_json().encode())
    return path, done


def card_path(artefact: Path) -> Path:
    return artefact.with_name(artefact.name.removesuffix(MODEL_SUFFIX) + CARD_SUFFIX)


def load_model(path: str | Path, trusted_dir: str | Path) -> LoadedModel:
    """Load an artefact written by `save_model`, or raise ModelRefused saying which file and why."""
    given = Path(path)
    try:
        root = Path(trusted_dir).resolve(strict=True)
    except OSError as exc:
        raise ModelRefused(f"refused to load {given}: the model directory {trusted_dir} does not exist") from exc
    candidate = given if given.is_absolute() else root / given
    resolved = candidate.resolve()
    if resolved.parent != root:
        raise ModelRefused(f"refused to load {given}: it is not in the model directory {root}")
    if not resolved.name.endswith(MODEL_SUFFIX):
        raise ModelRefused(f"refused to load {given}: not a {MODEL_SUFFIX} artefact")
    try:
        data = resolved.read_bytes()
    except OSError as exc:
        raise ModelRefused(f"refused to load {given}: cannot read it ({exc.strerror})") from exc
    card_file = card_path(resolved)
    try:
        card = ModelCard.from_json(card_file.read_text())
    except (OSError, ValueError, TypeError) as exc:
        raise ModelRefused(f"refused to load {given}: no readable model card {card_file.name} ({exc})") from exc
    if card.artefact != resolved.name:
        raise ModelRefused(f"refused to load {given}: its card {card_file.name} describes {card.artefact!r}")
    digest = hashlib.sha256(data).hexdigest()
    if digest != card.artefact_sha256:
        raise ModelRefused(
            f"refused to load {given}: sha256 {digest[:16]}… does not match its card ({card.artefact_sha256[:16]}…)"
        )
    try:
        untrusted = sio.get_untrusted_types(data=data)
    except Exception as exc:  # a damaged or foreign file: skops raises many kinds
        raise ModelRefused(f"refused to load {given}: not a readable skops file ({exc})") from exc
    foreign = sorted(set(untrusted) - TRUSTED_TYPES)
    if foreign:
        raise ModelRefused(f"refused to load {given}: it contains types that are not trusted: {', '.join(foreign)}")
    try:
        model = sio.loads(data, trusted=list(untrusted))
    except Exception as exc:
        raise ModelRefused(f"refused to load {given}: skops could not rebuild it ({exc})") from exc
    return LoadedModel(model, card, resolved)


class ModelRegistry:
    """The newest good model of each kind in one directory, re-checked at most every `poll_s`.

    Polling happens on `current()` (no thread to stop): a new card appears → its artefact is
    verified and loaded → served from then on. A new artefact that fails verification is reported
    in `errors` and the previous model keeps serving."""

    def __init__(self, directory: str | Path, poll_s: float = 2.0) -> None:
        self.directory = Path(directory)
        self.poll_s = poll_s
        self._lock = threading.Lock()
        self._loaded: dict[str, LoadedModel] = {}
        self._failed: dict[str, str] = {}
        self._cards: dict[str, tuple[int, ModelCard | None]] = {}
        self._scanned = float("-inf")
        self.errors: dict[str, str] = {}

    def current(self, kind: str) -> LoadedModel | None:
        with self._lock:
            if time.monotonic() - self._scanned >= self.poll_s:
                self._scan()
            return self._loaded.get(kind)

    def refresh(self) -> None:
        """Scan now, whatever the poll interval."""
        with self._lock:
            self._scan()

    def _scan(self) -> None:
        self._scanned = time.monotonic()
        try:
            entries = [e for e in os.scandir(self.directory) if e.name.endswith(CARD_SUFFIX)]
        except FileNotFoundError:  # a fresh install: nothing trained yet, not a fault
            entries = []
        except OSError as exc:
            self.errors["*"] = f"cannot list {self.directory}: {exc.strerror}"
            return
        self.errors.pop("*", None)
        newest: dict[str, ModelCard] = {}
        for entry in entries:
            mtime = entry.stat().st_mtime_ns
            cached = self._cards.get(entry.name)
            if cached is None or cached[0] != mtime:
                try:
                    card: ModelCard | None = ModelCard.from_json(Path(entry.path).read_text())
                except (OSError, ValueError, TypeError):
                    card = None
                self._cards[entry.name] = (mtime, card)
            card = self._cards[entry.name][1]
            if card is None or not card.artefact:
                continue
            best = newest.get(card.kind)
            if best is None or (card.created, card.artefact) > (best.created, best.artefact):
                newest[card.kind] = card
        for kind, card in newest.items():
            have = self._loaded.get(kind)
            if (have is not None and have.path.name == card.artefact) or self._failed.get(kind) == card.artefact:
                continue
            try:
                self._loaded[kind] = load_model(self.directory / card.artefact, self.directory)
                self.errors.pop(kind, None)
                self._failed.pop(kind, None)
            except ModelRefused as exc:
                self.errors[kind] = str(exc)
                self._failed[kind] = card.artefact
