"""Rollout buffer, replay buffers and collection into them (NumPy).

Transitions carry the ``valid`` mask of :mod:`kerasdojo.agents.rules`: False for a
call that ignored the action (a reset), which no update learns from.
"""

from __future__ import annotations

import os
from typing import Any, NamedTuple

import numpy as np

from kerasdojo.errors import DojoError


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

    def add_step(
        self,
        obs: np.ndarray,
        actions: np.ndarray,
        rewards: np.ndarray,
        next_obs: np.ndarray,
        terminated: np.ndarray,
        valid: np.ndarray,
    ) -> None:
        """Add one vector step; ``valid`` False marks envs whose call ignored the action (not stored)."""
        if valid.all():
            self.add(obs, actions, rewards, next_obs, terminated)
        else:
            self.add(obs[valid], actions[valid], rewards[valid], next_obs[valid], terminated[valid])

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


class CompactReplayBuffer:
    """A replay buffer that stores each observation once (SB3's ``optimize_memory_usage``).

    Rows are vector steps, columns envs: ``o'`` of row ``t`` is the observation of row
    ``t + 1`` of the same env, and ``o'`` of the newest row is kept apart. With
    next-step autoreset this holds across episode ends too: the step that ends an
    episode returns the true last observation, and the reset call after it (stored as
    an invalid row, never sampled) records that observation as its own. Half the memory
    of :class:`ReplayBuffer` for the same transitions, which is what frames need: 100,000
    Atari stacks take 2.6 GiB instead of 5.3 GiB.
    """

    def __init__(
        self,
        capacity: int,
        n_envs: int,
        obs_shape: tuple[int, ...],
        obs_dtype: Any,
        action_shape: tuple[int, ...] = (),
        action_dtype: Any = np.int64,
    ) -> None:
        self.rows = max(int(capacity) // n_envs, 2)
        self.n_envs = n_envs
        self.capacity = self.rows * n_envs
        self.obs = np.zeros((self.rows, n_envs, *obs_shape), obs_dtype)
        self.actions = np.zeros((self.rows, n_envs, *action_shape), action_dtype)
        self.rewards = np.zeros((self.rows, n_envs), np.float32)
        self.terminated = np.zeros((self.rows, n_envs), np.float32)
        self.valid = np.zeros((self.rows, n_envs), bool)
        self.last_next_obs = np.zeros((n_envs, *obs_shape), obs_dtype)
        self.pos = 0  # the next row to write
        self.filled = 0  # rows written (up to self.rows)

    def __len__(self) -> int:
        return int(self.valid[: self.filled].sum())

    def add_step(
        self,
        obs: np.ndarray,
        actions: np.ndarray,
        rewards: np.ndarray,
        next_obs: np.ndarray,
        terminated: np.ndarray,
        valid: np.ndarray,
    ) -> None:
        """Add one vector step of every env (reset calls too, marked invalid)."""
        row = self.pos
        self.obs[row] = obs
        self.actions[row] = actions
        self.rewards[row] = rewards
        self.terminated[row] = terminated
        self.valid[row] = valid
        self.last_next_obs[:] = next_obs
        self.pos = (row + 1) % self.rows
        self.filled = min(self.filled + 1, self.rows)

    def _next_obs(self, rows: np.ndarray, envs: np.ndarray) -> np.ndarray:
        out = self.obs[(rows + 1) % self.rows, envs]
        newest = rows == (self.pos - 1) % self.rows
        if newest.any():
            out[newest] = self.last_next_obs[envs[newest]]
        return out

    def _gather(self, rows: np.ndarray, envs: np.ndarray) -> ReplayBatch:
        return ReplayBatch(
            self.obs[rows, envs],
            self.actions[rows, envs],
            self.rewards[rows, envs],
            self._next_obs(rows, envs),
            self.terminated[rows, envs],
        )

    def sample(self, rng: np.random.Generator, batch_size: int, k: int = 1) -> ReplayBatch:
        """Uniform over the stored valid transitions, with replacement; arrays shaped (k, batch, ...)."""
        if len(self) == 0:
            raise ValueError("cannot sample from an empty replay buffer")
        n = k * batch_size
        rows = rng.integers(0, self.filled, n)
        envs = rng.integers(0, self.n_envs, n)
        bad = ~self.valid[rows, envs]
        while bad.any():  # redraw the reset calls (a small fraction)
            rows[bad] = rng.integers(0, self.filled, int(bad.sum()))
            envs[bad] = rng.integers(0, self.n_envs, int(bad.sum()))
            bad = ~self.valid[rows, envs]
        batch = self._gather(rows, envs)
        return ReplayBatch(*(a.reshape(k, batch_size, *a.shape[1:]) for a in batch))

    def transitions(self) -> ReplayBatch:
        """Every stored valid transition, oldest first (for tests and inspection)."""
        order = (self.pos + np.arange(self.filled)) % self.rows if self.filled == self.rows else np.arange(self.filled)
        rows = np.repeat(order, self.n_envs)
        envs = np.tile(np.arange(self.n_envs), len(order))
        keep = self.valid[rows, envs]
        return self._gather(rows[keep], envs[keep])

    def state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        n = self.filled
        arrays = {f"replay/{name}": getattr(self, name)[:n] for name in self._ARRAYS}
        arrays["replay/last_next_obs"] = self.last_next_obs
        return arrays, {"replay/pos": self.pos, "replay/filled": n, "replay/compact": True}

    _ARRAYS = ("obs", "actions", "rewards", "terminated", "valid")

    def load_state(self, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
        if not meta.get("replay/compact"):
            raise ValueError("the saved replay buffer is not a compact one (optimize_memory_usage changed?)")
        n = int(meta["replay/filled"])
        if n > self.rows or arrays["replay/obs"].shape[1:2] != (self.n_envs,):
            raise ValueError(
                f"saved replay buffer has {n} rows of {arrays['replay/obs'].shape[1]} envs; "
                f"this one holds {self.rows} rows of {self.n_envs}"
            )
        for name in self._ARRAYS:
            getattr(self, name)[:n] = arrays[f"replay/{name}"]
        self.last_next_obs[:] = arrays["replay/last_next_obs"]
        self.filled, self.pos = n, int(meta["replay/pos"])
        self.break_sequence()

    def break_sequence(self) -> None:
        """The env is about to restart from a reset (a resumed run): store the newest row's o' in
        an invalid row, so that the next row (a new episode's start) does not become its o'."""
        if self.filled == 0:
            return
        self.obs[self.pos] = self.last_next_obs
        self.valid[self.pos] = False
        self.pos = (self.pos + 1) % self.rows
        self.filled = min(self.filled + 1, self.rows)


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
    ``i``-th vector step. Calls that ignored the action (``valid`` False: a reset,
    or Atari's FIRE after a lost life) are not stored. The step that ends an
    episode returns the episode's true last observation, so a truncated
    episode's last transition is stored with that observation and
    ``terminated=False``: it bootstraps from ``V(o_T)``, never from the next
    episode's first observation. ``on_done(mask)``, if given, hears which envs
    ended an episode (to reset exploration noise).
    """
    for i in range(vector_steps):
        env_actions, stored = choose(obs, i)
        next_obs, reward, terminated, truncated, valid = env.step(env_actions)
        buffer.add_step(obs, stored, reward, next_obs, terminated, valid)
        if on_done is not None:
            on_done(np.logical_or(terminated, truncated))
        obs = next_obs
    return obs


def available_memory() -> int | None:
    """Bytes of memory available to new allocations (Linux's MemAvailable), or None if unknown."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def replay_memory(buffer_size: int, obs_shape: tuple[int, ...], obs_dtype: Any, compact: bool = False) -> int:
    """Bytes a replay buffer's observations take: o and o' per transition, or o alone when compact."""
    return (1 if compact else 2) * int(buffer_size) * int(np.prod(obs_shape)) * np.dtype(obs_dtype).itemsize


def check_replay_memory(
    buffer_size: int, obs_shape: tuple[int, ...], obs_dtype: Any, compact: bool = False, can_compact: bool = False
) -> str:
    """A one-line account of the replay buffer's memory; a DojoError when it does not fit in the
    memory available now (a buffer that would send the machine into swap or the OOM killer)."""
    need = replay_memory(buffer_size, obs_shape, obs_dtype, compact)
    avail = available_memory()
    what = f"{buffer_size:,} observations of {tuple(obs_shape)} {np.dtype(obs_dtype).name}" + (
        ", each stored once" if compact else ", o and o' each"
    )
    if avail is not None and need > avail:
        hint = "lower it with --set buffer_size=N"
        if can_compact and not compact:
            hint += ", or halve it with --set optimize_memory_usage=true"
        raise DojoError(
            f"The replay buffer ({what}) needs {need / 2**30:.1f} GiB; {avail / 2**30:.1f} GiB is available", hint=hint
        )
    free = f" of {avail / 2**30:.1f} GiB available" if avail is not None else ""
    return f"replay buffer: {what}: {need / 2**30:.2f} GiB{free}"
