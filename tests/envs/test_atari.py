"""The Atari preprocessing on real ALE games: ale-py's vector env as kerasdojo configures it,
against Gymnasium's AtariPreprocessing + FrameStackObservation on one env."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("ale_py")
pytest.importorskip("cv2")

from kerasdojo import envs  # noqa: E402
from kerasdojo.envs import atari  # noqa: E402


def spec(env_id: str):
    return envs.resolve(env_id)


@pytest.mark.parametrize("env_id", ["ALE/Breakout-v5", "ALE/Pong-v5"])
def test_vector_env_matches_the_gymnasium_reference(env_id: str) -> None:
    """Without sticky actions and no-ops both are deterministic: every frame stack (FIRE reset,
    skip 4 with max-pool, 84x84 gray, 4 frames), reward and episode end must agree exactly."""
    kwargs = {"repeat_action_probability": 0.0, "noop_max": 0}
    vec = atari.AtariVec(spec(env_id), 1, training=False, env_kwargs=kwargs)
    ref = atari.make_single(spec(env_id), kwargs)
    try:
        v_obs, _ = vec.reset(seed=0)
        r_obs, _ = ref.reset(seed=0)
        assert v_obs.shape == (1, 4, 84, 84) and v_obs.dtype == np.uint8
        assert r_obs.shape == (4, 84, 84) and r_obs.dtype == np.uint8
        np.testing.assert_array_equal(v_obs[0], r_obs)
        rng = np.random.default_rng(0)
        rewards = 0.0
        for _ in range(400):
            a = int(rng.integers(0, vec.single_action_space.n))
            v_obs, v_r, v_term, v_trunc, _ = vec.step(np.array([a]))
            r_obs, r_r, r_term, r_trunc, _ = ref.step(a)
            np.testing.assert_array_equal(v_obs[0], r_obs)
            assert v_r[0] == r_r and bool(v_term[0]) == r_term and bool(v_trunc[0]) == r_trunc
            rewards += abs(r_r)
            if r_term or r_trunc:
                break
        assert rewards > 0  # the comparison saw scoring frames
    finally:
        vec.close()
        ref.close()


def test_noop_resets_vary_the_start_and_fire_is_pressed_where_needed() -> None:
    def reset_frames(noop_max: int) -> set[int]:
        vec = atari.AtariVec(spec("ALE/Pong-v5"), 8, training=True, env_kwargs={"noop_max": noop_max})
        try:
            _, info = vec.reset(seed=0)
            return set(int(f) for f in info["episode_frame_number"])
        finally:
            vec.close()

    assert len(reset_frames(30)) > 2  # a random number of no-ops (4 frames each) per env
    assert len(reset_frames(0)) == 1
    import gymnasium as gym

    for env_id, fire in (("ALE/Breakout-v5", True), ("ALE/MsPacman-v5", False)):
        env = gym.make(env_id)
        assert atari.needs_fire(env) is fire
        env.close()


def test_life_loss_ends_training_episodes_but_not_evaluation_games() -> None:
    rng = np.random.default_rng(0)
    train = atari.AtariVec(spec("ALE/Breakout-v5"), 1, training=True)
    evaluation = atari.AtariVec(spec("ALE/Breakout-v5"), 1, training=False)
    try:
        train.reset(seed=0)
        lives, after_life_loss = [], []
        pending = False
        for _ in range(3000):
            _, _, term, trunc, info = train.step(rng.integers(0, 4, 1))
            if pending:
                after_life_loss.append((bool(info["reset_call"][0]), bool(info["fire_forced"][0])))
                pending = False
            if term[0]:
                lives.append(int(info["lives"][0]))
                if lives[-1] == 0:
                    break
                pending = True
        assert lives == [4, 3, 2, 1, 0]  # each lost life ends a training episode...
        # ...and the game plays on: the call after a lost life serves (FIRE), it is not a reset
        assert after_life_loss == [(False, True)] * 4

        evaluation.reset(seed=0)
        for _ in range(5000):
            _, _, term, trunc, info = evaluation.step(rng.integers(0, 4, 1))
            if term[0] or trunc[0]:
                break
        assert term[0] and int(info["lives"][0]) == 0  # evaluation episodes are whole games
    finally:
        train.close()
        evaluation.close()


def test_fire_is_pressed_after_a_lost_life_so_a_noop_agent_still_finishes_breakout() -> None:
    """SB3's FireResetEnv under EpisodicLifeEnv serves after every lost life. An agent that only
    ever plays NOOP would otherwise wait forever after its first lost life."""
    vec = atari.AtariVec(spec("ALE/Breakout-v5"), 1, training=False)
    ref = atari.make_single(spec("ALE/Breakout-v5"))
    try:
        vec.reset(seed=0)
        forced = 0
        for _ in range(3000):
            _, _, term, trunc, info = vec.step(np.zeros(1, np.int64))
            forced += int(info["fire_forced"][0])
            if term[0] or trunc[0]:
                break
        assert term[0] and int(info["lives"][0]) == 0 and forced == 4
        ref.reset(seed=0)
        for _ in range(3000):
            _, _, r_term, r_trunc, r_info = ref.step(0)
            if r_term or r_trunc:
                break
        assert r_term and r_info["lives"] == 0
        env = envs.make_vec("ALE/Breakout-v5", 1, seed=0, training=True)
        dropped, ended = 0, 0
        for _ in range(3000):
            _, _, term, _, valid = env.step(np.zeros(1, np.int64))
            dropped += int(not valid[0])
            ended += int(term[0])
            if env.episodes:
                break
        # the agent learns from neither the forced serves nor the restart; the statistics see one game
        assert ended == 5 and dropped == 5 and env.episodes == 1 and env.episode_lengths[0] > 5 * 20
        env.close()

        # Evaluation counts the served steps as part of the game, as the statistics do.
        from kerasdojo.training.evaluation import evaluate

        class Noop:
            def act(self, obs, deterministic):
                return np.zeros(len(obs), np.int64)

        env = envs.make_vec("ALE/Breakout-v5", 1, seed=0, training=False)
        lengths = evaluate(Noop(), env, 1, seed=0)[1]
        env.step(np.zeros(1, np.int64))  # the restart closes the game in the statistics
        assert list(env.episode_lengths) == lengths
        env.close()
    finally:
        vec.close()
        ref.close()


def test_rewards_are_clipped_for_training_and_raw_for_evaluation_and_statistics() -> None:
    """MsPacman scores 10 per pellet: training sees 1, the statistics and evaluation see 10."""
    rng = np.random.default_rng(0)
    train = envs.make_vec("ALE/MsPacman-v5", 2, seed=0, training=True)
    evaluation = envs.make_vec("ALE/MsPacman-v5", 2, seed=0, training=False)
    try:
        seen_train, seen_eval = set(), set()
        for _ in range(300):
            _, r, *_ = train.step(rng.integers(0, 9, 2))
            seen_train.update(np.unique(r).tolist())
            _, r, *_ = evaluation.step(rng.integers(0, 9, 2))
            seen_eval.update(np.unique(r).tolist())
        assert seen_train <= {-1.0, 0.0, 1.0} and 1.0 in seen_train
        assert max(seen_eval) >= 10
        assert train._stats.episode_returns.max() >= 10  # the running game score is raw
    finally:
        train.close()
        evaluation.close()


def test_statistics_count_whole_games_with_raw_scores() -> None:
    env = envs.make_vec("ALE/Breakout-v5", 1, seed=0, training=True, env_kwargs={"max_num_frames_per_episode": 2000})
    rng = np.random.default_rng(1)
    life_ends = 0
    try:
        while env.episodes == 0:
            _, _, term, trunc, valid = env.step(rng.integers(0, 4, 1))
            life_ends += int(term[0])
        assert life_ends >= 1 or trunc[0] or not valid[0]
        assert env.episodes == 1 and len(env.episode_lengths) == 1
        assert env.episode_lengths[0] > 20  # a whole game, not one life
    finally:
        env.close()


def test_raw_frames_with_the_wrapper_off_and_bad_kwargs_are_one_line() -> None:
    from kerasdojo.errors import DojoError

    raw = envs.make_vec("ALE/Pong-v5", 1, seed=0, atari_wrapper=False)
    try:
        assert raw.obs.shape == (1, 210, 160, 3) and raw.obs.dtype == np.uint8
    finally:
        raw.close()
    with pytest.raises(DojoError, match="does not accept these --env-kwargs: bogus"):
        envs.make_vec("ALE/Pong-v5", 1, env_kwargs={"bogus": 1})


def test_envs_atari_lists_the_games_and_describes_one() -> None:
    from typer.testing import CliRunner

    from kerasdojo.cli import app

    runner = CliRunner()
    listing = runner.invoke(app, ["envs", "atari"])
    assert listing.exit_code == 0
    assert "ALE/Breakout-v5" in listing.output and "ALE/MsPacman-v5" in listing.output
    assert "CartPole" not in listing.output
    described = runner.invoke(app, ["envs", "ALE/MsPacman-v5"], env={"COLUMNS": "200"})
    assert described.exit_code == 0, described.output
    assert "0 NOOP, 1 UP, 2 RIGHT" in described.output
    assert "repeat_action_probability=0.25" in described.output
    assert "Box(4, 84, 84) uint8" in described.output


def test_preprocessing_env_kwargs_pass_the_checks_before_training() -> None:
    obs_space, act_space = envs.spaces_of("ALE/Pong-v5", {"noop_max": 10, "stack_num": 2, "frameskip": 4})
    assert act_space.n == 6
    vec = envs.make_vec("ALE/Pong-v5", 1, seed=0, env_kwargs={"stack_num": 2, "screen_size": 64})
    try:
        assert vec.obs.shape == (1, 2, 64, 64)
    finally:
        vec.close()


def test_evaluation_samples_actions_on_atari_games_only() -> None:
    """RL Zoo's convention: a greedy agent can stall in an Atari game (never pressing FIRE after a
    lost life in Breakout), so evaluation samples there, and is greedy everywhere else."""
    assert envs.samples_in_evaluation("ALE/Breakout-v5")
    assert not envs.samples_in_evaluation("ALE/Breakout-v5", atari_wrapper=False)
    assert not envs.samples_in_evaluation("CartPole-v1")
