"""The vector environment agents see: encoded observations, episode statistics,
optional normalisation, and Gymnasium 1.x's next-step autoreset made explicit.

Gymnasium 1.x vector envs reset a finished sub-environment on the *next* call
to ``step``: that call ignores the action and returns the first observation of
the new episode with reward 0. :meth:`VecEnv.step` returns a ``was_reset``
mask for exactly those calls, so agents drop them from their data instead of
reading ``final_observation``; on the step that ends an episode the returned
observation is the true last one, which is what bootstrapping after a
truncation needs.
"""

from __future__ import annotations

from collections import deque
from typing import Any

import numpy as np

from kerasdojo.errors import DojoError


class RunningMeanStd:
    """Mean and variance of a stream of batches (Chan et al.'s parallel update)."""

    def __init__(self, shape: tuple[int, ...] = (), epsilon: float = 1e-4) -> None:
        self.mean = np.zeros(shape, np.float64)
        self.var = np.ones(shape, np.float64)
        self.count = epsilon

    def update(self, batch: np.ndarray) -> None:
        batch = np.asarray(batch, np.float64)
        b_mean, b_var, b_count = batch.mean(axis=0), batch.var(axis=0), batch.shape[0]
        delta = b_mean - self.mean
        total = self.count + b_count
        self.mean = self.mean + delta * b_count / total
        m2 = self.var * self.count + b_var * b_count + delta**2 * self.count * b_count / total
        self.var = m2 / total
        self.count = total


class Normalizer:
    """Observation standardisation and reward scaling, as SB3's VecNormalize.

    Observations: ``clip((obs - mean) / sqrt(var + eps), -clip, clip)``.
    Rewards: divided by the running std of the discounted return.
    Statistics update only while ``training`` is True; they are saved with the agent.
    """

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
        self._returns: np.ndarray | None = None

    def observation(self, obs: np.ndarray) -> np.ndarray:
        if not self.norm_obs:
            return obs
        if self.training:
            self.obs_rms.update(obs)
        out = (obs - self.obs_rms.mean) / np.sqrt(self.obs_rms.var + self.epsilon)
        return np.clip(out, -self.clip, self.clip).astype(np.float32)

    def reward(self, reward: np.ndarray, done: np.ndarray) -> np.ndarray:
        if not self.norm_reward:
            return reward
        if self._returns is None or len(self._returns) != len(reward):
            self._returns = np.zeros(len(reward))
        self._returns = self._returns * self.gamma + reward
        if self.training:
            self.ret_rms.update(self._returns)
        self._returns[done] = 0.0
        out = reward / np.sqrt(self.ret_rms.var + self.epsilon)
        return np.clip(out, -self.clip, self.clip).astype(np.float32)

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


class EpisodeStats:
    """Returns and lengths of the last 100 finished episodes (raw rewards) and their count:
    what the logging and progress hooks read from any vector env."""

    def __init__(self) -> None:
        self.episode_returns: deque[float] = deque(maxlen=100)
        self.episode_lengths: deque[int] = deque(maxlen=100)
        self.episodes = 0

    def add_episode(self, ret: float, length: int) -> None:
        self.episode_returns.append(ret)
        self.episode_lengths.append(length)
        self.episodes += 1

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
      clipped to the bounds for Box spaces;
    * episode returns and lengths of the raw rewards, the last 100 kept;
    * optional observation/reward normalisation (:class:`Normalizer`).
    """

    def __init__(
        self, env: Any, normalize_obs: bool = False, normalize_reward: bool = False, gamma: float = 0.99
    ) -> None:
        from gymnasium import spaces
        from gymnasium.vector import AutoresetMode

        mode = env.metadata.get("autoreset_mode", AutoresetMode.NEXT_STEP)
        if mode != AutoresetMode.NEXT_STEP:
            raise DojoError(f"kerasdojo needs vector envs with next-step autoreset; this one uses {mode}")
        self.env = env
        self.num_envs = env.num_envs
        self.single_observation_space = env.single_observation_space
        self.single_action_space = env.single_action_space
        obs_space = self.single_observation_space
        if isinstance(obs_space, spaces.Box):
            self.obs_shape = tuple(obs_space.shape)
            self.obs_dtype = np.uint8 if obs_space.dtype == np.uint8 else np.float32
            self._encode = self._box_obs
        elif isinstance(obs_space, spaces.Discrete):
            self.obs_shape = (int(obs_space.n),)
            self.obs_dtype = np.float32
            self._eye = np.eye(int(obs_space.n), dtype=np.float32)
            self._encode = self._onehot_obs
        else:
            raise DojoError(
                f"Observation space {obs_space} is not supported",
                hint="kerasdojo agents take Box or Discrete observations; flatten others with a gymnasium wrapper",
            )
        act_space = self.single_action_space
        self._act_start = int(act_space.start) if isinstance(act_space, spaces.Discrete) else 0
        self._act_low = getattr(act_space, "low", None)
        self._act_high = getattr(act_space, "high", None)
        self._is_box_action = isinstance(act_space, spaces.Box)
        if normalize_obs and self.obs_dtype == np.uint8:
            normalize_obs = False  # images are scaled by the network instead
        self.normalizer = Normalizer(self.obs_shape, normalize_obs, normalize_reward, gamma)
        self._returns = np.zeros(self.num_envs)
        self._lengths = np.zeros(self.num_envs, np.int64)
        self._prev_done = np.zeros(self.num_envs, bool)
        # The last step's reset calls alone (step's mask also holds Atari's forced FIRE calls).
        self.restarted = np.zeros(self.num_envs, bool)
        EpisodeStats.__init__(self)

    # ------------------------------------------------------------------ encoding
    def _box_obs(self, obs: np.ndarray) -> np.ndarray:
        return np.asarray(obs, self.obs_dtype)

    def _onehot_obs(self, obs: np.ndarray) -> np.ndarray:
        return self._eye[np.asarray(obs, np.int64) - int(self.single_observation_space.start)]

    def observation(self, obs: np.ndarray) -> np.ndarray:
        return self.normalizer.observation(self._encode(obs))

    # ------------------------------------------------------------------ API
    def reset(self, seed: int | None = None) -> np.ndarray:
        obs, _ = self.env.reset(seed=seed)
        if seed is not None:
            self.env.action_space.seed(seed)
        self._returns[:] = 0
        self._lengths[:] = 0
        self._prev_done[:] = False
        self.restarted = np.zeros(self.num_envs, bool)
        self.obs = self.observation(obs)
        return self.obs

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Step all envs. Returns ``(obs, reward, terminated, truncated, was_reset)``;
        ``was_reset[i]`` marks a call whose action was ignored (drop that transition): a reset
        call, or an Atari call that served (FIRE) after a lost life."""
        if self._is_box_action:
            env_actions = np.clip(actions, self._act_low, self._act_high)
        elif self._act_start:
            env_actions = actions + self._act_start
        else:
            env_actions = actions
        obs, reward, terminated, truncated, info = self.env.step(env_actions)
        reward = np.asarray(reward, np.float64)
        done = np.logical_or(terminated, truncated)
        if "was_reset" in info:
            # The env says which calls reset a finished game (Atari: a lost life ends a training
            # episode but the game plays on). Statistics count whole games and raw scores, closed
            # when the game restarts.
            was_reset = np.asarray(info["was_reset"], bool)
            for i in np.flatnonzero(was_reset):
                self.add_episode(float(self._returns[i]), int(self._lengths[i]))
            self._returns[was_reset] = 0.0
            self._lengths[was_reset] = 0
            self._returns += np.asarray(info.get("raw_reward", reward), np.float64)
            self._lengths += ~was_reset
            self.restarted = was_reset
            # A call that pressed FIRE after a lost life is part of the game, but not the agent's.
            was_reset = was_reset | np.asarray(info.get("fire_forced", False), bool)
        else:
            was_reset = self.restarted = self._prev_done
            self._returns += reward
            self._lengths += ~was_reset
            if done.any():
                for i in np.flatnonzero(done):
                    self.add_episode(float(self._returns[i]), int(self._lengths[i]))
                self._returns[done] = 0.0
                self._lengths[done] = 0
        self._prev_done = done
        self.obs = self.observation(obs)
        reward = self.normalizer.reward(reward.astype(np.float32), done)
        return self.obs, reward.astype(np.float32), np.asarray(terminated), np.asarray(truncated), was_reset

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
        self.env.close()
