"""Replay buffer, rollout buffer and generalised advantage estimation (NumPy).

Conventions for rollouts from Gymnasium 1.x vector envs (next-step autoreset):
``valid[t, i]`` is False for the call that only reset env ``i`` (its action was
ignored); on the step that ends an episode, the next observation is the true
last one, so a *truncated* episode bootstraps from ``V(o_{t+1})`` while a
*terminated* one does not.
"""

from __future__ import annotations

import os
from typing import Any, NamedTuple

import numpy as np

from kerasdojo.errors import DojoError


def compute_gae(
    rewards: np.ndarray,
    values: np.ndarray,
    next_values: np.ndarray,
    terminated: np.ndarray,
    truncated: np.ndarray,
    gamma: float,
    lam: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Advantages and returns (Schulman et al. 2016), arrays shaped (T, n_envs).

    ``next_values[t]`` is ``V(o_{t+1})``, the value of the observation the step
    returned. ``delta_t = r_t + gamma * V(o_{t+1}) * (1 - terminated_t) - V(o_t)``
    and the sum of future deltas stops at any episode end (terminated or truncated).
    """
    T = rewards.shape[0]
    advantages = np.zeros_like(rewards, dtype=np.float32)
    not_terminal = 1.0 - terminated.astype(np.float32)
    carry_on = 1.0 - np.logical_or(terminated, truncated).astype(np.float32)
    deltas = rewards + gamma * next_values * not_terminal - values
    last = np.zeros(rewards.shape[1:], np.float32)
    for t in range(T - 1, -1, -1):
        last = deltas[t] + gamma * lam * carry_on[t] * last
        advantages[t] = last
    return advantages, advantages + values


class RolloutBuffer:
    """Fixed-size on-policy storage of ``n_steps`` steps of ``n_envs`` envs."""

    def __init__(
        self,
        n_steps: int,
        n_envs: int,
        obs_shape: tuple[int, ...],
        obs_dtype: Any,
        action_shape: tuple[int, ...],
        action_dtype: Any,
    ) -> None:
        self.n_steps, self.n_envs = n_steps, n_envs
        self.obs = np.zeros((n_steps, n_envs, *obs_shape), obs_dtype)
        self.actions = np.zeros((n_steps, n_envs, *action_shape), action_dtype)
        self.log_probs = np.zeros((n_steps, n_envs), np.float32)
        self.values = np.zeros((n_steps, n_envs), np.float32)
        self.next_values = np.zeros((n_steps, n_envs), np.float32)
        self.rewards = np.zeros((n_steps, n_envs), np.float32)
        self.terminated = np.zeros((n_steps, n_envs), bool)
        self.truncated = np.zeros((n_steps, n_envs), bool)
        self.valid = np.ones((n_steps, n_envs), bool)

    def flat(self, *arrays: np.ndarray) -> list[np.ndarray]:
        return [a.reshape(self.n_steps * self.n_envs, *a.shape[2:]) for a in arrays]


class ReplayBatch(NamedTuple):
    obs: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    next_obs: np.ndarray
    terminated: np.ndarray


class ReplayBuffer:
    """A ring buffer of transitions ``(o, a, r, o', terminated)``.

    Truncated transitions are stored with ``terminated=False`` and their true
    last observation as ``o'``, so they bootstrap. Sampling is uniform with
    replacement; :meth:`sample` draws ``(k, batch)`` indices at once for ``k``
    gradient steps run in one compiled call.
    """

    def __init__(
        self,
        capacity: int,
        obs_shape: tuple[int, ...],
        obs_dtype: Any,
        action_shape: tuple[int, ...] = (),
        action_dtype: Any = np.int64,
    ) -> None:
        self.capacity = int(capacity)
        self.obs = np.zeros((self.capacity, *obs_shape), obs_dtype)
        self.next_obs = np.zeros((self.capacity, *obs_shape), obs_dtype)
        self.actions = np.zeros((self.capacity, *action_shape), action_dtype)
        self.rewards = np.zeros(self.capacity, np.float32)
        self.terminated = np.zeros(self.capacity, np.float32)
        self.pos = 0
        self.size = 0

    def __len__(self) -> int:
        return self.size

    def add(
        self, obs: np.ndarray, actions: np.ndarray, rewards: np.ndarray, next_obs: np.ndarray, terminated: np.ndarray
    ) -> None:
        """Add a batch of transitions (one per env), wrapping around when full."""
        n = len(obs)
        if n == 0:
            return
        idx = (self.pos + np.arange(n)) % self.capacity
        self.obs[idx] = obs
        self.actions[idx] = actions
        self.rewards[idx] = rewards
        self.next_obs[idx] = next_obs
        self.terminated[idx] = terminated
        self.pos = int((self.pos + n) % self.capacity)
        self.size = int(min(self.size + n, self.capacity))

    def sample(self, rng: np.random.Generator, batch_size: int, k: int = 1) -> ReplayBatch:
        if self.size == 0:
            raise ValueError("cannot sample from an empty replay buffer")
        idx = rng.integers(0, self.size, size=(k, batch_size))
        return ReplayBatch(
            self.obs[idx], self.actions[idx], self.rewards[idx], self.next_obs[idx], self.terminated[idx]
        )

    def state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        n = self.size
        arrays = {
            "replay/obs": self.obs[:n],
            "replay/next_obs": self.next_obs[:n],
            "replay/actions": self.actions[:n],
            "replay/rewards": self.rewards[:n],
            "replay/terminated": self.terminated[:n],
        }
        return arrays, {"replay/pos": self.pos, "replay/size": self.size}

    def load_state(self, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
        n = int(meta["replay/size"])
        if n > self.capacity:
            raise ValueError(f"saved replay buffer holds {n} transitions, more than its capacity {self.capacity}")
        for name in ("obs", "next_obs", "actions", "rewards", "terminated"):
            getattr(self, name)[:n] = arrays[f"replay/{name}"]
        self.size, self.pos = n, int(meta["replay/pos"])


def collect(
    env: Any,
    obs: np.ndarray,
    buffer: ReplayBuffer,
    vector_steps: int,
    choose: Any,
    on_done: Any = None,
) -> np.ndarray:
    """Step ``env`` ``vector_steps`` times from ``obs`` into ``buffer``; return the last observation.

    ``choose(obs, i)`` gives ``(actions for the env, actions to store)`` for the
    ``i``-th vector step. Reset calls (``was_reset``: their action was ignored)
    are not stored. The step that ends an episode returns the episode's true last
    observation, so a truncated episode's last transition is stored with that
    observation and ``terminated=False``: it bootstraps from ``V(o_T)``, never from
    the next episode's first observation. ``on_done(mask)``, if given, hears which
    envs ended an episode (to reset exploration noise).
    """
    for i in range(vector_steps):
        env_actions, stored = choose(obs, i)
        next_obs, reward, terminated, truncated, was_reset = env.step(env_actions)
        keep = ~was_reset
        if keep.all():
            buffer.add(obs, stored, reward, next_obs, terminated)
        else:
            buffer.add(obs[keep], stored[keep], reward[keep], next_obs[keep], terminated[keep])
        if on_done is not None:
            on_done(np.logical_or(terminated, truncated))
        obs = next_obs
    return obs


def check_replay_memory(buffer_size: int, obs_shape: tuple[int, ...], obs_dtype: Any) -> None:
    """Refuse a replay buffer that cannot fit in memory (it stores o and o' for every transition)."""
    need = 2 * int(buffer_size) * int(np.prod(obs_shape)) * np.dtype(obs_dtype).itemsize
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return
    if need > 0.5 * total:
        raise DojoError(
            f"A replay buffer of {buffer_size:,} observations of shape {tuple(obs_shape)} needs "
            f"{need / 2**30:.1f} GiB, more than half of this machine's {total / 2**30:.1f} GiB",
            hint="lower it with --set buffer_size=N",
        )
