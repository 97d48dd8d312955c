from __future__ import annotations

import numpy as np
import pytest

from kerasdojo import config, envs
from kerasdojo.envs.wrappers import RunningMeanStd, VecEnv
from kerasdojo.errors import DojoError


def test_check_env_on_our_test_env() -> None:
    from gymnasium.utils.env_checker import check_env

    from tests.envs.toy import Corridor

    check_env(Corridor(), skip_render_check=False)


def test_cartpole_uses_the_vectorised_implementation() -> None:
    env = envs.make_vec("CartPole-v1", 4, seed=0)
    assert type(env.env).__name__ == "CartPoleVectorEnv"
    assert env.obs.shape == (4, 4) and env.obs.dtype == np.float32
    env.close()


def test_next_step_autoreset_is_reported_and_stats_are_raw() -> None:
    env = envs.make_vec("CartPole-v1", 2, seed=0, env_kwargs={"max_episode_steps": 5}, normalize_reward=True)
    flags = []
    for _ in range(7):
        obs, reward, terminated, truncated, valid = env.step(np.zeros(2, np.int64))
        flags.append((bool(terminated[0] or truncated[0]), not bool(valid[0])))
    # step 5 ends the episode (truncated, or terminated by falling), step 6 is the ignored reset call
    assert flags[4][0] and flags[5] == (False, True) and not flags[6][1]
    assert list(env.episode_lengths) == [5, 5] and list(env.episode_returns) == [5.0, 5.0]
    assert env.stats()["rollout/ep_rew_mean"] == 5.0
    env.close()


def test_entry_point_class_and_factory_with_kwargs() -> None:
    for entry in ("tests.envs.toy:Corridor", "tests.envs.toy:make_corridor"):
        env = envs.make_vec(entry, 3, seed=1, env_kwargs={"length": 4})
        assert env.obs.shape == (3, 4)  # one-hot Discrete(4) observations
        assert np.allclose(env.obs.sum(axis=1), 1.0)
        obs, reward, *_ = env.step(np.ones(3, np.int64))  # index 1 -> env action 2 (start=1): right
        assert obs.shape == (3, 4)
        env.close()


def test_unknown_ids_suggest_close_ones() -> None:
    with pytest.raises(DojoError) as err:
        envs.resolve("CartPol-v1")
    assert "CartPole-v1" in err.value.hint
    with pytest.raises(DojoError, match="Cannot import"):
        envs.resolve("no_such_module:Env")
    with pytest.raises(DojoError, match="has no attribute"):
        envs.resolve("tests.envs.toy:Nope")


def test_bad_env_kwargs_are_one_line() -> None:
    with pytest.raises(DojoError, match="does not accept these --env-kwargs"):
        envs.make_vec("CartPole-v1", 1, env_kwargs={"gravity_scale": 2})


def test_missing_optional_extra_names_the_extra() -> None:
    try:
        import Box2D  # noqa: F401

        pytest.skip("Box2D is installed here")
    except ImportError:
        pass
    with pytest.raises(DojoError) as err:
        envs.make_vec("LunarLander-v3", 1)
    assert "box2d extra" in err.value.one_line() and "'.[box2d]'" in err.value.one_line()


def test_parse_env_kwargs_types() -> None:
    assert config.parse_kwargs(["a=1", "b=0.5", "c=true", "d=hello", "e=[1, 2]", "f=none"]) == {
        "a": 1,
        "b": 0.5,
        "c": True,
        "d": "hello",
        "e": [1, 2],
        "f": None,
    }
    with pytest.raises(DojoError, match="key=value"):
        config.parse_kwargs(["oops"])


def test_describe_cartpole() -> None:
    d = envs.describe("CartPole-v1")
    assert d["action space"] == "Discrete(2)"
    assert d["observation space"].startswith("Box(4,) float32 low=[-4.8, -inf, -0.419, -inf]")
    assert d["reward threshold"] == 475.0 and d["max episode steps"] == 500
    from kerasdojo.agents import fitting_agents

    assert set(fitting_agents(*envs.spaces_of("CartPole-v1"))) == {"ppo", "ppo_lstm", "dqn", "a2c", "random"}
    assert set(fitting_agents(*envs.spaces_of("Pendulum-v1"))) == {
        "ppo",
        "ppo_lstm",
        "a2c",
        "sac",
        "td3",
        "ddpg",
        "random",
    }
    assert "dqn" not in fitting_agents(*envs.spaces_of("Pendulum-v1"))


def test_list_envs_groups_and_filters() -> None:
    groups = envs.list_envs()
    assert "CartPole-v1" in groups["classic_control"]
    assert envs.list_envs("pendulum") and all(
        "pendulum" in i.lower() or "pendulum" in g.lower() for g, ids in envs.list_envs("pendulum").items() for i in ids
    )


def test_running_mean_std_matches_numpy() -> None:
    rng = np.random.default_rng(0)
    batches = [rng.normal(3, 2, (n, 3)) for n in (5, 17, 40)]
    rms = RunningMeanStd((3,), epsilon=0)
    for b in batches:
        rms.update(b.astype(np.float32))  # float32 batches, float64 statistics (as SB3's)
    allx = np.concatenate(batches).astype(np.float32).astype(np.float64)
    assert rms.mean.dtype == np.float64 and rms.var.dtype == np.float64
    np.testing.assert_allclose(rms.mean, allx.mean(0), atol=1e-10)
    np.testing.assert_allclose(rms.var, allx.var(0), atol=1e-10)


def test_normalizer_standardises_and_round_trips() -> None:
    def make(seed: int) -> VecEnv:
        return envs.make_vec("tests.envs.toy:Plane", 4, seed=seed, normalize_obs=True, normalize_reward=True)

    env = make(1)  # observations ~ 100 +- 10
    for _ in range(50):
        obs, *_ = env.step(np.zeros((4, 2), np.float32))
    assert obs.dtype == np.float32 and abs(obs.mean()) < 1.0 and np.all(np.abs(obs) <= 10)
    other = make(2)
    other.normalizer.load_state(env.normalizer.state())
    other.normalizer.training = env.normalizer.training = False
    np.testing.assert_array_equal(other.reset(seed=3), env.reset(seed=3))
    counts = other.normalizer.obs_rms.count, other.normalizer.ret_rms.count
    other.step(np.zeros((4, 2), np.float32))
    assert (other.normalizer.obs_rms.count, other.normalizer.ret_rms.count) == counts  # frozen when not training
    other.normalizer.training = True
    other.step(np.zeros((4, 2), np.float32))
    assert other.normalizer.obs_rms.count == counts[0] + 4 and other.normalizer.ret_rms.count == counts[1] + 4


def test_reward_scaling_is_sb3s() -> None:
    """SB3's VecNormalize, not Gymnasium's NormalizeReward: every call's reward (an autoreset call's
    0 too) is discounted into a float64 return, which joins the statistics and is then zeroed
    where an episode ended; the scaled reward is clipped to 10."""
    env = envs.make_vec("CartPole-v1", 2, seed=0, env_kwargs={"max_episode_steps": 5}, normalize_reward=True, gamma=0.9)
    ret, seen, scaled = np.zeros(2), [], []
    for _ in range(13):
        _, reward, terminated, truncated, valid = env.step(np.zeros(2, np.int64))
        ret = ret * 0.9 + np.where(valid, 1.0, 0.0)
        seen.append(ret.copy())
        ret[terminated | truncated] = 0.0
        scaled.append(reward)
    rms = env.normalizer.ret_rms
    assert rms.count == pytest.approx(26 + 1e-4)  # Gymnasium's (and SB3's) count starts at 1e-4
    np.testing.assert_allclose([rms.mean, rms.var], [np.mean(seen), np.var(seen)], rtol=1e-3)
    expected = np.where(~valid, 0.0, np.minimum(1 / np.sqrt(rms.var + 1e-8), 10.0))
    np.testing.assert_allclose(scaled[-1], expected, rtol=1e-6)


def test_box_actions_are_clipped_to_the_bounds() -> None:
    a, b = (envs.make_vec("Pendulum-v1", 2, seed=4) for _ in range(2))
    obs_a, *_ = a.step(np.array([[5.0], [-0.5]], np.float32))
    obs_b, *_ = b.step(np.array([[2.0], [-0.5]], np.float32))
    np.testing.assert_array_equal(obs_a, obs_b)
    assert a.single_action_space.high[0] == 2.0  # the env's own bounds, not ClipAction's infinite ones


def test_atari_statistics_count_whole_games_and_raw_scores() -> None:
    """The contract of AtariVec, faked without ale-py: a lost life terminates the training
    episode but the game goes on; ``reset_call`` marks the call that restarts a finished game and
    ``fire_forced`` the call that served after a lost life (the agent's action ignored in both)."""
    from tests.envs.toy import ScriptedGames

    env = VecEnv(ScriptedGames(), normalize_reward=True)
    env.reset(seed=0)
    dropped, restarts = [], []
    for _ in range(8):
        _, reward, terminated, truncated, valid = env.step(np.zeros(1, np.int64))
        dropped.append(not bool(valid[0]))
        restarts.append(not bool(env.in_episode[0]))
    # calls: 1 scores 3, 2 loses a life (terminated), 3 serves, 4 scores 2, 5 ends the game, 6 restarts it
    assert dropped == [False, False, True, False, False, True, False, False]
    assert restarts == [False, False, False, False, False, True, False, False]
    assert env.episodes == 1 and list(env.episode_returns) == [5.0] and list(env.episode_lengths) == [5]
    env.close()
