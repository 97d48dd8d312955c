"""The vector environment agents see: encoded observations, episode statistics,
optional normalisation, and Gymnasium 1.x's next-step autoreset made explicit.

:class:`VecEnv` stacks Gymnasium's own vector wrappers on the env, thinly
subclassed where SB3's conventions (which kerasdojo's presets were tuned with)
differ from Gymnasium's: ``ClipAction``, ``RecordEpisodeStatistics``, an
observation encoder, ``NormalizeObservation`` and ``NormalizeReward``, the last
two sharing one :class:`Normalizer`, the statistics that are saved with the
agent and exported into ``policy.keras``.

Gymnasium 1.x vector envs reset a finished sub-environment on the *next* call
to ``step``: that call ignores the action and returns the first observation of
the new episode with reward 0. :meth:`VecEnv.step` returns a ``valid``
mask that is False for exactly those calls (and for Atari's forced FIRE calls), so
agents drop them from their data instead of reading ``final_observation``; on the step that ends an episode the returned
observation is the true last one, which is what bootstrapping after a
truncation needs.
"""

from __future__ import annotations

from collections import deque
from typing import Any

import numpy as np
from gymnasium import spaces
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.wrappers import vector

from kerasdojo.envs.normalization import (  # noqa: F401  (RunningMeanStd: tests and users import it here)
    NormalizeLeaves,
    NormalizeObservation,
    Normalizer,
    NormalizeReward,
    RunningMeanStd,
)
from kerasdojo.errors import DojoError
from kerasdojo.observations import ObsSpec


class RecordEpisodeStatistics(vector.RecordEpisodeStatistics):
    """Gymnasium's episode statistics (raw rewards, the last 100 episodes kept), with
    ``reset_calls``: which envs the last step reset (next-step autoreset), ignoring their action."""

    def __init__(self, env: VectorEnv) -> None:
        super().__init__(env, buffer_length=100)
        self.reset_calls = np.zeros(self.num_envs, bool)

    def reset(self, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict[str, Any]]:
        self.reset_calls = np.zeros(self.num_envs, bool)
        return super().reset(seed=seed, options=options)

    def step(self, actions: Any) -> tuple[Any, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        self.reset_calls = self.prev_dones
        return super().step(actions)


class GameStatistics(VectorEnv):
    """Episode statistics of whole games and raw scores, with the attributes of
    :class:`RecordEpisodeStatistics`, for :class:`~kerasdojo.envs.atari.AtariVec`, whose step
    info says which calls restarted a finished game (``reset_call``) and what the game scored
    (``raw_reward``). Gymnasium's wrapper cannot serve: it ends an episode at every
    ``terminated`` (in training, a lost life) and sums the clipped rewards. It is a ``VectorEnv``
    itself, not a wrapper, as Gymnasium's wrappers above it take nothing else and AtariVec is not one."""

    def __init__(self, env: Any) -> None:
        self.env = env
        self.num_envs = env.num_envs
        self.metadata = env.metadata
        self.single_observation_space = env.single_observation_space
        self.single_action_space = env.single_action_space
        self.observation_space, self.action_space = env.observation_space, env.action_space
        self.return_queue: deque[float] = deque(maxlen=100)
        self.length_queue: deque[int] = deque(maxlen=100)
        self.episode_count = 0
        self.episode_returns = np.zeros(self.num_envs)
        self.episode_lengths = np.zeros(self.num_envs, np.int64)
        self.reset_calls = np.zeros(self.num_envs, bool)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict[str, Any]]:
        self.episode_returns[:] = 0
        self.episode_lengths[:] = 0
        self.reset_calls = np.zeros(self.num_envs, bool)
        return self.env.reset(seed=seed, options=options)

    def step(self, actions: Any) -> tuple[Any, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(actions)
        reset_calls = self.reset_calls = np.asarray(info["reset_call"], bool)
        for i in np.flatnonzero(reset_calls):  # the game that ended is closed when it restarts
            self.return_queue.append(float(self.episode_returns[i]))
            self.length_queue.append(int(self.episode_lengths[i]))
            self.episode_count += 1
        self.episode_returns[reset_calls] = 0.0
        self.episode_lengths[reset_calls] = 0
        self.episode_returns += np.asarray(info.get("raw_reward", reward), np.float64)
        self.episode_lengths += ~reset_calls
        return obs, reward, terminated, truncated, info

    def render(self) -> Any:
        return self.env.render()

    def close_extras(self, **kwargs: Any) -> None:
        self.env.close()


class EpisodeStats:
    """``stats()`` over the returns and lengths of the last 100 finished episodes (raw rewards),
    ``episode_returns`` and ``episode_lengths``, beside ``episodes``, the count of all: what the
    logging and progress hooks read from any vector env."""

    episode_returns: deque[float]
    episode_lengths: deque[int]
    episodes: int
    # info["is_success"] at the ends of the last 100 episodes that reported one (Gymnasium-Robotics
    # and many custom envs do); empty for envs that never do.
    episode_successes: deque[bool] = deque(maxlen=0)

    def stats(self) -> dict[str, float]:
        """SB3's rollout/ep_rew_mean and ep_len_mean over the last 100 episodes (NaN before any),
        and rollout/success_rate where episodes report ``info["is_success"]``."""
        if not self.episode_returns:
            return {"rollout/ep_rew_mean": float("nan"), "rollout/ep_len_mean": float("nan")}
        out = {
            "rollout/ep_rew_mean": float(np.mean(self.episode_returns)),
            "rollout/ep_len_mean": float(np.mean(self.episode_lengths)),
        }
        if self.episode_successes:
            out["rollout/success_rate"] = float(np.mean(self.episode_successes))
        return out


class VecEnv(EpisodeStats):
    """A Gymnasium vector env with what every agent needs and nothing else.

    * observations as arrays: float32 for Box spaces (uint8 images stay uint8),
      one-hot float32 for Discrete ones;
    * actions: indices for Discrete spaces (``start`` is added here), arrays
      clipped to the bounds for Box spaces (``ClipAction``);
    * episode returns and lengths of the raw rewards, the last 100 kept
      (``RecordEpisodeStatistics``; :class:`GameStatistics` for Atari games);
    * optional observation/reward normalisation (:class:`Normalizer`).
    """

    def __init__(
        self, env: Any, normalize_obs: bool = False, normalize_reward: bool = False, gamma: float = 0.99
    ) -> None:
        from kerasdojo.envs.atari import AtariVec

        mode = env.metadata.get("autoreset_mode", AutoresetMode.NEXT_STEP)
        if mode != AutoresetMode.NEXT_STEP:
            raise DojoError(f"kerasdojo needs vector envs with next-step autoreset; this one uses {mode}")
        self.env = env
        self.num_envs = env.num_envs
        self.single_observation_space = obs_space = env.single_observation_space
        self.single_action_space = act_space = env.single_action_space
        self.obs_spec = spec = ObsSpec.of(obs_space)
        if not spec.nested:  # a plain space: one array, as before
            self.obs_shape, self.obs_dtype = spec.shape, spec.dtype
        leaf = spec.leaves[0]
        plain_box = not spec.nested and leaf.kind == "box" and obs_space.dtype == leaf.dtype
        self._act_start = _starts(act_space)
        self._act_dtype = np.int8 if isinstance(act_space, spaces.MultiBinary) else None
        self.mask_size = _mask_size(act_space)
        self.mask_source: str | None = None  # "info" (info["action_mask"]), "method" (action_masks()) or None
        self.action_mask: np.ndarray | None = None
        self._mask_method: bool | None = None
        self._reward_env: Any = None  # AsyncVectorEnv: a copy of its first env, for compute_reward
        normalized = {lf.name: lf.shape for lf in spec.leaves if lf.normalizable} if spec.nested else {}
        if normalize_obs and (not normalized if spec.nested else self.obs_dtype == np.uint8):
            normalize_obs = False  # images are scaled by the network instead
        self.normalizer = Normalizer(
            spec.leaves[0].shape, normalize_obs, normalize_reward, gamma, leaves=normalized if normalize_obs else None
        )

        # From the env up: actions pass down through these wrappers, what the env returns comes up.
        top = vector.ClipAction(env) if isinstance(act_space, spaces.Box) else env
        self._stats = top = GameStatistics(top) if isinstance(env, AtariVec) else RecordEpisodeStatistics(top)
        if not plain_box:
            top = vector.TransformObservation(top, spec.encode, single_observation_space=spec.encoded_space())
        if normalize_obs:
            top = NormalizeLeaves(top, self.normalizer) if spec.nested else NormalizeObservation(top, self.normalizer)
        if normalize_reward:
            top = NormalizeReward(top, self.normalizer)
        self._top = top
        self.episode_successes = deque(maxlen=100)
        # info["is_success"] of the last step per env where an episode ended and reported one, else NaN
        self.last_success = np.full(self.num_envs, np.nan)

    # ------------------------------------------------------------------ statistics
    @property
    def episode_returns(self) -> deque[float]:
        return self._stats.return_queue

    @property
    def episode_lengths(self) -> deque[int]:
        return self._stats.length_queue

    @property
    def episodes(self) -> int:
        return int(self._stats.episode_count)

    @episodes.setter
    def episodes(self, value: int) -> None:
        self._stats.episode_count = value

    @property
    def in_episode(self) -> np.ndarray:
        """Which calls of the last step were part of an episode: all but reset calls (Atari's
        forced FIRE calls count, which step's ``valid`` leaves out); what evaluation scores."""
        return ~self._stats.reset_calls

    # ------------------------------------------------------------------ API
    def reset(self, seed: int | None = None) -> Any:
        obs, info = self._top.reset(seed=seed)
        if seed is not None:
            self.env.action_space.seed(seed)
        self.obs = obs
        self.mask_source = None
        if self.mask_size:
            if "action_mask" in info:
                self.mask_source = "info"
            elif self._has_mask_method():
                self.mask_source = "method"
            self._read_mask(info)
        return self.obs

    def _has_mask_method(self) -> bool:
        """Whether the envs have ``action_masks()`` (asked once: AsyncVectorEnv's answer costs an env)."""
        if self._mask_method is None:
            self._mask_method = _has_method(self.env, "action_masks")
        return self._mask_method

    def compute_reward_fn(self) -> Any:
        """The first sub-environment's ``unwrapped.compute_reward`` (goal-conditioned envs, for
        hindsight replay), or None: for AsyncVectorEnv that of a copy made here (with
        ``env_fns[0]``, as :func:`_has_method` does), kept open until :meth:`close`."""
        envs = getattr(self.env, "envs", None)
        if not envs and getattr(self.env, "env_fns", None):
            if self._reward_env is None:
                self._reward_env = self.env.env_fns[0]()
            envs = [self._reward_env]
        if not envs:
            return None  # an env's own vectorised implementation, or Atari's
        reward = getattr(envs[0].unwrapped, "compute_reward", None)
        return reward if callable(reward) else None

    def _read_mask(self, info: dict[str, Any]) -> None:
        """The legal actions of the observations just returned, one row per env (None without masks)."""
        if self.mask_source is None:
            self.action_mask = None
            return
        if self.mask_source == "info":
            raw = info.get("action_mask")
            if raw is None:
                raise DojoError("the env gave info['action_mask'] at reset but not after a step")
            masks = np.asarray(raw)
        else:
            masks = np.asarray([np.asarray(m).reshape(-1) for m in self.env.call("action_masks")])
        if masks.ndim != 2 or masks.shape[1] != self.mask_size:
            raise DojoError(
                f"the env's action mask has shape {masks.shape[1:]}; its action space {self.single_action_space} "
                f"needs {self.mask_size} entries per step",
                hint="turn masks off with --set use_masks=false",
            )
        self.action_mask = _legal(masks.astype(bool), self.single_action_space)

    def step(self, actions: np.ndarray) -> tuple[Any, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Step all envs. Returns ``(obs, reward, terminated, truncated, valid)``; ``valid[i]`` is
        False for a call whose action was ignored (drop that transition): a reset call, or an
        Atari call that served (FIRE) after a lost life."""
        if self._act_dtype is not None:
            actions = np.asarray(actions, self._act_dtype)
        if self._act_start is not None:
            actions = actions + self._act_start
        obs, reward, terminated, truncated, info = self._top.step(actions)
        if self.mask_source is not None:
            self._read_mask(info)
        self.last_success[:] = np.nan
        if "is_success" in info:
            self._record_success(info, np.logical_or(terminated, truncated))
        ignored = self._stats.reset_calls
        if "fire_forced" in info:  # Atari: a call that pressed FIRE after a lost life is the game's, not the agent's
            ignored = ignored | np.asarray(info["fire_forced"], bool)
        self.obs = obs
        return self.obs, np.asarray(reward, np.float32), np.asarray(terminated), np.asarray(truncated), ~ignored

    def _record_success(self, info: dict[str, Any], done: np.ndarray) -> None:
        """``info["is_success"]`` of the envs whose episode ended on this step (where they gave one)."""
        reported = np.asarray(info.get("_is_success", np.ones(self.num_envs, bool)), bool)
        values = np.asarray(info["is_success"]).reshape(-1)
        for i in np.flatnonzero(done & reported):
            self.last_success[i] = float(bool(values[i]))
            self.episode_successes.append(bool(values[i]))

    def render_frame(self) -> np.ndarray:
        """The rgb_array frame of the first env."""
        frames = self.env.render()
        if frames is None:
            raise DojoError("this environment returned no frame; was it made with render_mode='rgb_array'?")
        return np.asarray(frames[0] if isinstance(frames, (tuple, list)) else frames)

    def metadata_fps(self) -> int:
        envs = getattr(self.env, "envs", None)
        meta = envs[0].metadata if envs else self.env.metadata
        return int(meta.get("render_fps") or 30)

    def close(self) -> None:
        self._top.close()
        if self._reward_env is not None:
            self._reward_env.close()
            self._reward_env = None


# --------------------------------------------------------------------------- actions and masks


def _starts(space: Any) -> Any:
    """What to add to an agent's action indices (Discrete and MultiDiscrete ``start``), or None."""
    if isinstance(space, spaces.Discrete) and int(space.start):
        return int(space.start)
    if isinstance(space, spaces.MultiDiscrete) and np.any(space.start):
        return np.asarray(space.start, np.int64).reshape(-1)
    return None


def _mask_size(space: Any) -> int:
    """Entries of an action mask: ``n`` for Discrete, ``sum(nvec)`` for MultiDiscrete, else 0 (no masks)."""
    if isinstance(space, spaces.Discrete):
        return int(space.n)
    if isinstance(space, spaces.MultiDiscrete):
        return int(np.sum(space.nvec))
    return 0


def _legal(masks: np.ndarray, space: Any) -> np.ndarray:
    """``masks`` with every part that allows nothing (a finished episode's last state) allowing all:
    the action is ignored there, and a distribution over no action is undefined."""
    nvec = [int(space.n)] if isinstance(space, spaces.Discrete) else [int(n) for n in np.asarray(space.nvec).ravel()]
    start = 0
    for n in nvec:
        part = masks[:, start : start + n]
        part[~part.any(axis=1)] = True
        start += n
    return masks


def _has_method(env: Any, name: str) -> bool:
    """Whether the sub-environments of a vector env have a callable ``name`` (sb3-contrib's
    ``action_masks``): asked of the first one (SyncVectorEnv), or of a copy made here, as
    AsyncVectorEnv makes one itself (asking its workers for a missing attribute kills them)."""
    envs = getattr(env, "envs", None)
    made = None
    if not envs and getattr(env, "env_fns", None):
        made = env.env_fns[0]()
        envs = [made]
    if not envs:
        return False  # an env's own vectorised implementation
    try:
        return callable(envs[0].get_wrapper_attr(name))
    except AttributeError:
        return False
    finally:
        if made is not None:
            made.close()
