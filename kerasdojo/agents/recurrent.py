"""LSTM layers for recurrent policies: Keras's own ``LSTMCell`` weights, run three ways.

* :func:`tf_sequence`, inside compiled updates: a stack of cells over a whole sequence
  (time-major), the input projection of each layer as one matrix product over every step
  and a ``tf.scan`` for the recurrence;
* :class:`NumpyLSTM`, for acting on small networks: one step per call on NumPy copies of
  the weights (a TensorFlow call costs more than this arithmetic);
* :func:`functional_step`, in the ``policy.keras`` a user keeps: the cells themselves on
  Keras tensors, so plain Keras loads and runs it.

A state is one array per batch row, shaped ``(2 * n_layers, hidden)``: h and c of each
layer in turn. Each step first zeroes the state of the rows where an episode starts,
so the same ``starts`` flags reproduce acting exactly in the update.
The gates follow Keras's LSTMCell: ``z = x W + h U + b`` split into input, forget, cell and
output parts, sigmoid gates, tanh activations.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from kerasdojo import backend, networks
from kerasdojo.encoders import encoded_inputs


def lstm_cells(n_layers: int, hidden: int, input_dim: int, prefix: str) -> list[Any]:
    """``n_layers`` built Keras LSTM cells named ``{prefix}lstm_{i}``."""
    keras = backend.keras()
    cells = []
    for i in range(n_layers):
        cell = keras.layers.LSTMCell(hidden, name=f"{prefix}lstm_{i}")
        cell.build((None, input_dim if i == 0 else hidden))
        cells.append(cell)
    return cells


def tf_sequence(stacks: list[list[Any]], x: Any, starts: Any, states: list[Any]) -> tuple[list[Any], list[Any]]:
    """Stacks of cells over one input sequence, inside compiled code: each stack's top outputs
    (T, B, H) and final state. (Run one after the other: batching an actor's and a critic's
    stack into one recurrence with a leading weight axis measured slower under XLA on a CPU.)

    ``x``: (T, B, F) float32, ``starts``: (T, B) float32 (1 where an episode starts, zeroing
    the state before that step), ``states``: one (B, 2 * layers, H) per stack."""
    tf = backend.tf()
    keep = 1.0 - starts[:, :, None]  # (T, B, 1)
    outs, finals = [], []
    for cells, state in zip(stacks, states, strict=True):
        h_seq, final = x, []
        for i, cell in enumerate(cells):
            weights = [tf.convert_to_tensor(getattr(cell, w)) for w in WEIGHTS]
            h_seq, h, c = _layer(h_seq, keep, state[:, 2 * i], state[:, 2 * i + 1], *weights)
            final += [h, c]
        outs.append(h_seq)
        finals.append(tf.stack(final, axis=1))
    return outs, finals


WEIGHTS = ("kernel", "recurrent_kernel", "bias")


def _loop(fn: Any, elems: tuple[Any, ...], init: tuple[Any, ...], reverse: bool = False) -> tuple[Any, ...]:
    """Every step's carry, stacked: ``tf.scan``, a loop XLA compiles once (unrolling the steps
    measured slower and took minutes to compile)."""
    return backend.tf().scan(fn, elems, initializer=init, reverse=reverse)


def _layer(x: Any, keep: Any, h0: Any, c0: Any, kernel: Any, kernel_h: Any, bias: Any) -> tuple[Any, Any, Any]:
    """One LSTM layer over a sequence: ``x`` (T, B, F); outputs (T, B, H), final h and c. Its gradient is written out
    (backpropagation through time): the weights' gradients are then one matrix product over
    every step, not one small one per step as automatic differentiation of the loop gives."""
    tf = backend.tf()

    @tf.custom_gradient
    def layer(x: Any, h0: Any, c0: Any, kernel: Any, kernel_h: Any, bias: Any) -> Any:
        z_in = tf.tensordot(x, kernel, axes=1) + bias  # (T, B, 4H): every step's input at once

        def step(carry: tuple[Any, ...], inp: tuple[Any, Any]) -> tuple[Any, ...]:
            h, c = carry[0] * inp[1], carry[1] * inp[1]  # zeroed where an episode starts
            gate_i, gate_f, cand, gate_o = tf.split(inp[0] + tf.matmul(h, kernel_h), 4, axis=-1)
            i, f, g, o = tf.sigmoid(gate_i), tf.sigmoid(gate_f), tf.tanh(cand), tf.sigmoid(gate_o)
            c_new = f * c + i * g
            return o * tf.tanh(c_new), c_new, h, c, i, f, g, o

        zeros = tf.zeros_like(h0)
        hs, cs, h_prev, c_prev, i, f, g, o = _loop(step, (z_in, keep), (h0, c0, *[zeros] * 6))

        def grad(d_hs: Any, d_h: Any, d_c: Any) -> tuple[Any, ...]:
            d_h = tf.zeros_like(h0) if d_h is None else d_h  # (the final state's gradients enter at the end)
            d_c = tf.zeros_like(c0) if d_c is None else d_c
            tanh_c = tf.tanh(cs)

            def back(carry: tuple[Any, ...], inp: tuple[Any, ...]) -> tuple[Any, ...]:
                dh_next, dc_next = carry[0], carry[1]
                dh, tc, i, f, g, o, cp, k = inp
                dh = dh + dh_next
                dc = dc_next + dh * o * (1.0 - tc * tc)
                d_i, d_f = dc * g * i * (1.0 - i), dc * cp * f * (1.0 - f)
                dz = tf.concat([d_i, d_f, dc * i * (1.0 - g * g), dh * tc * o * (1.0 - o)], axis=-1)
                return tf.matmul(dz, kernel_h, transpose_b=True) * k, dc * f * k, dz

            init = (d_h, d_c, tf.zeros_like(z_in[0]))
            dh0, dc0, dz = _loop(back, (d_hs, tanh_c, i, f, g, o, c_prev, keep), init, reverse=True)
            return (
                tf.tensordot(dz, kernel, axes=[[2], [1]]),
                dh0[0],
                dc0[0],
                tf.tensordot(x, dz, axes=[[0, 1], [0, 1]]),
                tf.tensordot(h_prev, dz, axes=[[0, 1], [0, 1]]),
                tf.reduce_sum(dz, axis=[0, 1]),
            )

        return (hs, hs[-1], cs[-1]), grad

    return layer(x, h0, c0, kernel, kernel_h, bias)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


class NumpyLSTM:
    """NumPy copies of a stack of cells, one step per call; :meth:`refresh` after the weights change."""

    def __init__(self, cells: list[Any]) -> None:
        self.cells = cells
        self.params: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        self.refresh()

    def refresh(self) -> None:
        self.params = [
            tuple(np.asarray(v.numpy(), np.float32) for v in (c.kernel, c.recurrent_kernel, c.bias))  # type: ignore[misc]
            for c in self.cells
        ]

    def __call__(self, x: np.ndarray, state: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The top layer's output and the new state for one step from ``state`` (already reset)."""
        new = np.empty_like(state)
        for i, (kernel, kernel_h, bias) in enumerate(self.params):
            h, c = state[:, 2 * i], state[:, 2 * i + 1]
            gate_i, gate_f, cand, gate_o = np.split(x @ kernel + h @ kernel_h + bias, 4, axis=-1)
            c = _sigmoid(gate_f) * c + _sigmoid(gate_i) * np.tanh(cand)
            x = _sigmoid(gate_o) * np.tanh(c)
            new[:, 2 * i], new[:, 2 * i + 1] = x, c
        return x, new


def functional_step(cells: list[Any], x: Any, state: Any) -> tuple[Any, Any]:
    """One step of the cells on Keras tensors (a functional model): the top output and the new
    state, ``state`` shaped (batch, 2 * len(cells), H)."""
    keras = backend.keras()
    finals = []
    for i, cell in enumerate(cells):
        x, (h, c) = cell(x, [state[:, 2 * i], state[:, 2 * i + 1]])
        finals += [h, c]
    return x, keras.ops.stack(finals, axis=1)


def encoder(spec: Any, activation: str) -> tuple[Any, Any]:
    """The observation's inputs and the encoder before the LSTM: a flatten, the Nature (or small)
    CNN of 512 features for images, or one encoder per leaf of a nested observation."""
    keras = backend.keras()
    if spec.nested:
        inputs, features = encoded_inputs(spec)
        return inputs, keras.Model(inputs, features, name="encoder")
    shape, dtype = tuple(spec.shape), spec.dtype
    inp = keras.Input(shape, dtype=networks.input_dtype(shape, dtype), name="obs")
    if networks.is_image_space(shape, dtype):
        layers = networks.torso_layers(shape, dtype, (512,), activation)
    else:
        layers = [keras.layers.Flatten(name="flatten")]
    return inp, keras.Model(inp, networks.chain(inp, layers), name="encoder")


def np_features(spec: Any, obs: Any) -> np.ndarray:
    """:func:`encoder` of flat observations in NumPy: leaves as float32 rows, concatenated in order."""
    if not spec.nested:
        return np.asarray(obs, np.float32).reshape(len(obs), -1)
    leaves = [np.asarray(obs[leaf.name], np.float32) for leaf in spec.leaves]
    return np.concatenate([x.reshape(len(x), -1) for x in leaves], axis=1)


def to_sequences(x: Any, length: int) -> Any:
    """A rollout array (n_steps, n_envs, ...) cut into sequences of ``length`` steps:
    (length, sequences, ...), sequence ``k * n_envs + e`` being steps ``k * length ...`` of env ``e``."""
    tf = backend.tf()
    per_env, n_envs, rest = x.shape[0] // length, x.shape[1], list(x.shape[2:])
    x = tf.reshape(x, [per_env, length, n_envs, *rest])
    x = tf.transpose(x, [1, 0, 2, *range(3, 3 + len(rest))])
    return tf.reshape(x, [length, per_env * n_envs, *rest])
