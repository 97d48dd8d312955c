"""Hindsight experience replay (Andrychowicz et al. 2017), as Stable-Baselines3's ``HerReplayBuffer``.

Goal-conditioned envs (Gymnasium-Robotics' Fetch tasks, bit flipping) observe a Dict of
``observation``, ``achieved_goal`` and ``desired_goal`` and give ``compute_reward(achieved_goal,
desired_goal, info)``. Their sparse rewards say "missed" almost always; hindsight turns a miss
into a lesson by pretending, at sampling time, that the goal was one the episode did reach.

:class:`HerReplayBuffer` stores transitions per env column (rows are vector steps, as SB3's
``(buffer_size // n_envs, n_envs)``), each with its episode's first row and, once the episode
has ended (terminated or truncated), its length. Only transitions of finished episodes are
sampled. Of each minibatch, the first ``int(batch * (1 - 1/(n_sampled_goal + 1)))`` get a new
goal: ``future`` the achieved goal of ``o'`` at a uniformly drawn step in ``[t, end)`` of the
same episode, ``final`` the episode's last one, ``episode`` any step's. The goal replaces
``desired_goal`` in ``o`` and ``o'``, and one vectorised ``compute_reward`` call per
:meth:`~HerReplayBuffer.sample` gives every relabelled reward. ``terminated`` stays as stored
(a truncation never terminates, so time-limit cuts bootstrap). A wrapping buffer drops an old
episode whole the moment its first transition is overwritten, as SB3 does.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import numpy as np

from kerasdojo.agents.buffers import ReplayBatch
from kerasdojo.config import option
from kerasdojo.errors import DojoError
from kerasdojo.observations import ObsSpec, arrays, assign, load, tree_map

GOAL_KEYS = ("observation", "achieved_goal", "desired_goal")
STRATEGIES = ("future", "final", "episode")


@dataclasses.dataclass(frozen=True)
class HerConfig:
    """The hindsight fields of the agents that replay (SAC, TD3, DDPG, DQN): a base of their configs."""

    her: bool = option(
        False,
        "Hindsight experience replay for goal-conditioned envs "
        "(Dict obs with observation/achieved_goal/desired_goal and compute_reward).",
    )
    her_goal_selection: str = option(
        "future",
        "Relabelled goals: achieved at this or a later step (future), the last step (final) or any step (episode).",
        choices=STRATEGIES,
    )
    her_n_sampled_goal: int = option(
        4, "Relabelled goals per real one: 1 - 1/(n+1) of each minibatch gets a new goal.", low=0
    )


def check_goal_observations(obs_spec: ObsSpec) -> None:
    """A one-line DojoError unless observations are a Dict with the three goal keys, the two
    goals single arrays of one shape that compute_reward can take as they are."""
    keys = {leaf.path[0] for leaf in obs_spec.leaves if leaf.path} if obs_spec.nested else set()
    missing = [key for key in GOAL_KEYS if key not in keys]
    seen = obs_spec.describe() if obs_spec.nested else f"one array {obs_spec.shape} {obs_spec.dtype.name}"
    if missing:
        raise DojoError(
            f"her=true needs Dict observations with observation, achieved_goal and desired_goal; "
            f"these lack {', '.join(missing)} (they are {seen})",
            hint="use a goal-conditioned env (Gymnasium-Robotics' Fetch*), or leave her=false",
        )
    goals = {leaf.name: leaf for leaf in obs_spec.leaves if leaf.name in GOAL_KEYS[1:]}
    if len(goals) != 2 or goals["achieved_goal"].shape != goals["desired_goal"].shape:
        raise DojoError(f"her=true needs achieved_goal and desired_goal to be arrays of one shape; they are {seen}")
    if any(leaf.kind not in ("box", "multi_binary") for leaf in goals.values()):
        raise DojoError(f"her=true needs Box or MultiBinary goals (kerasdojo one-hot encodes the others): {seen}")


def her_buffer(
    cfg: Any, obs_spec: ObsSpec, action_shape: tuple[int, ...], action_dtype: Any, mask_size: int = 0
) -> HerReplayBuffer:
    """The hindsight replay buffer ``cfg`` (a config with :class:`HerConfig`'s fields) asks for."""
    check_goal_observations(obs_spec)
    return HerReplayBuffer(
        cfg.buffer_size,
        cfg.n_envs,
        obs_spec,
        action_shape,
        action_dtype,
        mask_size,
        cfg.her_goal_selection,
        cfg.her_n_sampled_goal,
    )


def connect(buffer: HerReplayBuffer, env: Any) -> None:
    """Give ``buffer`` the env's ``compute_reward``; a one-line DojoError when it has none."""
    find = getattr(env, "compute_reward_fn", None)
    reward = find() if find is not None else None
    if reward is None:
        raise DojoError(
            "her=true needs an env with compute_reward(achieved_goal, desired_goal, info), "
            "as Gymnasium-Robotics' goal envs have; this one has none",
            hint="leave her=false for this env",
        )
    buffer.compute_reward = reward


class HerReplayBuffer:
    """A ring buffer per env column of transitions ``(o, a, r, o', terminated)`` that relabels
    goals when it samples. ``add_step`` takes ``truncated`` besides the plain buffer's arguments
    (:func:`~kerasdojo.agents.buffers.collect` gives it to buffers that are ``episodic``);
    ``compute_reward`` must be set (:func:`connect`) before :meth:`sample`."""

    episodic = True  # collect() passes truncated: episode ends decide what may be sampled

    def __init__(
        self,
        capacity: int,
        n_envs: int,
        obs_spec: ObsSpec,
        action_shape: tuple[int, ...] = (),
        action_dtype: Any = np.int64,
        mask_size: int = 0,
        goal_selection: str = "future",
        n_sampled_goal: int = 4,
    ) -> None:
        if goal_selection not in STRATEGIES:
            raise ValueError(f"goal_selection must be one of {', '.join(STRATEGIES)}. Received: {goal_selection!r}")
        self.rows = max(int(capacity) // n_envs, 1)
        self.n_envs = n_envs
        self.capacity = self.rows * n_envs
        self.goal_selection = goal_selection
        self.her_ratio = 1.0 - 1.0 / (n_sampled_goal + 1)
        lead = (self.rows, n_envs)
        self.obs = obs_spec.zeros(lead)
        self.next_obs = obs_spec.zeros(lead)
        self.actions = np.zeros((*lead, *action_shape), action_dtype)
        self.rewards = np.zeros(lead, np.float32)
        self.terminated = np.zeros(lead, np.float32)
        self.next_masks = np.ones((*lead, mask_size), bool) if mask_size else None
        self.ep_start = np.zeros(lead, np.int64)  # the row where a finished episode starts
        self.ep_length = np.zeros(lead, np.int64)  # its length; 0: unfinished, or dropped
        self.pos = np.zeros(n_envs, np.int64)  # the next row to write, per column
        self.filled = np.zeros(n_envs, np.int64)  # rows written, per column (up to self.rows)
        self.current_len = np.zeros(n_envs, np.int64)  # transitions of each column's open episode
        self.compute_reward: Callable[..., Any] | None = None
        self._sampleable: np.ndarray | None = None  # flat indices of finished episodes' transitions

    def __len__(self) -> int:
        """Transitions that can be sampled (those of finished episodes)."""
        return len(self._where())

    def _where(self) -> np.ndarray:
        if self._sampleable is None:
            self._sampleable = np.flatnonzero(self.ep_length > 0)
        return self._sampleable

    # ------------------------------------------------------------------ storing
    def add_step(
        self,
        obs: Any,
        actions: np.ndarray,
        rewards: np.ndarray,
        next_obs: Any,
        terminated: np.ndarray,
        valid: np.ndarray,
        next_masks: np.ndarray | None = None,
        truncated: np.ndarray | None = None,
    ) -> None:
        """Add one vector step; envs whose call ignored the action (``valid`` False: a reset)
        store nothing. An episode ends where ``terminated`` or ``truncated`` holds."""
        envs = np.flatnonzero(valid)
        if len(envs) == 0:
            return
        rows = self.pos[envs]
        for e in envs[self.ep_length[rows, envs] > 0]:  # overwriting a finished episode: drop it whole
            self._drop(int(self.pos[e]), int(e))
        keep = lambda a: tree_map(lambda x: np.asarray(x)[envs], a)  # noqa: E731
        at = (rows, envs)
        assign(self.obs, at, keep(obs))
        assign(self.next_obs, at, keep(next_obs))
        self.actions[at] = np.asarray(actions)[envs]
        self.rewards[at] = np.asarray(rewards)[envs]
        self.terminated[at] = np.asarray(terminated)[envs]
        if self.next_masks is not None:  # all legal where the env gives no masks
            self.next_masks[at] = True if next_masks is None else np.asarray(next_masks)[envs]
        self.pos[envs] = (rows + 1) % self.rows
        self.filled[envs] = np.minimum(self.filled[envs] + 1, self.rows)
        self.current_len[envs] += 1
        done = np.asarray(terminated, bool) if truncated is None else np.logical_or(terminated, truncated)
        for e in envs[done[envs]]:
            self._close(int(e))

    def _drop(self, row: int, env: int) -> None:
        start, length = int(self.ep_start[row, env]), int(self.ep_length[row, env])
        self.ep_length[(start + np.arange(length)) % self.rows, env] = 0
        self._sampleable = None

    def _close(self, env: int) -> None:
        """End the open episode of column ``env`` (what remains of it, if it outgrew the buffer)."""
        n = int(min(self.current_len[env], self.rows))
        if n:
            start = int((self.pos[env] - n) % self.rows)
            rows = (start + np.arange(n)) % self.rows
            self.ep_start[rows, env] = start
            self.ep_length[rows, env] = n
            self._sampleable = None
        self.current_len[env] = 0

    def close_episodes(self) -> None:
        """End every open episode where it stands (as truncated: it bootstraps): the env restarts
        from a reset, as after a resume."""
        for env in range(self.n_envs):
            self._close(env)

    # ------------------------------------------------------------------ sampling
    def sample(self, rng: np.random.Generator, batch_size: int, k: int = 1) -> ReplayBatch:
        """Uniform over the transitions of finished episodes, with replacement; arrays shaped
        (k, batch, ...), the first ``int(her_ratio * batch)`` of each minibatch relabelled."""
        where = self._where()
        if len(where) == 0:
            raise ValueError("cannot sample before the end of the first episode")
        rows, envs = np.divmod(where[rng.integers(0, len(where), k * batch_size)], self.n_envs)
        take = lambda a: tree_map(lambda x: x[rows, envs], a)  # noqa: E731
        obs, next_obs, rewards = take(self.obs), take(self.next_obs), self.rewards[rows, envs]
        n_virtual = int(self.her_ratio * batch_size)
        if n_virtual:
            virtual = (np.arange(k * batch_size) % batch_size) < n_virtual  # the head of each minibatch
            goals = self._goals(rng, rows[virtual], envs[virtual])
            obs["desired_goal"][virtual] = goals
            next_obs["desired_goal"][virtual] = goals
            rewards[virtual] = self._rewards(next_obs["achieved_goal"][virtual], goals)
        masks = None if self.next_masks is None else self.next_masks[rows, envs]
        batch = ReplayBatch(obs, self.actions[rows, envs], rewards, next_obs, self.terminated[rows, envs], masks)
        shape = lambda a: None if a is None else tree_map(lambda x: x.reshape(k, batch_size, *x.shape[1:]), a)  # noqa: E731
        return ReplayBatch(*(shape(a) for a in batch))

    def _goals(self, rng: np.random.Generator, rows: np.ndarray, envs: np.ndarray) -> np.ndarray:
        """New goals for the transitions at ``(rows, envs)``: achieved goals of ``o'`` in their episodes."""
        start, length = self.ep_start[rows, envs], self.ep_length[rows, envs]
        if self.goal_selection == "final":
            offset = length - 1
        elif self.goal_selection == "future":
            offset = rng.integers((rows - start) % self.rows, length)  # in [t, end)
        else:
            offset = rng.integers(0, length)
        return self.next_obs["achieved_goal"][(start + offset) % self.rows, envs]

    def _rewards(self, achieved: np.ndarray, goals: np.ndarray) -> np.ndarray:
        if self.compute_reward is None:
            raise ValueError("the hindsight replay buffer has no compute_reward (connect it to the env first)")
        # A list of empty dicts, as SB3 passes (without copy_info_dict): the Fetch tasks ignore it.
        rewards = np.asarray(self.compute_reward(achieved, goals, [{} for _ in range(len(goals))]), np.float32)
        if rewards.shape != (len(goals),):
            raise DojoError(
                f"her=true needs a vectorised compute_reward: for {len(goals)} goals it returned shape {rewards.shape}",
                hint="make compute_reward work on batches of goals (axis -1), as Gymnasium-Robotics' does",
            )
        return rewards

    # ------------------------------------------------------------------ checkpoints
    def _fields(self) -> dict[str, Any]:
        fields = {"obs": self.obs, "next_obs": self.next_obs, "actions": self.actions, "rewards": self.rewards}
        fields.update(terminated=self.terminated, ep_start=self.ep_start, ep_length=self.ep_length)
        if self.next_masks is not None:
            fields["next_masks"] = self.next_masks
        return fields

    def state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        n = int(self.filled.max(initial=0))
        stored: dict[str, np.ndarray] = {}
        for name, value in self._fields().items():
            stored.update(arrays(f"replay/{name}", tree_map(lambda x: x[:n], value)))
        stored.update({"replay/pos": self.pos, "replay/filled": self.filled, "replay/current_len": self.current_len})
        meta = {"replay/her": True, "replay/size": int(self.filled.sum()), "replay/rows": self.rows}
        return stored, meta

    def load_state(self, stored: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
        """What :meth:`state` saved; the episodes open then are closed (the env restarts from a reset)."""
        if not meta.get("replay/her"):
            raise ValueError("the saved replay buffer is not a hindsight one (her changed?)")
        rows = int(meta["replay/rows"])
        pos, filled = np.asarray(stored["replay/pos"]), np.asarray(stored["replay/filled"])
        if rows != self.rows or pos.shape != (self.n_envs,):
            raise ValueError(
                f"saved replay buffer has {rows} rows of {len(pos)} envs; this one holds {self.rows} of {self.n_envs}"
            )
        n = int(filled.max(initial=0))
        for name, value in self._fields().items():
            if name == "next_masks" and "replay/next_masks" not in stored:  # saved before masks: all legal
                value[:n] = True
                continue
            assign(value, slice(0, n), load(f"replay/{name}", stored, value))
        self.pos[:], self.filled[:] = pos, filled
        self.current_len[:] = stored["replay/current_len"]
        self._sampleable = None
        self.close_episodes()
