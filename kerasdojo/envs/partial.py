"""Partially observed twins of classic tasks: RL Zoo's "NoVel" ids, velocities hidden.

``CartPoleNoVel-v1`` is ``CartPole-v1`` whose observations have the cart's and the pole's
velocities set to 0, as RL Zoo's ``MaskVelocityWrapper`` does (the observation keeps its
shape): the current observation no longer says where the system is going, so a policy needs a
memory (``ppo_lstm``) or stacked frames. Registered as kerasdojo's own ids under the names the
Zoo uses (LunarLander at Gymnasium's current version, v3).
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

# NoVel id -> (the full task, indices of its observation that are velocities)
NO_VELOCITY = {
    "CartPoleNoVel-v1": ("CartPole-v1", (1, 3)),
    "MountainCarNoVel-v0": ("MountainCar-v0", (1,)),
    "MountainCarContinuousNoVel-v0": ("MountainCarContinuous-v0", (1,)),
    "PendulumNoVel-v1": ("Pendulum-v1", (2,)),
    "LunarLanderNoVel-v3": ("LunarLander-v3", (2, 3, 5)),
    "LunarLanderContinuousNoVel-v3": ("LunarLanderContinuous-v3", (2, 3, 5)),
}


class MaskVelocity(gym.ObservationWrapper):
    """Observations with the entries at ``indices`` set to 0 (same space)."""

    def __init__(self, env: gym.Env, indices: tuple[int, ...]) -> None:
        super().__init__(env)
        self.mask = np.ones(env.observation_space.shape, env.observation_space.dtype)
        self.mask[list(indices)] = 0

    def observation(self, observation: Any) -> Any:
        return observation * self.mask


def make_no_velocity(full_id: str, indices: tuple[int, ...], **kwargs: Any) -> gym.Env:
    """The full task made with ``kwargs`` (render_mode among them), velocities masked."""
    return MaskVelocity(gym.make(full_id, **kwargs), indices)


def register(registry: Any) -> None:
    """Register the NoVel ids whose full task is registered (the LunarLanders need Box2D only to
    be made, not to be registered), with the full task's step limit and reward threshold."""
    for novel, (full_id, indices) in NO_VELOCITY.items():
        if novel in registry or full_id not in registry:
            continue
        full = registry[full_id]
        gym.register(
            novel,
            entry_point="kerasdojo.envs.partial:make_no_velocity",
            kwargs={"full_id": full_id, "indices": indices},
            reward_threshold=full.reward_threshold,
            max_episode_steps=full.max_episode_steps,  # the same limit as the full task's TimeLimit inside
            disable_env_checker=True,
        )
