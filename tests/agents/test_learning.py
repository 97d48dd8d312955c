"""Learning tests (marked slow, run in CI): presets with a fixed seed must reach a reward threshold."""

from __future__ import annotations

import json

import numpy as np
import pytest

from kerasdojo.training.session import Session, TrainSpec, evaluate_run, start

pytestmark = pytest.mark.slow


def run_preset(runs_dir, env_id: str, agent: str, seed: int = 0, eval_every: int = 5000) -> Session:
    spec = TrainSpec(env_id, agent, seed=seed, eval_every=eval_every, eval_episodes=20, save_every=0)
    session = start(spec, runs_dir)
    session.train()
    return session


@pytest.mark.parametrize("agent", ["ppo", "dqn"])
def test_cartpole_preset_reaches_475(runs_dir, agent) -> None:
    session = run_preset(runs_dir, "CartPole-v1", agent)
    result = json.loads((session.run.path / "eval.json").read_text())
    # The 20-episode deterministic evaluation reaches 475 during training (kept as the best agent)...
    assert result["best_mean_reward"] >= 475, result
    best = evaluate_run(session.run.path, episodes=20, seed=123, best=True)
    assert best.result.mean_reward >= 475, best  # ...and the kept agent holds it on new episodes.
    if agent == "ppo":
        assert result["mean_reward"] >= 475, result  # PPO's final agent too


def test_pendulum_ppo_clearly_beats_random(runs_dir) -> None:
    random_session = start(
        TrainSpec("Pendulum-v1", "random", seed=0, total_steps=2000, eval_every=0, eval_episodes=20), runs_dir
    )
    random_score = random_session.train().eval.mean_reward
    ppo = run_preset(runs_dir, "Pendulum-v1", "ppo", eval_every=0)
    score = json.loads((ppo.run.path / "eval.json").read_text())["mean_reward"]
    assert random_score < -1000  # sanity: random swings lose about 1,200 per episode
    assert score > random_score + 600 and score > -400, (score, random_score)
    assert np.isfinite(score)


@pytest.mark.parametrize("agent", ["sac", "td3"])
def test_pendulum_off_policy_preset_reaches_minus_250(runs_dir, agent) -> None:
    """RL Zoo's Pendulum-v1 presets (20,000 steps; TD3 explores at random for the first 10,000),
    cut to keep CI short: SAC to 6,000 steps (seeds 0-4 reach -200 at 3,000-6,000, benchmarks/native.py),
    TD3 to 16,000 (seeds 0 and 1 reach -200 at 14,000, benchmarks/continuous.py)."""
    steps = 6000 if agent == "sac" else 16_000
    spec = TrainSpec("Pendulum-v1", agent, seed=0, total_steps=steps, eval_every=2000, eval_episodes=10, save_every=0)
    session = start(spec, runs_dir)
    session.train()
    result = json.loads((session.run.path / "eval.json").read_text())
    assert result["step"] == steps
    assert result["best_mean_reward"] >= -250, result
    assert result["mean_reward"] >= -400, result  # and the final agent has not fallen apart


def test_cartpole_a2c_preset_reaches_475(runs_dir) -> None:
    """RL Zoo's A2C CartPole-v1 preset; its 500,000-step budget cut to 100,000 to keep CI short
    (the seed reaches 500 after about 60,000 steps)."""
    spec = TrainSpec(
        "CartPole-v1", "a2c", seed=0, total_steps=100_000, eval_every=10_000, eval_episodes=20, save_every=0
    )
    session = start(spec, runs_dir)
    session.train()
    result = json.loads((session.run.path / "eval.json").read_text())
    assert result["best_mean_reward"] >= 475, result
    best = evaluate_run(session.run.path, episodes=20, seed=123, best=True)
    assert best.result.mean_reward >= 475, best


@pytest.mark.parametrize(
    ("env_id", "agent", "goal", "holds"), [("CartPole-v1", "ppo", 475, 475), ("Pendulum-v1", "ppo", -200, -250)]
)
def test_native_preset_reaches_goal_traced_once(runs_dir, env_id: str, agent: str, goal: float, holds: float) -> None:
    """--native: the preset, compiled end to end, reaches the goal on Gymnasium's own env, and
    the whole run is one XLA program (traced once)."""
    spec = TrainSpec(env_id, agent, seed=0, eval_every=5000, eval_episodes=20, save_every=0, native=True)
    session = start(spec, runs_dir)
    session.train()
    assert session.agent.traces == 1
    result = json.loads((session.run.path / "eval.json").read_text())
    assert result["best_mean_reward"] >= goal, result
    best = evaluate_run(session.run.path, episodes=20, seed=123, best=True)
    assert best.result.mean_reward >= holds, best  # on 20 new episodes


def test_native_dqn_cartpole_preset_reaches_475(runs_dir) -> None:
    spec = TrainSpec("CartPole-v1", "dqn", seed=0, eval_every=5000, eval_episodes=20, save_every=0, native=True)
    session = start(spec, runs_dir)
    session.train()
    assert session.agent.traces == 1
    result = json.loads((session.run.path / "eval.json").read_text())
    assert result["best_mean_reward"] >= 475, result


def test_native_sac_pendulum_preset_reaches_minus_200(runs_dir) -> None:
    """--native SAC: RL Zoo's Pendulum-v1 preset, acting, env steps, replay and updates compiled
    end to end, reaches -200 on Gymnasium's own env; the 20,000-step budget cut to 5,000 to keep
    CI short (seeds 0-4 got there at 4,000-5,000 steps in benchmarks/native.py)."""
    spec = TrainSpec(
        "Pendulum-v1", "sac", seed=0, total_steps=5000, eval_every=1000, eval_episodes=10, save_every=0, native=True
    )
    session = start(spec, runs_dir)
    session.train()
    assert session.agent.traces == 1
    result = json.loads((session.run.path / "eval.json").read_text())
    assert result["best_mean_reward"] >= -200, result
    best = evaluate_run(session.run.path, episodes=20, seed=123, best=True)
    assert best.result.mean_reward >= -250, best  # on 20 new episodes


def test_ppo_cnn_learns_to_reach_the_bright_square(runs_dir) -> None:
    """The CNN path end to end (uint8 frames, channels first, shared torso) on a pixel env the
    tests define: PPO must walk shortest paths to the target, i.e. reach the optimal return."""
    from tests.envs.pixels import ReachSquare

    spec = TrainSpec(
        "tests.envs.pixels:ReachSquare",
        "ppo",
        seed=0,
        total_steps=60_000,
        eval_every=0,
        eval_episodes=50,
        save_every=0,
        env_kwargs={"cells": 5},  # a 15x15 image
        overrides={
            "n_envs": 8,
            "n_steps": 128,
            "batch_size": 256,
            "n_epochs": 4,
            "learning_rate": 1e-3,
            "ent_coef": 0.01,
            "gamma": 0.95,
            "net_arch": (128,),
        },
    )
    session = start(spec, runs_dir)
    session.train()
    gaps = []
    for seed in range(100):  # new episodes, each against its own best return
        env = ReachSquare(cells=5)
        obs, info = env.reset(seed=1000 + seed)
        total, done = 0.0, False
        while not done:
            obs, reward, terminated, truncated, _ = env.step(int(session.agent.act(obs[None])[0]))
            total += reward
            done = terminated or truncated
        gaps.append(info["optimal_return"] - total)
    optimal = np.isclose(gaps, 0)
    print(f"optimal in {optimal.mean():.0%} of 100 episodes, mean gap {np.mean(gaps):.3f}")
    # Shortest paths nearly everywhere; a random walk reaches the square in 36% of episodes and
    # takes a shortest path in 7% (1,000 episodes).
    assert optimal.mean() >= 0.95 and np.mean(gaps) <= 0.1, gaps


# --------------------------------------------------------------------------- every space


@pytest.mark.parametrize(
    "env_name, optimum",
    [
        ("DictImageEnv", 10.0),  # a Dict of a 36x36 image (its cue) and a vector (the other half of the cue)
        ("TupleEnv", 10.0),
        ("NestedDictEnv", 10.0),
        ("MultiDiscreteEnv", 20.0),
        ("MultiBinaryEnv", 10.0),
    ],
)
def test_ppo_solves_the_spaces_beyond_box_and_discrete(runs_dir, env_name, optimum) -> None:
    """Each env pays for reading its whole observation (every leaf) or acting in every part."""
    spec = TrainSpec(
        f"tests.envs.spaces:{env_name}", "ppo", seed=0, total_steps=12_000, eval_every=0, eval_episodes=20, save_every=0
    )
    score = start(spec, runs_dir).train().eval.mean_reward
    assert score >= 0.95 * optimum, (env_name, score)


def test_ppo_reaches_minigrid_empty_5x5_from_its_dict_observation(runs_dir) -> None:
    """MiniGrid's raw observation: image (7x7x3 codes), direction, and the mission (Text, left out)."""
    spec = TrainSpec("MiniGrid-Empty-5x5-v0", "ppo", seed=0, total_steps=20_000, eval_every=0, save_every=0)
    session = start(spec, runs_dir)
    assert any("mission" in note for note in session.agent.notes)
    assert session.train().eval.mean_reward >= 0.9


def test_taxi_ppo_with_its_masks_and_without(runs_dir) -> None:
    """Taxi-v4 gives the legal actions in info['action_mask']: with them PPO delivers passengers,
    without them the same 100,000 steps stay at the -200 time limit. Judged on sampled actions:
    at this budget the greedy policy of some seeds still loops in a state or two (seeds 0-3,
    greedy: -1.85, 8.1, -116.85, -2.45; sampled, seeds 0 and 2: 7.7 and 2.85, no episode timed out)."""
    scores = {}
    for masks in (True, False):
        spec = TrainSpec(
            "Taxi-v4",
            "ppo",
            seed=0,
            total_steps=100_000,
            eval_every=0,
            eval_episodes=1,
            save_every=0,
            overrides={"use_masks": masks},
        )
        run = start(spec, runs_dir).train().run_dir
        scores[masks] = evaluate_run(run, episodes=20, deterministic=False).result.mean_reward
    assert scores[True] >= 0.0 and scores[False] < 0, scores
