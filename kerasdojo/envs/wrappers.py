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
from gymnasium.wrappers import utils, vector

from kerasdojo.errors import DojoError


class RunningMeanStd(utils.RunningMeanStd):
    """Gymnasium's running mean and variance (Chan et al.'s parallel update, count starting at
    ``epsilon``), kept in float64 whatever the batch's dtype, as SB3's."""

    def __init__(self, shape: tuple[int, ...] = (), epsilon: float = 1e-4) -> None:
        super().__init__(epsilon=epsilon, shape=shape)

    def update(self, x: np.ndarray) -> None:
        super().update(np.asarray(x, np.float64))


class Normalizer:
    """SB3's VecNormalize settings and statistics, which :class:`NormalizeObservation` and
    :class:`NormalizeReward` use: observations become ``clip((obs - mean) / sqrt(var + eps),
    -clip, clip)``, rewards are divided by the running std of the discounted return.
    Statistics update only while ``training`` is True; they are saved with the agent."""

    def __init__(
        self,
        obs_shape: tuple[int, ...],
        obs: bool,
        reward: bool,
        gamma: float,
        clip: float = 10.0,
        epsilon: float = 1e-8,
    ) -> None:
        self.norm_obs, self.norm_reward = obs, reward
        self.obs_rms = RunningMeanStd(obs_shape)
        self.ret_rms = RunningMeanStd(())
        self.gamma, self.clip, self.epsilon = gamma, clip, epsilon
        self.training = True

    def state(self) -> dict[str, np.ndarray]:
        return {
            "obs_mean": self.obs_rms.mean,
            "obs_var": self.obs_rms.var,
            "obs_count": np.array(self.obs_rms.count),
            "ret_mean": self.ret_rms.mean,
            "ret_var": self.ret_rms.var,
            "ret_count": np.array(self.ret_rms.count),
        }

    def load_state(self, state: dict[str, np.ndarray]) -> None:
        self.obs_rms.mean, self.obs_rms.var = state["obs_mean"], state["obs_var"]
        self.obs_rms.count = float(state["obs_count"])
        self.ret_rms.mean, self.ret_rms.var = state["ret_mean"], state["ret_var"]
        self.ret_rms.count = float(state["ret_count"])


class _TrainingFlag:
    """Gymnasium's normalisation wrappers update their statistics while ``_update_running_mean``
    is True: here that is the shared :class:`Normalizer`'s ``training``."""

    normalizer: Normalizer

    @property
    def _update_running_mean(self) -> bool:
        return self.normalizer.training

    @_update_running_mean.setter
    def _update_running_mean(self, value: bool) -> None:
        self.normalizer.training = value


class NormalizeObservation(_TrainingFlag, vector.NormalizeObservation):
    """Gymnasium's observation standardisation with the :class:`Normalizer`'s float64
    statistics, clipped to ``±clip`` as SB3's VecNormalize."""

    def __init__(self, env: VectorEnv, normalizer: Normalizer) -> None:
        self.normalizer = normalizer
        super().__init__(env, epsilon=normalizer.epsilon)
        self.obs_rms = normalizer.obs_rms

    def observations(self, observations: np.ndarray) -> np.ndarray:
        clip = self.normalizer.clip
        return np.clip(super().observations(observations), -clip, clip)


class NormalizeReward(_TrainingFlag, vector.NormalizeReward):
    """Gymnasium's reward scaling (its checks, update flag and ``reset``, which restarts the
    return) with the :class:`Normalizer`'s statistics, stepped as SB3's VecNormalize: every
    call's reward, an autoreset call's included, is discounted into a float64 return that joins
    the statistics and is then zeroed where an episode ended; the reward divided by the
    return's std is clipped to ``±clip``."""

    def __init__(self, env: VectorEnv, normalizer: Normalizer) -> None:
        self.normalizer = normalizer
        super().__init__(env, gamma=normalizer.gamma, epsilon=normalizer.epsilon)
        self.return_rms = normalizer.ret_rms
        self.accumulated_reward = np.zeros(self.num_envs)

    def step(self, actions: Any) -> tuple[Any, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        # Gymnasium's own step skips the autoreset call, cuts the return by (1 - terminated)
        # before adding the reward (and never at a truncation), sums in float32 and does not
        # clip: the statistics it keeps are not SB3's, which our presets were tuned with.
        obs, reward, terminated, truncated, info = self.env.step(actions)
        reward = np.asarray(reward, np.float32)
        self.accumulated_reward = self.accumulated_reward * self.gamma + reward
        if self._update_running_mean:
            self.return_rms.update(self.accumulated_reward)
        self.accumulated_reward[np.logical_or(terminated, truncated)] = 0.0
        scaled = reward / np.sqrt(self.return_rms.var + self.epsilon)
        clip = self.normalizer.clip
        return obs, np.clip(scaled, -clip, clip).astype(np.float32), terminated, truncated, info


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

    def stats(self) -> dict[str, float]:
        """SB3's rollout/ep_rew_mean and ep_len_mean over the last 100 episodes (NaN before any)."""
        if not self.episode_returns:
            return {"rollout/ep_rew_mean": float("nan"), "rollout/ep_len_mean": float("nan")}
        return {
            "rollout/ep_rew_mean": float(np.mean(self.episode_returns)),
            "rollout/ep_len_mean": float(np.mean(self.episode_lengths)),
        }


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
        encode = None  # how the env's observations become ours, where they differ
        if isinstance(obs_space, spaces.Box):
            self.obs_shape = tuple(obs_space.shape)
            self.obs_dtype = np.uint8 if obs_space.dtype == np.uint8 else np.float32
            if obs_space.dtype != self.obs_dtype:
                encode = self._box_obs
        elif isinstance(obs_space, spaces.Discrete):
            self.obs_shape = (int(obs_space.n),)
            self.obs_dtype = np.float32
            self._eye = np.eye(int(obs_space.n), dtype=np.float32)
            encode = self._onehot_obs
        else:
            raise DojoError(
                f"Observation space {obs_space} is not supported",
                hint="kerasdojo agents take Box or Discrete observations; flatten others with a gymnasium wrapper",
            )
        self._act_start = int(act_space.start) if isinstance(act_space, spaces.Discrete) else 0
        if normalize_obs and self.obs_dtype == np.uint8:
            normalize_obs = False  # images are scaled by the network instead
        self.normalizer = Normalizer(self.obs_shape, normalize_obs, normalize_reward, gamma)

        # From the env up: actions pass down through these wrappers, what the env returns comes up.
        top = vector.ClipAction(env) if isinstance(act_space, spaces.Box) else env
        self._stats = top = GameStatistics(top) if isinstance(env, AtariVec) else RecordEpisodeStatistics(top)
        if encode is not None:
            encoded = spaces.Box(-np.inf, np.inf, self.obs_shape, np.float32)
            top = vector.TransformObservation(top, encode, single_observation_space=encoded)
        if normalize_obs:
            top = NormalizeObservation(top, self.normalizer)
        if normalize_reward:
            top = NormalizeReward(top, self.normalizer)
        self._top = top

    # ------------------------------------------------------------------ encoding
    def _box_obs(self, obs: np.ndarray) -> np.ndarray:
        return np.asarray(obs, self.obs_dtype)

    def _onehot_obs(self, obs: np.ndarray) -> np.ndarray:
        return self._eye[np.asarray(obs, np.int64) - int(self.single_observation_space.start)]

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
    def reset(self, seed: int | None = None) -> np.ndarray:
        obs, _ = self._top.reset(seed=seed)
        if seed is not None:
            self.env.action_space.seed(seed)
        self.obs = obs
        return self.obs

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Step all envs. Returns ``(obs, reward, terminated, truncated, valid)``; ``valid[i]`` is
        False for a call whose action was ignored (drop that transition): a reset call, or an
        Atari call that served (FIRE) after a lost life."""
        if self._act_start:
            actions = actions + self._act_start
        obs, reward, terminated, truncated, info = self._top.step(actions)
        ignored = self._stats.reset_calls
        if "fire_forced" in info:  # Atari: a call that pressed FIRE after a lost life is the game's, not the agent's
            ignored = ignored | np.asarray(info["fire_forced"], bool)
        self.obs = obs
        return self.obs, np.asarray(reward, np.float32), np.asarray(terminated), np.asarray(truncated), ~ignored

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
