"""Rollout buffer, replay buffers and collection into them (NumPy).

Transitions carry the ``valid`` mask of :mod:`kerasdojo.agents.rules`: False for a
call that ignored the action (a reset), which no update learns from.
"""

from __future__ import annotations

import os
from typing import Any, NamedTuple

import numpy as np

from kerasdojo.errors import DojoError
from kerasdojo.observations import ObsSpec, arrays, assign, first, load, tree_map


class RolloutBuffer:
    """Fixed-size on-policy storage of ``n_steps`` steps of ``n_envs`` envs."""

    def __init__(
        self,
        n_steps: int,
        n_envs: int,
        obs_spec: ObsSpec,
        action_shape: tuple[int, ...],
        action_dtype: Any,
        mask_size: int = 0,
    ) -> None:
        """``mask_size``: entries of the env's action masks, stored per step (0: no masks)."""
        self.n_steps, self.n_envs = n_steps, n_envs
        self.obs = obs_spec.zeros((n_steps, n_envs))
        self.masks = np.ones((n_steps, n_envs, mask_size), bool) if mask_size else None
        self.actions = np.zeros((n_steps, n_envs, *action_shape), action_dtype)
        self.log_probs = np.zeros((n_steps, n_envs), np.float32)
        self.values = np.zeros((n_steps, n_envs), np.float32)
        self.next_values = np.zeros((n_steps, n_envs), np.float32)
        self.rewards = np.zeros((n_steps, n_envs), np.float32)
        self.terminated = np.zeros((n_steps, n_envs), bool)
        self.truncated = np.zeros((n_steps, n_envs), bool)
        self.valid = np.ones((n_steps, n_envs), bool)

    def flat(self, *arrays: Any) -> list[Any]:
        """Arrays (or observation dicts, or None) with the step and env axes merged."""
        n = self.n_steps * self.n_envs
        return [None if a is None else tree_map(lambda x: x.reshape(n, *x.shape[2:]), a) for a in arrays]


class ReplayBatch(NamedTuple):
    obs: Any  # an array, or a dict of arrays for nested observations
    actions: np.ndarray
    rewards: np.ndarray
    next_obs: Any
    terminated: np.ndarray
    next_masks: np.ndarray | None = None  # the legal actions at next_obs, when the env gives masks


class ReplayBuffer:
    """A ring buffer of transitions ``(o, a, r, o', terminated)``.

    Truncated transitions are stored with ``terminated=False`` and their true
    last observation as ``o'``, so they bootstrap. Sampling is uniform with
    replacement; :meth:`sample` draws ``(k, batch)`` indices at once for ``k``
    gradient steps run in one compiled call. Nested observations are stored leaf by leaf;
    with ``mask_size``, the legal actions at ``o'`` too (DQN's target maximises over them).
    """

    def __init__(
        self,
        capacity: int,
        obs_spec: ObsSpec,
        action_shape: tuple[int, ...] = (),
        action_dtype: Any = np.int64,
        mask_size: int = 0,
    ) -> None:
        self.capacity = int(capacity)
        self.obs = obs_spec.zeros((self.capacity,))
        self.next_obs = obs_spec.zeros((self.capacity,))
        self.next_masks = np.ones((self.capacity, mask_size), bool) if mask_size else None
        self.actions = np.zeros((self.capacity, *action_shape), action_dtype)
        self.rewards = np.zeros(self.capacity, np.float32)
        self.terminated = np.zeros(self.capacity, np.float32)
        self.pos = 0
        self.size = 0

    def __len__(self) -> int:
        return self.size

    def add(
        self,
        obs: Any,
        actions: np.ndarray,
        rewards: np.ndarray,
        next_obs: Any,
        terminated: np.ndarray,
        next_masks: np.ndarray | None = None,
    ) -> None:
        """Add a batch of transitions (one per env), wrapping around when full."""
        n = len(actions)
        if n == 0:
            return
        idx = (self.pos + np.arange(n)) % self.capacity
        assign(self.obs, idx, obs)
        self.actions[idx] = actions
        self.rewards[idx] = rewards
        assign(self.next_obs, idx, next_obs)
        self.terminated[idx] = terminated
        if self.next_masks is not None:  # all legal where the env gives no masks
            self.next_masks[idx] = True if next_masks is None else next_masks
        self.pos = int((self.pos + n) % self.capacity)
        self.size = int(min(self.size + n, self.capacity))

    def add_step(
        self,
        obs: Any,
        actions: np.ndarray,
        rewards: np.ndarray,
        next_obs: Any,
        terminated: np.ndarray,
        valid: np.ndarray,
        next_masks: np.ndarray | None = None,
    ) -> None:
        """Add one vector step; ``valid`` False marks envs whose call ignored the action (not stored)."""
        if valid.all():
            self.add(obs, actions, rewards, next_obs, terminated, next_masks)
        else:
            keep = lambda a: None if a is None else tree_map(lambda x: x[valid], a)  # noqa: E731
            self.add(keep(obs), actions[valid], rewards[valid], keep(next_obs), terminated[valid], keep(next_masks))

    def sample(self, rng: np.random.Generator, batch_size: int, k: int = 1) -> ReplayBatch:
        if self.size == 0:
            raise ValueError("cannot sample from an empty replay buffer")
        idx = rng.integers(0, self.size, size=(k, batch_size))
        take = lambda a: tree_map(lambda x: x[idx], a)  # noqa: E731
        masks = None if self.next_masks is None else self.next_masks[idx]
        return ReplayBatch(
            take(self.obs), self.actions[idx], self.rewards[idx], take(self.next_obs), self.terminated[idx], masks
        )

    def _fields(self) -> dict[str, Any]:
        fields = {"obs": self.obs, "next_obs": self.next_obs, "actions": self.actions}
        fields.update(rewards=self.rewards, terminated=self.terminated)
        if self.next_masks is not None:
            fields["next_masks"] = self.next_masks
        return fields

    def state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        n = self.size
        stored: dict[str, np.ndarray] = {}
        for name, value in self._fields().items():
            stored.update(arrays(f"replay/{name}", tree_map(lambda x: x[:n], value)))
        return stored, {"replay/pos": self.pos, "replay/size": self.size}

    def load_state(self, stored: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
        n = int(meta["replay/size"])
        if n > self.capacity:
            raise ValueError(f"saved replay buffer holds {n} transitions, more than its capacity {self.capacity}")
        for name, value in self._fields().items():
            if name == "next_masks" and "replay/next_masks" not in stored:  # saved before masks: all legal
                value[:n] = True
                continue
            assign(value, slice(0, n), load(f"replay/{name}", stored, value))
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
        obs_spec: ObsSpec,
        action_shape: tuple[int, ...] = (),
        action_dtype: Any = np.int64,
        mask_size: int = 0,
    ) -> None:
        self.rows = max(int(capacity) // n_envs, 2)
        self.n_envs = n_envs
        self.capacity = self.rows * n_envs
        self.obs = obs_spec.zeros((self.rows, n_envs))
        self.actions = np.zeros((self.rows, n_envs, *action_shape), action_dtype)
        self.rewards = np.zeros((self.rows, n_envs), np.float32)
        self.terminated = np.zeros((self.rows, n_envs), np.float32)
        self.valid = np.zeros((self.rows, n_envs), bool)
        self.next_masks = np.ones((self.rows, n_envs, mask_size), bool) if mask_size else None
        self.last_next_obs = obs_spec.zeros((n_envs,))
        self.pos = 0  # the next row to write
        self.filled = 0  # rows written (up to self.rows)

    def __len__(self) -> int:
        return int(self.valid[: self.filled].sum())

    def add_step(
        self,
        obs: Any,
        actions: np.ndarray,
        rewards: np.ndarray,
        next_obs: Any,
        terminated: np.ndarray,
        valid: np.ndarray,
        next_masks: np.ndarray | None = None,
    ) -> None:
        """Add one vector step of every env (reset calls too, marked invalid)."""
        row = self.pos
        assign(self.obs, row, obs)
        self.actions[row] = actions
        self.rewards[row] = rewards
        self.terminated[row] = terminated
        self.valid[row] = valid
        if self.next_masks is not None:  # all legal where the env gives no masks
            self.next_masks[row] = True if next_masks is None else next_masks
        assign(self.last_next_obs, slice(None), next_obs)
        self.pos = (row + 1) % self.rows
        self.filled = min(self.filled + 1, self.rows)

    def _next_obs(self, rows: np.ndarray, envs: np.ndarray) -> Any:
        newest = rows == (self.pos - 1) % self.rows

        def leaf(stored: np.ndarray, last: np.ndarray) -> np.ndarray:
            out = stored[(rows + 1) % self.rows, envs]
            if newest.any():
                out[newest] = last[envs[newest]]
            return out

        return tree_map(leaf, self.obs, self.last_next_obs)

    def _gather(self, rows: np.ndarray, envs: np.ndarray) -> ReplayBatch:
        return ReplayBatch(
            tree_map(lambda x: x[rows, envs], self.obs),
            self.actions[rows, envs],
            self.rewards[rows, envs],
            self._next_obs(rows, envs),
            self.terminated[rows, envs],
            None if self.next_masks is None else self.next_masks[rows, envs],
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
        shape = lambda a: None if a is None else tree_map(lambda x: x.reshape(k, batch_size, *x.shape[1:]), a)  # noqa: E731
        return ReplayBatch(*(shape(a) for a in batch))

    def transitions(self) -> ReplayBatch:
        """Every stored valid transition, oldest first (for tests and inspection)."""
        order = (self.pos + np.arange(self.filled)) % self.rows if self.filled == self.rows else np.arange(self.filled)
        rows = np.repeat(order, self.n_envs)
        envs = np.tile(np.arange(self.n_envs), len(order))
        keep = self.valid[rows, envs]
        return self._gather(rows[keep], envs[keep])

    def _fields(self) -> dict[str, Any]:
        fields = {"obs": self.obs, "actions": self.actions, "rewards": self.rewards}
        fields.update(terminated=self.terminated, valid=self.valid)
        if self.next_masks is not None:
            fields["next_masks"] = self.next_masks
        return fields

    def state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        n = self.filled
        stored: dict[str, np.ndarray] = {}
        for name, value in self._fields().items():
            stored.update(arrays(f"replay/{name}", tree_map(lambda x: x[:n], value)))
        stored.update(arrays("replay/last_next_obs", self.last_next_obs))
        return stored, {"replay/pos": self.pos, "replay/filled": n, "replay/compact": True}

    def load_state(self, stored: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
        if not meta.get("replay/compact"):
            raise ValueError("the saved replay buffer is not a compact one (optimize_memory_usage changed?)")
        n = int(meta["replay/filled"])
        saved_envs = first(load("replay/obs", stored, self.obs)).shape[1:2]
        if n > self.rows or saved_envs != (self.n_envs,):
            raise ValueError(
                f"saved replay buffer has {n} rows of {saved_envs[0] if saved_envs else 0} envs; "
                f"this one holds {self.rows} rows of {self.n_envs}"
            )
        for name, value in self._fields().items():
            if name == "next_masks" and "replay/next_masks" not in stored:  # saved before masks: all legal
                value[:n] = True
                continue
            assign(value, slice(0, n), load(f"replay/{name}", stored, value))
        assign(self.last_next_obs, slice(None), load("replay/last_next_obs", stored, self.last_next_obs))
        self.filled, self.pos = n, int(meta["replay/pos"])
        self.break_sequence()

    def break_sequence(self) -> None:
        """The env is about to restart from a reset (a resumed run): store the newest row's o' in
        an invalid row, so that the next row (a new episode's start) does not become its o'."""
        if self.filled == 0:
            return
        assign(self.obs, self.pos, self.last_next_obs)
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
    ended an episode (to reset exploration noise). An ``episodic`` buffer (hindsight
    replay's, which samples only finished episodes) is told ``truncated`` too.
    """
    masked = buffer.next_masks is not None
    episodic = getattr(buffer, "episodic", False)
    for i in range(vector_steps):
        env_actions, stored = choose(obs, i)
        next_obs, reward, terminated, truncated, valid = env.step(env_actions)
        masks = env.action_mask if masked else None
        if episodic:
            buffer.add_step(obs, stored, reward, next_obs, terminated, valid, masks, truncated=truncated)
        else:
            buffer.add_step(obs, stored, reward, next_obs, terminated, valid, masks)
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


def replay_memory(buffer_size: int, obs_spec: ObsSpec, compact: bool = False) -> int:
    """Bytes a replay buffer's observations take (every leaf): o and o' per transition, or o alone when compact."""
    return (1 if compact else 2) * int(buffer_size) * obs_spec.nbytes()


def check_replay_memory(buffer_size: int, obs_spec: ObsSpec, compact: bool = False, can_compact: bool = False) -> str:
    """A one-line account of the replay buffer's memory; a DojoError when it does not fit in the
    memory available now (a buffer that would send the machine into swap or the OOM killer)."""
    need = replay_memory(buffer_size, obs_spec, compact)
    avail = available_memory()
    leaves = (
        ", ".join(f"{leaf.shape} {leaf.dtype.name}" for leaf in obs_spec.leaves)
        if obs_spec.nested
        else f"{tuple(obs_spec.shape)} {obs_spec.dtype.name}"
    )
    what = f"{buffer_size:,} observations of {leaves}" + (", each stored once" if compact else ", o and o' each")
    if avail is not None and need > avail:
        hint = "lower it with --set buffer_size=N"
        if can_compact and not compact:
            hint += ", or halve it with --set optimize_memory_usage=true"
        raise DojoError(
            f"The replay buffer ({what}) needs {need / 2**30:.1f} GiB; {avail / 2**30:.1f} GiB is available", hint=hint
        )
    free = f" of {avail / 2**30:.1f} GiB available" if avail is not None else ""
    return f"replay buffer: {what}: {need / 2**30:.2f} GiB{free}"
