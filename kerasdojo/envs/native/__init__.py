"""TensorFlow-native twins of Gymnasium's classic-control environments (batched, XLA-friendly).

``kerasdojo train ENV --native`` trains on these inside one compiled program; every
evaluation still runs on Gymnasium's own environment. :func:`step` adds what
Gymnasium's ``TimeLimit`` wrapper and a vector env's autoreset add: truncation at
``max_episode_steps`` (reported apart from termination, and like ``TimeLimit``
even on a step that also terminates) and a reset on the *same* step, returning
the last observation of the finished episode beside the first of the next one.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from kerasdojo.envs.native.classic import ENVS, NativeEnv
from kerasdojo.errors import DojoError

__all__ = ["ENVS", "NativeEnv", "Step", "make", "native_ids", "step"]


def native_ids() -> list[str]:
    return list(ENVS)


def make(env_id: str) -> NativeEnv:
    """The native twin of ``env_id``; a DojoError naming those that exist when there is none."""
    if env_id not in ENVS:
        raise DojoError(
            f"{env_id} has no TensorFlow-native twin, so --native cannot train on it",
            hint="--native works with " + ", ".join(ENVS),
        )
    return ENVS[env_id]()


class Step(NamedTuple):
    state: Any  # [n, state_dim] after the autoreset
    t: Any  # [n] int32 steps into the current episode
    obs: Any  # [n, obs_dim] the observation to act on next (a reset one where an episode ended)
    reward: Any  # [n] float32
    terminated: Any  # [n] bool
    truncated: Any  # [n] bool
    final_obs: Any  # [n, obs_dim] the observation the step reached (the true last one at an episode end)


def step(env: NativeEnv, state: Any, t: Any, action: Any, rng: Any) -> Step:
    """Advance ``n`` envs one step, with time limits and automatic resets."""
    tf = env.tf
    next_state, reward, terminated = env.dynamics(state, action)
    t = t + 1
    truncated = t >= env.max_episode_steps
    done = terminated | truncated
    fresh = env.initial(rng, tf.shape(state)[0])
    final_obs = env.observe(next_state)
    state = tf.where(done[:, None], fresh, next_state)
    obs = tf.where(done[:, None], env.observe(fresh), final_obs)
    return Step(state, tf.where(done, 0, t), obs, reward, terminated, truncated, final_obs)
