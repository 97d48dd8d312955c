"""Critics side by side: ``n`` MLPs of the same shape as one network with a leading member axis.

Each layer's kernel is ``(n, in, out)`` and its bias ``(n, out)``, so a layer of all the
critics is one batched matrix product (the first layer, whose input every member shares, one
product over ``n * out`` columns), as SBX does with ``nn.vmap``. A twin-critic update then
runs half the kernels it would with one Keras model per critic, and one Adam update per layer.

An :class:`Ensemble` is built from ``n`` ordinary Keras MLPs (Dense layers only), whose
weights it stacks: the members start from exactly the weights those models were drawn with.
Agent states saved with one model per critic (``net/q1/<i>``, ``net/q2/<i>`` and their
optimizer slots) load into it through :func:`stack_members`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from kerasdojo import backend


def _layer_class() -> Any:
    keras = backend.keras()

    class Ensemble(keras.layers.Layer):
        """``n`` Dense-only MLPs as one layer: ``(batch, in) -> (n, batch)`` (the last layer has one unit)."""

        def __init__(self, n: int, sizes: list[int], activation: str, name: str) -> None:
            super().__init__(name=name)
            self.n, self.sizes = n, list(sizes)
            self.activation = keras.activations.get(activation)
            self.kernels, self.biases = [], []
            for i, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
                kernel = self.add_weight(shape=(n, fan_in, fan_out), initializer="zeros", name=f"kernel_{i}")
                self.kernels.append(kernel)
                self.biases.append(self.add_weight(shape=(n, fan_out), initializer="zeros", name=f"bias_{i}"))
            self.built = True

        def call(self, x: Any, members: int | None = None) -> Any:
            """The members' outputs for ``x`` (batch, in), shape (n, batch); ``members=m``: the first m only."""
            tf = backend.tf()
            m = self.n if members is None else members
            kernels = [k if m == self.n else k[:m] for k in self.kernels]
            biases = [b if m == self.n else b[:m] for b in self.biases]
            # First layer: the input is shared by every member; then one batched product per layer.
            h = tf.einsum("bi,nio->nbo", x, kernels[0]) + biases[0][:, None, :]
            for k, b in zip(kernels[1:], biases[1:], strict=True):
                h = tf.matmul(self.activation(h), k) + b[:, None, :]
            return h[:, :, 0]

    return Ensemble


_CLASS: Any = None


def ensemble(members: list[Any], activation: str, name: str) -> Any:
    """One :class:`Ensemble` holding ``members`` (Keras models of Dense layers of the same
    sizes, one output unit), starting from their weights."""
    global _CLASS
    if _CLASS is None:
        _CLASS = _layer_class()
    dense = [[layer for layer in m.layers if layer.weights] for m in members]
    sizes = [int(dense[0][0].kernel.shape[0])] + [int(layer.units) for layer in dense[0]]
    net = _CLASS(len(members), sizes, activation, name)
    net.set_weights(stack_members([m.get_weights() for m in members]))
    return net


def stack_members(weights: list[list[np.ndarray]]) -> list[np.ndarray]:
    """The ensemble's weights from each member's list of weights (kernel, bias per layer)."""
    return [np.stack(ws) for ws in zip(*weights, strict=True)]


def upgrade_state(arrays: dict[str, np.ndarray], n: int, network: str, optimizer: str) -> None:
    """Rewrite, in place, an agent state saved with one Keras model per critic (``net/q1/<i>``
    .. ``net/q<n>/<i>``, their ``_target`` copies, and the Adam slots of ``opt/<optimizer>/<j>``
    over all of them, member after member) to the layout of an ensemble named ``network``
    (``network`` and ``network + "_target"``). Left alone when it holds no such critics."""
    if f"net/{network}/0" in arrays or "net/q1/0" not in arrays:
        return
    count = sum(1 for k in arrays if k.startswith("net/q1/"))
    for old, new in (("q{}", network), ("q{}_target", f"{network}_target")):
        for i in range(count):
            arrays[f"net/{new}/{i}"] = np.stack([arrays.pop(f"net/{old.format(c + 1)}/{i}") for c in range(n)])
    slots = sorted(int(k.rsplit("/", 1)[1]) for k in arrays if k.startswith(f"opt/{optimizer}/"))
    prefix = len(slots) - 2 * n * count  # the optimizer's own counters (iterations, learning rate)
    if prefix < 0:
        return  # not an Adam over these critics: the shape check reports it
    old = {j: arrays.pop(f"opt/{optimizer}/{j}") for j in slots}
    for j in range(prefix):
        arrays[f"opt/{optimizer}/{j}"] = old[j]
    for i in range(count):  # Keras interleaves each variable's slots: momentum, velocity
        for s in range(2):
            members = [old[prefix + 2 * (c * count + i) + s] for c in range(n)]
            arrays[f"opt/{optimizer}/{prefix + 2 * i + s}"] = np.stack(members)
