"""The rules algorithms of different families share, each written once: schedules,
target-network updates and the gradient-steps rule (the on-policy ones, GAE and advantage
normalisation, live with their family in :mod:`kerasdojo.agents.onpolicy`).

Each takes arrays or tensors and knows no agent. Where a rule runs both in NumPy
(the Gymnasium path) and inside a compiled TensorFlow graph (``--native``), its
TensorFlow version sits beside it, with the same arithmetic in the same order, so
both paths compute the same numbers.

Conventions for rollouts from Gymnasium 1.x vector envs (next-step autoreset):
``valid[t, i]`` is False for a call that ignored env ``i``'s action (one that only
reset it, or an Atari call that served with FIRE after a lost life): the one
episode-boundary mask, which every loss weighs its transitions by. On the step
that ends an episode the next observation is the true last one, so a *truncated*
episode bootstraps from ``V(o_{t+1})`` while a *terminated* one does not.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from kerasdojo import backend

# --------------------------------------------------------------------------- schedules


def linear(start: float, end: float, fraction: float, progress: float) -> float:
    """Linear from ``start`` to ``end`` over the first ``fraction`` of training, then ``end``.
    ``progress`` is the fraction of training done, in [0, 1] (DQN's epsilon)."""
    if fraction <= 0:
        return end
    return start + (end - start) * min(progress / fraction, 1.0)


def linear_tf(start: float, end: float, fraction: float, progress: Any) -> Any:
    """:func:`linear` on a float32 tensor ``progress``, inside compiled code."""
    tf = backend.tf()
    done = tf.minimum(progress / max(fraction, 1e-12), 1.0) if fraction > 0 else 1.0
    return start + (end - start) * done


def schedule(kind: str, value: float, progress: float) -> float:
    """``constant``: value; ``linear``: value decayed linearly to 0 at the end (RL Zoo's ``lin_``)."""
    return value if kind == "constant" else value * max(1.0 - progress, 0.0)


def schedule_tf(kind: str, value: float, progress: Any) -> Any:
    """:func:`schedule` on a float32 tensor ``progress``, inside compiled code."""
    tf = backend.tf()
    return value * (tf.maximum(1.0 - progress, 0.0) if kind == "linear" else 1.0)


# --------------------------------------------------------------------------- off-policy


def gradient_steps(setting: int, collected: int) -> int:
    """Gradient steps of one update: ``setting``, or with -1 as many as env steps collected (SB3)."""
    return setting if setting >= 0 else collected


def updates_start(step: int, taken: int, learning_starts: int, n_grad: Any) -> Any:
    """Whether a call that collected ``taken`` env steps from ``step`` on updates: past
    ``learning_starts`` and with gradient steps to take (ints, or tensors inside compiled code)."""
    return (step + taken > learning_starts) & (n_grad > 0)


def target_interval(target_update_interval: int, n_envs: int) -> int:
    """Vector steps between target updates for an interval in env steps (SB3's DQN: at least 1)."""
    return max(target_update_interval // n_envs, 1)


def due_updates(calls_before: Any, calls_after: Any, every: int) -> Any:
    """Target updates due between two counts of vector steps, one per ``every`` crossed."""
    return calls_after // every - calls_before // every


def polyak(targets: Any, sources: Any, tau: Any, where: Any = None) -> None:
    """``target <- tau * source + (1 - tau) * target`` for each pair of weights, inside compiled
    code; ``tau`` 1 copies. With ``where`` (a boolean tensor), only when it holds."""
    tf = backend.tf()
    for target, source in zip(targets, sources, strict=True):
        new = tau * source + (1.0 - tau) * target
        target.assign(new if where is None else tf.where(where, new, target))


def collapsed_tau(tau: float, times: Any) -> Any:
    """The ``tau`` of one update equal to ``times`` Polyak updates towards a source that did not
    change in between: ``1 - (1 - tau) ** times`` (1 for hard copies)."""
    return 1.0 - (1.0 - tau) ** times


# --------------------------------------------------------------------------- continuous actions
# Pure arithmetic: the same function serves NumPy arrays (the Gymnasium path) and tensors
# inside compiled code (``--native``), so both paths compute the same expression.


def scale_actions(actions: Any, low: Any, high: Any) -> Any:
    """Actions in [-1, 1] onto the Box bounds: ``low + (a + 1) * 0.5 * (high - low)``."""
    return low + (actions + 1.0) * 0.5 * (high - low)


def ou_step(x: Any, white: Any, theta: float, dt: float, sigma: float, sqrt: Callable[[float], Any] = math.sqrt) -> Any:
    """One Ornstein-Uhlenbeck step towards 0: ``x + theta * (0 - x) * dt + sigma * sqrt(dt) * white``.
    ``sqrt``: ``np.sqrt`` keeps the NumPy path's noise term in float64, as it always was."""
    return x - theta * x * dt + sigma * sqrt(dt) * white
