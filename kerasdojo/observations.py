"""Observations of any Gymnasium space as agents see them: one array per leaf.

:meth:`ObsSpec.of` walks an observation space into leaves, each encoded as an array:

* ``Box``: float32, except ``uint8`` (images and other bytes), kept as it is;
* ``Discrete``: one-hot float32; ``MultiDiscrete``: one-hot per part, concatenated;
* ``MultiBinary``: float32 zeros and ones;
* ``Dict`` and ``Tuple``, nested: their leaves, named by their keys (``obs_0``, ``obs_1`` ...
  for Tuple items; nested names joined with ``.``, as ``agent.pos``);
* ``Text`` (MiniGrid's mission) is left out, with a note that says so; anything else (``Graph``,
  ``Sequence``) is a one-line error naming its key.

A plain space is one leaf and its observations stay arrays, exactly as before. The
observations of a Dict or Tuple space are dicts ``{leaf name: array}`` (``ObsSpec.nested``).
The tree helpers (:func:`tree_map`, :func:`batch_size`, :func:`first`) take either.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import numpy as np

from kerasdojo.errors import DojoError

Obs = Any  # an array, or a dict of arrays (one per leaf)
LEAF_KINDS = ("box", "discrete", "multi_discrete", "multi_binary")


@dataclasses.dataclass(frozen=True)
class Leaf:
    """One encoded part of an observation: its name, where it sits in the raw observation,
    and the shape and dtype of one encoded observation."""

    name: str
    path: tuple[Any, ...]  # keys (Dict) and indices (Tuple) into the raw observation
    kind: str  # one of LEAF_KINDS
    shape: tuple[int, ...]
    dtype: np.dtype
    sizes: tuple[int, ...] = ()  # Discrete: (n,); MultiDiscrete: nvec
    starts: tuple[int, ...] = ()  # Discrete and MultiDiscrete: each part's start

    @property
    def normalizable(self) -> bool:
        """Whether running-statistics normalisation applies: float Box leaves only (never images or codes)."""
        return self.kind == "box" and self.dtype == np.float32

    def raw(self, obs: Any) -> Any:
        for key in self.path:
            obs = obs[key]
        return obs

    def encode(self, raw: Any) -> np.ndarray:
        """A batch of this leaf's raw values, encoded."""
        if self.kind == "box":
            return np.asarray(raw, self.dtype)
        if self.kind == "multi_binary":
            return np.asarray(raw, np.float32).reshape(-1, *self.shape)
        codes = np.asarray(raw, np.int64).reshape(-1, len(self.sizes)) - np.asarray(self.starts, np.int64)
        out = np.zeros((len(codes), int(sum(self.sizes))), np.float32)
        offsets = np.concatenate([[0], np.cumsum(self.sizes)[:-1]]).astype(np.int64)
        out[np.arange(len(codes))[:, None], offsets + codes] = 1.0
        return out

    def describe(self) -> str:
        what = {"box": "", "discrete": " one-hot", "multi_discrete": " one-hot per part", "multi_binary": " bits"}
        return f"{self.name}: {self.shape} {self.dtype.name}{what[self.kind]}"


@dataclasses.dataclass(frozen=True)
class ObsSpec:
    """The leaves of an observation space; ``nested``: observations are dicts of leaves."""

    leaves: tuple[Leaf, ...]
    nested: bool
    skipped: tuple[str, ...] = ()  # Text leaves left out

    @classmethod
    def of(cls, space: Any) -> ObsSpec:
        from gymnasium import spaces

        leaves: list[Leaf] = []
        skipped: list[str] = []
        nested = isinstance(space, (spaces.Dict, spaces.Tuple))
        _walk(space, (), "obs", leaves, skipped)
        if not leaves:
            raise DojoError(f"Observation space {space} has nothing kerasdojo can encode (only Text leaves)")
        names = [leaf.name for leaf in leaves]
        if len(set(names)) != len(names):
            raise DojoError(f"Observation space {space} has leaves with the same name: {', '.join(names)}")
        return cls(tuple(leaves), nested, tuple(skipped))

    @classmethod
    def box(cls, shape: tuple[int, ...], dtype: Any = np.float32) -> ObsSpec:
        """One Box leaf (the TensorFlow-native envs, and tests)."""
        return cls((Leaf("obs", (), "box", tuple(shape), np.dtype(dtype)),), False)

    # ------------------------------------------------------------------ one leaf
    @property
    def shape(self) -> tuple[int, ...]:
        """The shape of a plain (not nested) observation."""
        return self._single().shape

    @property
    def dtype(self) -> np.dtype:
        """The dtype of a plain (not nested) observation."""
        return self._single().dtype

    def _single(self) -> Leaf:
        if self.nested:
            raise TypeError("a nested observation has no single shape; use its leaves")
        return self.leaves[0]

    # ------------------------------------------------------------------ arrays
    def encode(self, raw: Any) -> Obs:
        """A batch of raw observations (as a vector env returns them), encoded."""
        if not self.nested:
            return self.leaves[0].encode(raw)
        return {leaf.name: leaf.encode(leaf.raw(raw)) for leaf in self.leaves}

    def zeros(self, lead: tuple[int, ...]) -> Obs:
        """Zero observations with leading axes ``lead``."""
        arrays = {leaf.name: np.zeros((*lead, *leaf.shape), leaf.dtype) for leaf in self.leaves}
        return arrays if self.nested else arrays["obs"]

    def nbytes(self) -> int:
        """Bytes one encoded observation takes, every leaf counted."""
        return sum(int(np.prod(leaf.shape)) * leaf.dtype.itemsize for leaf in self.leaves)

    def size(self) -> int:
        """Numbers in one encoded observation, every leaf counted (the width when flattened)."""
        return sum(int(np.prod(leaf.shape)) for leaf in self.leaves)

    def encoded_space(self) -> Any:
        """The Gymnasium space of one encoded observation."""
        from gymnasium import spaces

        def box(leaf: Leaf) -> Any:
            low, high = (0, 255) if leaf.dtype == np.uint8 else (-np.inf, np.inf)
            return spaces.Box(low, high, leaf.shape, leaf.dtype)

        boxes = {leaf.name: box(leaf) for leaf in self.leaves}
        return spaces.Dict(boxes) if self.nested else boxes["obs"]

    def describe(self) -> str:
        return "; ".join(leaf.describe() for leaf in self.leaves)

    def notes(self) -> list[str]:
        """Lines to print at start: the leaves left out."""
        if not self.skipped:
            return []
        return [f"observation leaves left out (Text, which kerasdojo does not encode): {', '.join(self.skipped)}"]


def _walk(space: Any, path: tuple[Any, ...], name: str, leaves: list[Leaf], skipped: list[str]) -> None:
    from gymnasium import spaces

    def child(key: Any, label: str) -> tuple[tuple[Any, ...], str]:
        return (*path, key), (label if not path else f"{name}.{label}")

    if isinstance(space, spaces.Dict):
        for key, sub in space.spaces.items():
            _walk(sub, *child(key, str(key)), leaves, skipped)
    elif isinstance(space, spaces.Tuple):
        for i, sub in enumerate(space.spaces):
            _walk(sub, *child(i, f"obs_{i}"), leaves, skipped)
    elif isinstance(space, spaces.Box):
        dtype = np.dtype(np.uint8 if space.dtype == np.uint8 else np.float32)
        leaves.append(Leaf(name, path, "box", tuple(int(d) for d in space.shape), dtype))
    elif isinstance(space, spaces.Discrete):
        n = int(space.n)
        leaves.append(Leaf(name, path, "discrete", (n,), np.dtype(np.float32), (n,), (int(space.start),)))
    elif isinstance(space, spaces.MultiDiscrete):
        nvec = tuple(int(n) for n in np.asarray(space.nvec).reshape(-1))
        starts = tuple(int(s) for s in np.asarray(space.start).reshape(-1))
        leaves.append(Leaf(name, path, "multi_discrete", (sum(nvec),), np.dtype(np.float32), nvec, starts))
    elif isinstance(space, spaces.MultiBinary):
        shape = tuple(int(d) for d in np.atleast_1d(space.n))
        leaves.append(Leaf(name, path, "multi_binary", shape, np.dtype(np.float32)))
    elif isinstance(space, spaces.Text) or _is_text(space):
        skipped.append(name)
    else:
        where = f"its leaf {name!r} is" if path else "it is"
        raise DojoError(
            f"kerasdojo cannot encode this observation space: {where} {type(space).__name__} ({space})",
            hint="kerasdojo encodes Box, Discrete, MultiDiscrete, MultiBinary, and Dict/Tuple of them; "
            "wrap the env to turn that leaf into one of these",
        )


def _is_text(space: Any) -> bool:
    """A space of strings that is not a ``Text`` (MiniGrid's ``MissionSpace``)."""
    try:
        dtype = getattr(space, "dtype", None)
        return (dtype is None or np.dtype(dtype).kind in "USO") and isinstance(space.sample(), str)
    except Exception:
        return False


# --------------------------------------------------------------------------- trees (an array or a dict of arrays)


def tree_map(fn: Callable[..., Any], obs: Obs, *rest: Obs) -> Obs:
    """``fn`` applied to each leaf array (to matching leaves of ``rest`` too)."""
    if isinstance(obs, dict):
        return {k: fn(v, *(r[k] for r in rest)) for k, v in obs.items()}
    return fn(obs, *rest)


def first(obs: Obs) -> Any:
    """The first leaf array (for batch sizes and leading axes)."""
    return next(iter(obs.values())) if isinstance(obs, dict) else obs


def batch_size(obs: Obs) -> int:
    return len(first(obs))


def assign(dest: Obs, index: Any, value: Obs) -> None:
    """``dest[index] = value`` leaf by leaf."""
    if isinstance(dest, dict):
        for k, v in dest.items():
            v[index] = value[k]
    else:
        dest[index] = value


def arrays(prefix: str, obs: Obs) -> dict[str, np.ndarray]:
    """Named arrays for a checkpoint: ``prefix`` for an array, ``prefix/leaf`` for each leaf of a dict."""
    if isinstance(obs, dict):
        return {f"{prefix}/{k}": v for k, v in obs.items()}
    return {prefix: obs}


def load(prefix: str, stored: dict[str, np.ndarray], like: Obs) -> Obs:
    """The inverse of :func:`arrays` for observations shaped like ``like`` (a KeyError when one is missing)."""
    if isinstance(like, dict):
        return {k: stored[f"{prefix}/{k}"] for k in like}
    return stored[prefix]
