"""A replay buffer held in TensorFlow variables, for the trainers compiled end to end (``--native``).

Stores and samples inside the compiled call; checkpoints still hold the agent's NumPy
:class:`~kerasdojo.agents.buffers.ReplayBuffer`, which :meth:`TFReplay.pull` fills from the
variables before a save and :meth:`TFReplay.push` copies back after a load.
"""

from __future__ import annotations

from typing import Any

from kerasdojo import backend

KEYS = ("obs", "actions", "rewards", "next_obs", "terminated")


class TFReplay:
    """A ring buffer of ``capacity`` transitions: flat observations of ``obs_dim`` floats and
    actions shaped ``action_shape`` (``()`` for DQN's int32 actions)."""

    def __init__(self, capacity: int, obs_dim: int, action_shape: tuple[int, ...], action_dtype: Any) -> None:
        tf = backend.tf()
        self.capacity = capacity

        def var(shape: list[int], dtype: Any = tf.float32) -> Any:
            return tf.Variable(tf.zeros(shape, dtype), trainable=False)

        self.vars = {
            "obs": var([capacity, obs_dim]),
            "actions": var([capacity, *action_shape], action_dtype),
            "rewards": var([capacity]),
            "next_obs": var([capacity, obs_dim]),
            "terminated": var([capacity]),
        }
        self.pos = tf.Variable(0, trainable=False)
        self.size = tf.Variable(0, trainable=False)

    # ------------------------------------------------------------------ inside the compiled call
    def store(self, columns: dict[str, Any]) -> None:
        """Add ``n`` transitions (each column shaped (n, ...)); more than the buffer holds: the
        last ``capacity`` stay."""
        tf = backend.tf()
        n = int(columns["rewards"].shape[0])
        cap = self.capacity
        rows = (self.pos + tf.range(n)) % cap
        for key in KEYS:
            data = columns[key]
            if n > cap:
                self.vars[key].scatter_nd_update(rows[-cap:, None], data[-cap:])
            else:
                self.vars[key].scatter_nd_update(rows[:, None], data)
        self.pos.assign((self.pos + n) % cap)
        self.size.assign(tf.minimum(self.size + n, cap))

    def sample(self, rng: Any, shape: list[int]) -> list[Any]:
        """Transitions at uniformly drawn rows, shaped ``shape`` + each column's own, in
        :data:`KEYS` order."""
        tf = backend.tf()
        idx = rng.uniform(shape, maxval=self.size, dtype=tf.int32)
        return [tf.gather(self.vars[k], idx) for k in KEYS]

    # ------------------------------------------------------------------ persistence
    def pull(self, buf: Any) -> None:
        """Copy the variables into the NumPy buffer ``buf`` (what checkpoints hold)."""
        for key in KEYS:
            field = getattr(buf, key)
            field[:] = self.vars[key].numpy().reshape(field.shape)
        buf.pos, buf.size = int(self.pos.numpy()), int(self.size.numpy())

    def push(self, buf: Any) -> None:
        """Copy a loaded NumPy buffer ``buf`` (a resumed checkpoint) into the variables."""
        if len(buf) == 0:
            return
        for key in KEYS:
            var = self.vars[key]
            var.assign(getattr(buf, key).reshape(var.shape).astype(var.dtype.as_numpy_dtype))
        self.pos.assign(buf.pos)
        self.size.assign(len(buf))
