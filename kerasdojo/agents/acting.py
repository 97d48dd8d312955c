"""The acting engine: a batch of observations in, NumPy outputs of a set of Keras models out.

One call per vector step, so its cost is paid at every env step: NumPy copies of
Dense-only networks where they serve (a TensorFlow call has a fixed overhead that
a small MLP's arithmetic does not cover), else one compiled TensorFlow call for all
models. Timings of both paths are in ``benchmarks/RESULTS.md``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from types import SimpleNamespace
from typing import Any

import numpy as np

from kerasdojo import backend
from kerasdojo.encoders import flat_heads


class Forward:
    """Run a set of Keras models on a batch of observations and return NumPy outputs.

    Uses :class:`NumpyForward` copies when every model is Dense-only and
    ``fast`` is set, else one compiled TensorFlow call for all models. Call
    :meth:`refresh` after the weights change.
    """

    def __init__(
        self, models: Sequence[Any], fast: bool = True, jit: bool = False, source: Sequence[Any] | None = None
    ) -> None:
        """``jit``: compile the TensorFlow call with XLA (faster for CNNs on a CPU).
        ``source``: the trained models, when ``models`` are float32 twins of them (same layers,
        another dtype policy) to act with; :meth:`refresh` copies their weights over (XLA's CPU
        bfloat16 convolutions are much slower than its float32 ones on one stack of frames)."""
        self.models = list(models)
        self._copy = None
        if source is not None:
            tf = backend.tf()
            pairs = [
                (d, s)
                for dm, sm in zip(self.models, source, strict=True)
                for d, s in zip(dm.weights, sm.weights, strict=True)
            ]
            for d, s in pairs:
                if tuple(d.shape) != tuple(s.shape):
                    raise ValueError(f"Forward: twin weight {d.path} {d.shape} != {s.path} {s.shape}")

            @tf.function
            def copy() -> None:
                for d, s in pairs:
                    d.assign(s.value)

            self._copy = copy
            copy()
        copies = [NumpyForward.of(m) for m in self.models] if fast else [None]
        if fast and all(c is not None for c in copies):
            self._np: list[NumpyForward] | None = copies  # type: ignore[assignment]
            self._variables = [v for c in copies for v in c.variables()]  # type: ignore[union-attr]
            self._read: Callable[[], Iterable[np.ndarray]] | None = None  # traced on the first refresh
        else:
            self._np = None
            tf = backend.tf()
            models_ = self.models

            @tf.function(reduce_retracing=True, jit_compile=jit)
            def call(obs: Any) -> list[Any]:
                outs: list[Any] = []
                for m in models_:  # a model with several outputs (a shared torso) adds them all
                    o = m(obs, training=False)
                    outs.extend(o if isinstance(o, (list, tuple)) else [o])
                return outs

            self._tf = call

    @property
    def numpy(self) -> bool:
        """Whether acting runs on NumPy copies of the weights (which a running update leaves alone)."""
        return self._np is not None

    def tensors(self) -> list[Any]:
        """Inside compiled code: the weights the NumPy copies hold, for :meth:`refresh` (an update
        that returns them saves the call that reads them); none when acting runs in TensorFlow,
        or on a float32 twin (whose weights :meth:`refresh` copies first)."""
        if self._np is None or self._copy is not None:
            return []
        tf = backend.tf()
        return [tf.convert_to_tensor(v.value) for v in self._variables]

    def refresh(self, values: Sequence[Any] | None = None) -> None:
        """After the weights changed; ``values``: :meth:`tensors` computed after the change (empty
        or None: read them here)."""
        if self._copy is not None:
            self._copy()
        if self._np is None:
            return
        if values:
            if len(values) != len(self._variables):
                raise ValueError(f"Forward.refresh: {len(values)} values for {len(self._variables)} weights")
            arrays: Iterator[Any] = (np.asarray(v) for v in values)
        else:
            if self._read is None:
                self._read = _reader(self._variables)
            arrays = iter(self._read())
        for copy in self._np:
            copy.refresh(arrays)

    def __call__(self, obs: Any) -> list[np.ndarray]:
        if self._np is not None:
            outs: list[np.ndarray] = []
            for f in self._np:  # a copy of a model with several outputs (a shared encoder) adds them all
                o = f(obs)
                outs.extend(o if isinstance(o, list) else [o])
            return outs
        return [o.numpy() for o in self._tf(obs)]


def _reader(variables: list[Any]) -> Callable[[], Iterable[np.ndarray]]:
    """The values of ``variables`` as NumPy arrays, read in one TensorFlow call: about a tenth of
    the time of one eager read per variable, which an A2C update (one per 40 env steps) paid
    twelve times (benchmarks/RESULTS.md)."""
    tf = backend.tf()
    read = tf.function(lambda: [tf.convert_to_tensor(v.value) for v in variables]).get_concrete_function()

    def values() -> Iterable[np.ndarray]:
        return (t.numpy() for t in read())

    return values


# The activations a NumPy copy can compute, by Keras's names.
_NP_ACT: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "linear": lambda x: x,
    "relu": lambda x: np.maximum(x, 0.0),
    "tanh": np.tanh,
    "sigmoid": lambda x: 1.0 / (1.0 + np.exp(-x)),
    "elu": lambda x: np.where(x > 0, x, np.expm1(np.minimum(x, 0.0))),
}


class NumpyForward:
    """A NumPy copy of a Sequential model made of Dense (and Flatten/Dropout) layers.

    Build with :meth:`of` (None when the model has other layers: then use a
    compiled TensorFlow call); call :meth:`refresh` after the weights change.
    """

    def __init__(self, model: Any, activations: list[str], flatten: bool = False) -> None:
        self.model = model
        self.flatten = flatten
        self.activations = [_NP_ACT[a] for a in activations]
        self.params: list[tuple[np.ndarray, np.ndarray | None]] = []
        self.refresh()

    @classmethod
    def of(cls, model: Any) -> Any:
        """A NumPy copy of ``model`` (a :class:`NestedNumpyForward` for a nested observation's model
        whose leaves are all flattened), or None when it has layers a copy cannot compute."""
        keras = backend.keras()
        plan = flat_heads(model)
        if plan is not None:
            return NestedNumpyForward.of(*plan)
        activations = []
        flatten = False
        for layer in model.layers:
            if isinstance(layer, keras.layers.Dense):
                name = getattr(layer.activation, "__name__", "")
                if name not in _NP_ACT:
                    return None
                activations.append(name)
            elif isinstance(layer, (keras.layers.Dropout, keras.layers.InputLayer)):
                continue
            elif isinstance(layer, keras.layers.Flatten):
                flatten = True
                continue
            else:
                return None
        return cls(model, activations, flatten)

    def variables(self) -> list[Any]:
        """The Dense layers' kernels and biases, in the order :meth:`refresh` takes their values."""
        keras = backend.keras()
        dense = [layer for layer in self.model.layers if isinstance(layer, keras.layers.Dense)]
        return [v for layer in dense for v in ([layer.kernel, layer.bias] if layer.use_bias else [layer.kernel])]

    def refresh(self, values: Iterator[np.ndarray] | None = None) -> None:
        """Copy the weights; ``values``: theirs in :meth:`variables`' order, read already."""
        keras = backend.keras()
        values = values if values is not None else (v.numpy() for v in self.variables())
        self.params = []
        for layer in self.model.layers:
            if isinstance(layer, keras.layers.Dense):
                kernel = np.asarray(next(values), np.float32)
                bias = np.asarray(next(values), np.float32) if layer.use_bias else None
                self.params.append((kernel, bias))

    def __call__(self, x: np.ndarray) -> np.ndarray:
        h = np.asarray(x, np.float32)
        if self.flatten:
            h = h.reshape(len(h), -1)
        for (kernel, bias), act in zip(self.params, self.activations, strict=True):
            h = h @ kernel
            if bias is not None:
                h += bias
            h = act(h)
        return h


class NestedNumpyForward:
    """A NumPy copy of a nested observation's model whose leaves are all flattened: the leaves,
    as float32 rows in their order, concatenated, then each output's Dense layers; returns the
    outputs' list (one array when there is one)."""

    def __init__(self, leaves: list[str], heads: list[NumpyForward]) -> None:
        self.leaves, self.heads = leaves, heads

    @classmethod
    def of(cls, leaves: list[str], heads: list[list[Any]]) -> NestedNumpyForward | None:
        copies = []
        for layers in heads:
            copy = NumpyForward.of(SimpleNamespace(layers=layers))  # the head's own layers and weights
            if copy is None:
                return None
            copies.append(copy)
        return cls(leaves, copies)

    def variables(self) -> list[Any]:
        return [v for head in self.heads for v in head.variables()]

    def refresh(self, values: Iterator[np.ndarray] | None = None) -> None:
        for head in self.heads:
            head.refresh(values)

    def __call__(self, obs: dict[str, np.ndarray]) -> Any:
        x = np.concatenate([np.asarray(obs[k], np.float32).reshape(len(obs[k]), -1) for k in self.leaves], axis=1)
        outs = [head(x) for head in self.heads]
        return outs if len(outs) > 1 else outs[0]
