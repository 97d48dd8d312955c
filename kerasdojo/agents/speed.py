"""Speed and precision policy: how an agent's TensorFlow code is compiled and in what math.

Whether a function is compiled with XLA (:func:`use_xla`), whether a CNN computes in
bfloat16 (:func:`cnn_precision`), and the one way every update runs k gradient steps
inside one compiled call (:func:`repeat`). The measurements behind each choice are in
``benchmarks/RESULTS.md``; the rules stay here.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from kerasdojo import backend

# Loops of at most this many static steps are unrolled in the graph: XLA on a CPU pays a
# fixed cost per while loop, more than one small gradient step (RESULTS.md, "k gradient steps").
UNROLL = 4


def compiled(fn: Callable[..., Any], jit: bool, autograph: bool = True) -> Any:
    """``tf.function`` with retracing kept down; XLA when ``jit``. ``autograph=False`` for code
    whose control flow is written with ``tf.while_loop``/``tf.cond`` already: tracing is then
    much shorter."""
    tf = backend.tf()
    return tf.function(fn, jit_compile=jit, reduce_retracing=True, autograph=autograph)


class Direct:
    """A ``tf.function`` called straight through the concrete function of its inputs' shapes
    and dtypes, skipping the dispatch that matches arguments to traces on every call (about
    0.4 ms of a 1 ms call on a 2-core CPU: RESULTS.md, "The off-policy update"). For a function
    called once per env step with inputs of fixed shapes; anything else it passes on unchanged
    (``experimental_get_tracing_count`` included)."""

    def __init__(self, fn: Any) -> None:
        self.fn = fn
        self._key: Any = None
        self._concrete: Any = None

    def __call__(self, *args: Any) -> Any:
        flat = backend.tf().nest.flatten(args)
        key = tuple((getattr(x, "shape", ()), getattr(x, "dtype", type(x))) for x in flat)
        if key != self._key:
            self._concrete, self._key = self.fn.get_concrete_function(*args), key
        return self._concrete(*args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.fn, name)


def repeat(
    k: Any,
    body: Callable[[Any, Any], Any],
    carry: Any,
    until: Callable[[Any], Any] | None = None,
) -> Any:
    """``carry = body(i, carry)`` for ``i`` in ``range(k)`` inside compiled code; the last carry.

    The one idiom for k gradient steps in a compiled call: unrolled in the graph when ``k`` is
    a Python int of at most :data:`UNROLL` steps and nothing stops the loop early, else one
    ``tf.while_loop`` (no autograph: tracing stays short). ``until(carry)``, a boolean tensor,
    ends the loop before the next step (PPO's approx-KL stop).
    """
    if isinstance(k, int) and k <= UNROLL and until is None:
        for i in range(k):
            carry = body(i, carry)
        return carry
    tf = backend.tf()

    def cond(i: Any, c: Any) -> Any:
        return i < k if until is None else (i < k) & ~until(c)

    return tf.while_loop(cond, lambda i, c: (i + 1, body(i, c)), (tf.constant(0), carry))[1]


def static_steps(batches: Any) -> Any:
    """The number of gradient steps in ``batches`` (leading axis): a Python int when the trace
    knows it, so :func:`repeat` can unroll short loops, else a tensor."""
    k = backend.tf().nest.flatten(batches)[0].shape[0]  # nested observations: the first leaf
    return int(k) if k is not None else backend.tf().shape(backend.tf().nest.flatten(batches)[0])[0]


PRECISIONS = ("auto", "float32", "mixed_bfloat16")


def resolve_precision(setting: str) -> tuple[str, str]:
    """The dtype policy of CNN torsos for a ``precision`` setting, and why: ``auto`` is
    ``mixed_bfloat16`` where the device does bfloat16 natively, else ``float32``."""
    if setting != "auto":
        return setting, "as set"
    native, why = backend.native_bfloat16()
    return ("mixed_bfloat16" if native else "float32"), why


def cnn_precision(setting: str, obs_shape: Sequence[int], obs_dtype: Any, notes: list[str]) -> str:
    """The dtype policy of an agent's CNN torso for its ``precision`` setting (float32 when the
    observations are not images); a line in ``notes`` says when it is mixed_bfloat16, and why.
    ``auto`` keeps float32 for the small CNN, whose casts cost more than its bfloat16 math saves."""
    from kerasdojo.networks import is_image_space, uses_nature_cnn

    if not is_image_space(obs_shape, obs_dtype) or (setting == "auto" and not uses_nature_cnn(obs_shape, obs_dtype)):
        return "float32"
    policy, why = resolve_precision(setting)
    if policy == "mixed_bfloat16":
        notes.append(
            f"CNN updates in mixed_bfloat16 (bfloat16 math, float32 weights; {why}); "
            "train with --set precision=float32 for float32 math"
        )
    return policy


def use_xla(jit_compile: bool, obs_shape: Sequence[int], obs_dtype: Any) -> bool:
    """``jit_compile``, except for CNNs where TensorFlow sees no GPU: XLA's CPU convolutions are
    far slower than oneDNN's."""
    from kerasdojo.networks import is_image_space

    if not jit_compile or not is_image_space(obs_shape, obs_dtype):
        return jit_compile
    return bool(backend.tf().config.list_physical_devices("GPU"))
