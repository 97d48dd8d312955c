"""The space-test environments of tests/envs/spaces.py: Gymnasium's checker passes, the optimal
policy (reading the observation, info or mask) earns the optimum each docstring states, and a
random policy earns clearly less. Pure Gymnasium: no kerasdojo, a second or two in all."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from tests.envs import spaces as S

Policy = Callable[[gym.Env, Any, dict], Any]


def masked_choice(env: gym.Env, mask: np.ndarray) -> int:
    return int(np.flatnonzero(mask)[-1])  # any legal action will do


def md_masked_choice(env: gym.Env, obs: Any, info: dict) -> np.ndarray:
    mask, out, start = env.action_masks(), [], 0
    for n in env.action_space.nvec:
        out.append(np.flatnonzero(mask[start : start + n])[0])
        start += n
    return np.array(out, np.int64)


# name -> (factory, optimal policy, optimal return for length 10)
CASES: dict[str, tuple[Callable[[], gym.Env], Policy, float]] = {
    "dict_image": (S.DictImageEnv, lambda env, obs, info: S.DictImageEnv.optimal_action(obs), 10.0),
    "tuple": (S.TupleEnv, lambda env, obs, info: S.TupleEnv.optimal_action(obs), 10.0),
    "multi_discrete": (S.MultiDiscreteEnv, lambda env, obs, info: S.MultiDiscreteEnv.optimal_action(obs), 20.0),
    "multi_binary": (S.MultiBinaryEnv, lambda env, obs, info: S.MultiBinaryEnv.optimal_action(obs), 10.0),
    "masked_method": (
        lambda: S.MaskedEnv(mask_via="method"),
        lambda env, obs, info: masked_choice(env, env.action_masks()),
        10.0,
    ),
    "masked_info": (
        lambda: S.MaskedEnv(mask_via="info"),
        lambda env, obs, info: masked_choice(env, info["action_mask"].astype(bool)),
        10.0,
    ),
    "masked_info_8": (
        lambda: S.MaskedEnv(mask_via="info", n_actions=8),
        lambda env, obs, info: masked_choice(env, info["action_mask"].astype(bool)),
        10.0,
    ),
    "multi_discrete_masked": (S.MultiDiscreteMaskedEnv, md_masked_choice, 20.0),
    "text_dict": (S.TextDictEnv, lambda env, obs, info: S.TextDictEnv.optimal_action(obs), 10.0),
    "sequence_dict": (S.SequenceDictEnv, lambda env, obs, info: S.TextDictEnv.optimal_action(obs), 10.0),
    "nested_dict": (S.NestedDictEnv, lambda env, obs, info: S.NestedDictEnv.optimal_action(obs), 10.0),
}


def mean_return(env: gym.Env, policy: Policy, episodes: int, seed: int) -> float:
    returns = []
    for episode in range(episodes):
        obs, info = env.reset(seed=seed + episode)
        env.action_space.seed(seed + episode)
        total, steps, done = 0.0, 0, False
        while not done:
            obs, reward, terminated, truncated, info = env.step(policy(env, obs, info))
            assert env.observation_space.contains(obs)
            total, steps, done = total + reward, steps + 1, terminated or truncated
            assert not terminated
        assert steps == env.length
        returns.append(total)
    return float(np.mean(returns))


@pytest.mark.parametrize("name", list(CASES))
def test_gymnasium_check_env(name: str) -> None:
    factory, _, _ = CASES[name]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # its advice (e.g. on unbounded Sequence) is not a failure
        check_env(factory(), skip_render_check=True)


@pytest.mark.parametrize("name", list(CASES))
def test_optimal_policy_earns_the_optimum_and_random_clearly_less(name: str) -> None:
    factory, optimal, best = CASES[name]
    env = factory()
    assert mean_return(env, optimal, episodes=5, seed=0) == pytest.approx(best)
    random = mean_return(env, lambda env, obs, info: env.action_space.sample(), episodes=30, seed=100)
    assert random < 0.7 * best, random


@pytest.mark.parametrize("name", list(CASES))
def test_render_is_an_rgb_frame_and_episodes_are_seeded(name: str) -> None:
    factory, _, _ = CASES[name]
    env = factory()
    env.render_mode = "rgb_array"
    obs1, _ = env.reset(seed=7)
    frame = env.render()
    assert frame.dtype == np.uint8 and frame.ndim == 3 and frame.shape[2] == 3
    env.step(env.action_space.sample())
    assert env.render().shape == frame.shape
    obs2, _ = env.reset(seed=7)
    assert gym.utils.env_checker.data_equivalence(obs1, obs2)


def test_mask_conventions() -> None:
    method, info_env = S.MaskedEnv(mask_via="method"), S.MaskedEnv(mask_via="info")
    _, info = method.reset(seed=0)
    assert "action_mask" not in info
    mask = method.action_masks()
    assert mask.dtype == bool and mask.shape == (5,) and mask.any()
    assert not hasattr(info_env, "action_masks")
    _, info = info_env.reset(seed=0)
    assert info["action_mask"].dtype == np.int8 and info["action_mask"].shape == (5,)
    _, _, _, _, info = info_env.step(int(np.flatnonzero(info["action_mask"])[0]))
    assert info["action_mask"].dtype == np.int8 and info["action_mask"].any()
    md = S.MultiDiscreteMaskedEnv()
    md.reset(seed=0)
    mask = md.action_masks()
    assert mask.dtype == bool and mask.shape == (6,) and mask[:3].any() and mask[3:].any()
    with pytest.raises(ValueError):
        S.MaskedEnv(mask_via="nope")


def test_spaces_are_the_documented_ones() -> None:
    from gymnasium import spaces

    obs = S.DictImageEnv().observation_space
    assert obs["image"] == spaces.Box(0, 255, (36, 36, 1), np.uint8)
    assert obs["vector"] == spaces.Box(-1, 1, (2,), np.float32)
    assert isinstance(S.TupleEnv().observation_space, spaces.Tuple)
    assert S.MultiDiscreteEnv().action_space == spaces.MultiDiscrete([3, 3])
    assert S.MultiBinaryEnv().action_space == spaces.MultiBinary(4)
    assert isinstance(S.TextDictEnv().observation_space["mission"], spaces.Text)
    assert isinstance(S.SequenceDictEnv().observation_space["path"], spaces.Sequence)
    nested = S.NestedDictEnv().observation_space
    assert isinstance(nested["agent"], spaces.Dict) and nested["agent"]["dir"] == spaces.Discrete(4)
    assert S.DictImageEnv(length=3).length == 3
