"""Observation and reward normalisation: SB3's VecNormalize conventions on Gymnasium's vector
wrappers, with one :class:`Normalizer` holding the statistics that are saved with the agent and
exported into ``policy.keras`` (per float leaf for nested observations)."""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium.vector import VectorEnv, VectorObservationWrapper
from gymnasium.wrappers import utils, vector


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
        leaves: dict[str, tuple[int, ...]] | None = None,
    ) -> None:
        """``leaves``: for nested observations, the float Box leaves to standardise (name: shape),
        each with its own statistics in ``leaf_rms``; ``obs_rms`` then goes unused."""
        self.norm_obs, self.norm_reward = obs, reward
        self.obs_rms = RunningMeanStd(obs_shape)
        self.leaf_rms = {name: RunningMeanStd(shape) for name, shape in (leaves or {}).items()}
        self.ret_rms = RunningMeanStd(())
        self.gamma, self.clip, self.epsilon = gamma, clip, epsilon
        self.training = True

    def _obs_stats(self) -> dict[str, RunningMeanStd]:
        """The observation statistics by their names in :meth:`state`: ``obs_`` or ``obs_<leaf>/``."""
        if self.leaf_rms:
            return {f"obs_{{}}/{name}": rms for name, rms in self.leaf_rms.items()}
        return {"obs_{}": self.obs_rms}

    def state(self) -> dict[str, np.ndarray]:
        state = {}
        for key, rms in {**self._obs_stats(), "ret_{}": self.ret_rms}.items():
            state.update(
                {key.format("mean"): rms.mean, key.format("var"): rms.var, key.format("count"): np.array(rms.count)}
            )
        return state

    def load_state(self, state: dict[str, np.ndarray]) -> None:
        for key, rms in {**self._obs_stats(), "ret_{}": self.ret_rms}.items():
            rms.mean, rms.var = state[key.format("mean")], state[key.format("var")]
            rms.count = float(state[key.format("count")])


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


class NormalizeLeaves(VectorObservationWrapper):
    """:class:`NormalizeObservation` for nested observations: each float Box leaf standardised
    with its own statistics (``Normalizer.leaf_rms``), the other leaves (images, codes) untouched."""

    def __init__(self, env: VectorEnv, normalizer: Normalizer) -> None:
        super().__init__(env)
        self.normalizer = normalizer

    def observations(self, observations: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        norm, out = self.normalizer, dict(observations)
        for name, rms in norm.leaf_rms.items():
            if norm.training:
                rms.update(out[name])
            scaled = (out[name] - rms.mean) / np.sqrt(rms.var + norm.epsilon)
            out[name] = np.clip(scaled, -norm.clip, norm.clip).astype(np.float32)
        return out


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
