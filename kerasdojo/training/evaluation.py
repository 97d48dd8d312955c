"""Evaluation: exactly N episodes spread over a vector env, with the env's own rewards (greedy
actions, or sampled ones with their own seeded generator)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

MAX_EVAL_ENVS = 16
EVAL_MAX_EPISODE_STEPS = 100_000  # an env without a time limit counts as ended here


@dataclasses.dataclass(frozen=True)
class EvalResult:
    """Mean and spread of the returns of ``episodes`` evaluation episodes."""

    mean_reward: float
    std_reward: float
    mean_ep_length: float
    episodes: int
    success_rate: float | None = None  # where the env reports info["is_success"] at episode ends

    @classmethod
    def of(cls, returns: list[float], lengths: list[int], successes: list[bool] | None = None) -> EvalResult:
        nan = float("nan")
        return cls(
            mean_reward=float(np.mean(returns)) if returns else nan,
            std_reward=float(np.std(returns)) if returns else nan,
            mean_ep_length=float(np.mean(lengths)) if lengths else nan,
            episodes=len(returns),
            success_rate=float(np.mean(successes)) if successes else None,
        )

    def scalars(self) -> dict[str, float]:
        """SB3's TensorBoard tags for an evaluation (eval/success_rate where episodes report success)."""
        out = {
            "eval/mean_reward": self.mean_reward,
            "eval/std_reward": self.std_reward,
            "eval/mean_ep_length": self.mean_ep_length,
        }
        if self.success_rate is not None:
            out["eval/success_rate"] = self.success_rate
        return out

    def stored(self) -> dict[str, float | int]:
        """What eval.json keeps (success_rate only where episodes report success)."""
        out = dataclasses.asdict(self)
        if self.success_rate is None:
            del out["success_rate"]
        return out


def act(agent: Any, env: Any, obs: Any, deterministic: bool) -> Any:
    """``agent``'s actions for ``env``'s observations, legal ones where the env has masks (an agent
    for envs without masks needs only ``act(obs, deterministic)``)."""
    if env.action_mask is None:
        return agent.act(obs, deterministic)
    return agent.act(obs, deterministic, mask=env.action_mask)


class Actor:
    """Steps one vector env with ``agent``'s actions (:func:`act`), or for a recurrent agent (one with
    ``act_recurrent``) with its memory carried from step to step and zeroed where an episode
    starts. Make it right after the env's reset."""

    def __init__(self, agent: Any, env: Any) -> None:
        self.agent, self.env = agent, env
        self.recurrent = hasattr(agent, "act_recurrent")
        if self.recurrent:
            self.state = agent.initial_state(env.num_envs)
            self.starts = np.ones(env.num_envs, bool)

    def step(self, obs: Any, deterministic: bool) -> tuple[Any, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """One env step with the agent's actions for ``obs``; what ``env.step`` returns."""
        if not self.recurrent:
            return self.env.step(act(self.agent, self.env, obs, deterministic))
        mask = self.env.action_mask
        actions, self.state = self.agent.act_recurrent(obs, self.state, self.starts, deterministic, mask)
        result = self.env.step(actions)
        self.starts = ~self.env.in_episode  # after a reset call, the observation starts an episode
        return result


@contextmanager
def evaluation_rng(agent: Any, seed: int) -> Iterator[None]:
    """Sampled evaluation actions from a generator seeded with ``seed``, not the agent's own: an
    evaluation neither changes the training run nor depends on where it stands."""
    saved = getattr(agent, "rng", None)
    if saved is None:
        yield
        return
    agent.rng = np.random.default_rng(seed)
    try:
        yield
    finally:
        agent.rng = saved


def evaluate(
    agent: Any, env: Any, episodes: int, seed: int, deterministic: bool = True, stop: Callable[[], bool] | None = None
) -> tuple[list[float], list[int], list[bool]]:
    """Run exactly ``episodes`` episodes spread over the envs of ``env``; returns, lengths and the
    successes of those that reported ``info["is_success"]`` at their end.

    ``agent`` needs only ``act(obs, deterministic)`` (a recurrent one, ``act_recurrent``: see
    :class:`Actor`). The env is reset with ``seed`` first, so every evaluation of a run starts from the same initial
    states. Rewards are the env's own (no normalisation). ``stop()`` returning
    True ends the evaluation early (Ctrl-C), with fewer episodes.
    """
    with evaluation_rng(agent, seed):
        return _evaluate(agent, env, episodes, seed, deterministic, stop)


def _evaluate(
    agent: Any, env: Any, episodes: int, seed: int, deterministic: bool, stop: Callable[[], bool] | None
) -> tuple[list[float], list[int], list[bool]]:
    obs = env.reset(seed=seed)
    n = env.num_envs
    quota = np.array([episodes // n + (i < episodes % n) for i in range(n)])
    counts = np.zeros(n, np.int64)
    ep_return, ep_length = np.zeros(n), np.zeros(n, np.int64)
    returns: list[float] = []
    lengths: list[int] = []
    successes: list[bool] = []
    actor = Actor(agent, env)
    while (counts < quota).any():
        if stop is not None and stop():
            break
        obs, reward, terminated, truncated, _ = actor.step(obs, deterministic)
        # Whole games: a call the env played for the agent (Atari's FIRE after a lost life) counts.
        counts_in = env.in_episode
        ep_return += reward * counts_in
        ep_length += counts_in
        done = np.logical_or(terminated, truncated) | (ep_length >= EVAL_MAX_EPISODE_STEPS)
        success = getattr(env, "last_success", None)
        for i in np.flatnonzero(done & (counts < quota)):
            returns.append(float(ep_return[i]))
            lengths.append(int(ep_length[i]))
            if success is not None and not np.isnan(success[i]):
                successes.append(bool(success[i]))
            counts[i] += 1
        ep_return[done] = 0.0
        ep_length[done] = 0
    return returns, lengths, successes
