"""Counter-based random streams, one per seed, for programs that train many seeds at once.

Draw ``j`` of a seed is a hash of the seed, the stream's salt and ``j``, not a shared
generator's next numbers, so what a seed draws does not depend on which other seeds share
its program (:mod:`kerasdojo.agents.seeds`)."""

from __future__ import annotations

from typing import Any

import numpy as np

from kerasdojo import backend

_GOLDEN, _M1, _M2 = 0x9E3779B9, 0x7FEB352D, 0x846CA68B


def _mix(x: Any) -> Any:
    """A 32-bit integer hash (lowbias32, C. Wellons) of uint32 tensors."""
    tf = backend.tf()
    x = tf.bitwise.bitwise_xor(x, tf.bitwise.right_shift(x, 16)) * tf.constant(_M1, tf.uint32)
    x = tf.bitwise.bitwise_xor(x, tf.bitwise.right_shift(x, 15)) * tf.constant(_M2, tf.uint32)
    return tf.bitwise.bitwise_xor(x, tf.bitwise.right_shift(x, 16))


def _mix_int(x: int) -> int:
    """:func:`_mix` of a Python int (the streams' keys)."""
    x &= 0xFFFFFFFF
    x = ((x ^ (x >> 16)) * _M1) & 0xFFFFFFFF
    x = ((x ^ (x >> 15)) * _M2) & 0xFFFFFFFF
    return x ^ (x >> 16)


class Streams:
    """One counter-based random stream per seed. Every draw takes ``size`` numbers per seed:
    number ``i`` of seed ``s`` at draw ``j`` is a hash of (the seed and ``salt``, ``j``, ``i``).
    The draw counter of each seed is a variable (saved in checkpoints)."""

    def __init__(self, seeds: list[int], salt: int) -> None:
        tf = backend.tf()
        keys = [_mix_int(_mix_int(seed * _GOLDEN + salt) + salt) for seed in seeds]
        self.keys = tf.constant(np.array(keys, np.uint32))
        self.counter = tf.Variable(tf.zeros([len(seeds)], tf.int32), trainable=False)

    def bits(self, size: int) -> Any:
        """``(seeds, size)`` uint32 random bits; advances every seed's counter by one."""
        tf = backend.tf()
        draw = tf.cast(self.counter.read_value(), tf.uint32)
        self.counter.assign_add(tf.ones_like(self.counter))
        base = _mix(tf.bitwise.bitwise_xor(self.keys, _mix(draw * tf.constant(_GOLDEN, tf.uint32))))
        index = tf.cast(tf.range(size), tf.uint32) + tf.constant(0x632BE59B, tf.uint32)
        return _mix(tf.bitwise.bitwise_xor(_mix(index)[None, :], base[:, None]))

    def uniform(self, shape: list[int], dtype: Any = "float32") -> Any:
        """``(seeds, *shape)`` uniform numbers in (0, 1) (24 random bits each). The top one,
        ``(2^24 - 0.5) / 2^24``, rounds to 1.0 in float32: it is kept at the largest float32
        below 1 (1.0 made an inverse normal CDF infinite and a SAC seed NaN)."""
        tf = backend.tf()
        bits = self.bits(int(np.prod(shape)))
        u = (tf.cast(tf.bitwise.right_shift(bits, 8), tf.float32) + 0.5) * (2.0**-24)
        u = tf.minimum(u, np.float32(1.0 - 2.0**-24))
        return tf.cast(tf.reshape(u, [-1, *shape]), dtype)

    def integers(self, shape: list[int], maxval: Any) -> Any:
        """``(seeds, *shape)`` int32 numbers uniform in [0, maxval) (a count below 2^31; the
        modulo's bias is below maxval / 2^32)."""
        tf = backend.tf()
        bits = self.bits(int(np.prod(shape))) % tf.cast(maxval, tf.uint32)
        return tf.reshape(tf.cast(bits, tf.int32), [-1, *shape])


class SeedDraws:
    """:class:`Streams` as the ``tf_rng`` an action distribution samples with
    (:meth:`~kerasdojo.agents.distributions.Categorical.tf_sample`): ``uniform(shape)`` and
    ``normal(shape)`` of a shape whose first axis is the seeds."""

    def __init__(self, streams: Streams) -> None:
        self.streams = streams

    def uniform(self, shape: Any, minval: float = 0.0, maxval: float = 1.0, dtype: Any = "float32") -> Any:
        tf = backend.tf()
        static = [int(d) for d in tf.get_static_value(shape)[1:]]
        return minval + (maxval - minval) * self.streams.uniform(static, dtype)

    def normal(self, shape: Any) -> Any:
        """Standard normal float32 numbers, one uniform each through the inverse normal CDF
        (``sqrt(2) erfinv(2u - 1)``; ``u`` in (0, 1) keeps them within about 5.3)."""
        tf = backend.tf()
        return np.sqrt(2.0).astype(np.float32) * tf.math.erfinv(2.0 * self.uniform(shape) - 1.0)


class RowStreams:
    """:class:`Streams` seen as the ``rng`` of a native env whose rows are ``rows`` envs per seed,
    seed after seed: what :meth:`kerasdojo.envs.native.NativeEnv.initial` draws from."""

    def __init__(self, streams: Streams, rows: int) -> None:
        self.streams, self.rows = streams, rows

    def uniform(self, shape: Any, dtype: Any = "float32") -> Any:
        tf = backend.tf()
        tail = [int(d) for d in shape[1:]]
        u = self.streams.uniform([self.rows, *tail], dtype)
        return tf.reshape(u, [-1, *tail])


__all__ = ["RowStreams", "SeedDraws", "Streams"]
