"""--native SAC, TD3 and DDPG: collection, replay and gradient steps compiled end to end on the
TensorFlow-native Pendulum (short runs; the learning test is in test_learning.py)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from kerasdojo import agents, backend
from kerasdojo.envs.native.vector import NativeVecEnv
from kerasdojo.errors import Interrupted
from kerasdojo.files import load_arrays
from kerasdojo.runs import read_progress
from kerasdojo.training.session import TrainSpec, evaluate_run, resume, start
from tests.agents.test_agents import press_ctrl_c_at

SMALL = {"net_arch": (32, 32), "learning_starts": 200, "batch_size": 32, "buffer_size": 5000}
KINDS = {
    "sac": {},
    "td3": {"noise_type": "ornstein-uhlenbeck", "lr_schedule": "linear"},
    "ddpg": {"train_freq": 4, "gradient_steps": 2},
}


def spec(agent: str, steps: int, seed: int = 0) -> TrainSpec:
    return TrainSpec(
        "Pendulum-v1",
        agent,
        seed=seed,
        total_steps=steps,
        eval_every=steps // 2,
        eval_episodes=2,
        save_every=steps // 2,
        native=True,
        overrides={**SMALL, **KINDS[agent]},
    )


@pytest.mark.parametrize("agent", ["sac", "ddpg"])  # TD3 (OU noise, linear rate): the resume test below
def test_native_offpolicy_run_is_a_whole_run_traced_once(runs_dir, agent: str) -> None:
    session = start(spec(agent, 1300), runs_dir)
    summary = session.train()
    run = summary.run_dir
    assert session.agent.traces == 1  # one XLA program for the whole run, the last shorter call included
    assert summary.steps == 1300  # whole calls of up to 500 steps, the last one cut to what is left
    assert json.loads((run / "config.json").read_text())["native"] is True
    rows = read_progress(run / "progress.csv")
    assert int(rows[-1]["time/total_timesteps"]) == 1300
    assert session.env.episodes == 6 and list(session.env.episode_lengths) == [200] * 6  # Pendulum's episodes
    returns = [float(r["rollout/ep_rew_mean"]) for r in rows if r.get("rollout/ep_rew_mean")]
    assert returns and all(-2000 < x < 0 for x in returns)
    losses = [float(r["train/critic_loss"]) for r in rows]
    assert np.all(np.isfinite(losses))
    actor_losses = [r.get("train/actor_loss") for r in rows]
    assert all(x not in (None, "") and np.isfinite(float(x)) for x in actor_losses)  # every call moved the actor
    n_grad = (1300 - 200) // KINDS[agent].get("train_freq", 1) * KINDS[agent].get("gradient_steps", 1)
    assert int(float(rows[-1]["train/n_updates"])) == session.agent.n_updates == n_grad
    assert int(session.agent.replay.size.numpy()) == 1300  # every transition went into the TF buffer
    assert [r for r in rows if r.get("eval/mean_reward")]  # evaluated on Gymnasium's env
    keras = backend.keras()
    policy = keras.models.load_model(run / "policy.keras")
    obs = np.random.default_rng(0).normal(size=(5, 3)).astype(np.float32)
    np.testing.assert_allclose(policy(obs).numpy(), session.agent.act(obs), atol=1e-5)
    assert evaluate_run(run, episodes=2).result.episodes == 2  # a plain agent loads it


def test_native_offpolicy_resume_continues_with_the_replay(runs_dir) -> None:
    session = start(spec("td3", 2000, seed=3), runs_dir)
    press_ctrl_c_at(session, 400)  # the call ends at 500, 100 steps into an episode
    with pytest.raises(Interrupted):
        session.train()
    run = session.run.path
    ((step, ckpt),) = session.run.checkpoints()
    arrays, meta = load_arrays(ckpt)
    assert step == 500 and int(meta["replay/size"]) == step
    assert arrays["noise/ou"].shape == (1, 1) and np.all(arrays["noise/ou"] != 0)  # mid-episode noise
    resumed = resume(run)
    np.testing.assert_array_equal(resumed.agent.ou.numpy(), arrays["noise/ou"])
    summary = resumed.train()
    assert summary.steps == 2000
    rows = read_progress(run / "progress.csv")
    steps = [int(r["time/total_timesteps"]) for r in rows]
    assert steps == sorted(steps) and steps[-1] == 2000 and len(set(steps)) == len(steps)
    assert resumed.agent.n_updates == 2000 - 200 > int(meta["n_updates"]) > 0  # counts on from the checkpoint
    # The saved transitions went back into the TF buffer and stayed there, the new ones after them.
    kept = resumed.agent.replay.vars["obs"].numpy()[:step]
    np.testing.assert_array_equal(kept, arrays["replay/obs"][:step])
    assert int(resumed.agent.replay.size.numpy()) == 2000


def one_step_each(name: str):
    """The native agent's first env step and gradient step (learning_starts 0, one env, batch of
    one: the minibatch is the one stored transition), and a plain agent with the same initial
    weights and the same TF random stream that has not stepped."""
    cfg = {"net_arch": (16, 16), "learning_starts": 0, "batch_size": 1, "buffer_size": 8, "n_envs": 1}
    info = agents.get(name)
    env = NativeVecEnv("Pendulum-v1", 1, seed=0)
    native = info.load(native=True)(info.load().Config(**cfg), env.obs_spec, env.single_action_space, 0)
    plain = info.load()(info.load().Config(**cfg), env.obs_spec, env.single_action_space, 1)
    for key, model in native.networks().items():
        plain.networks()[key].set_weights(model.get_weights())
    tf = backend.tf()
    native.tf_rng.reset_from_seed(7)
    plain.tf_rng.reset_from_seed(7)
    native.begin(env)
    state = env.state.numpy()[0].copy()  # Pendulum's (theta, theta_dot) before the step
    native.learn(env, 0, 1)
    return native, plain, tf, state


def stored(native) -> list[np.ndarray]:
    """The one stored transition as a minibatch of one (arrays shaped (1, 1, ...))."""
    r = native.replay.vars
    return [r[k].numpy()[:1][None] for k in ("obs", "actions", "rewards", "next_obs", "terminated")]


def check_transition(batch: list[np.ndarray], state: np.ndarray, action: np.ndarray) -> None:
    """The stored transition is Gymnasium's Pendulum step from ``state`` with ``action`` (in [-1, 1],
    scaled to the bounds [-2, 2]), the action stored unscaled."""
    import gymnasium as gym

    np.testing.assert_allclose(batch[1][0, 0], action, rtol=1e-5, atol=1e-6)  # XLA-fused vs eager actor
    env = gym.make("Pendulum-v1")
    env.reset(seed=0)
    env.unwrapped.state = state.astype(np.float64)
    obs = np.array([np.cos(state[0]), np.sin(state[0]), state[1]], np.float32)
    next_obs, reward, terminated, truncated, _ = env.step(2.0 * action)
    np.testing.assert_allclose(batch[0][0, 0], obs, atol=1e-6)
    np.testing.assert_allclose(batch[3][0, 0], next_obs, atol=1e-5)
    np.testing.assert_allclose(batch[2][0, 0], reward, rtol=1e-5)
    assert batch[4][0, 0] == float(terminated) == 0.0 and not truncated


def assert_same_networks(native, plain) -> None:
    """Every weight of every network (actor, critics, their targets) equal, rtol 1e-5."""
    for key, model in native.networks().items():
        for a, b in zip(model.get_weights(), plain.networks()[key].get_weights(), strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6, err_msg=key)


def test_native_sac_update_matches_the_gymnasium_path_update() -> None:
    native, plain, tf, state = one_step_each("sac")
    batch = stored(native)
    # The draws the native step made before its update: the uniform action, the policy's
    # action (both computed; learning_starts 0 takes the policy's), the minibatch row.
    plain.tf_rng.uniform([1, 1], -1.0, 1.0)
    out = plain.actor(batch[0][0])
    # Drawn under XLA as the native step draws it (XLA's normal sampler is not the eager kernel's).
    sample = tf.function(lambda: plain.dist.tf_sample(out[:, :1], out[:, 1:], plain.tf_rng)[0], jit_compile=True)
    action = sample().numpy()[0]
    check_transition(batch, state, action)
    plain.tf_rng.uniform([1, 1], maxval=1, dtype=tf.int32)
    plain._train(*batch, np.int64(0), batch[0][0])
    assert_same_networks(native, plain)
    np.testing.assert_allclose(native.log_ent_coef.numpy(), plain.log_ent_coef.numpy(), rtol=1e-6)
    assert native.n_updates == 1


@pytest.mark.parametrize("name", ["td3", "ddpg"])
def test_native_td3_update_matches_the_gymnasium_path_update(name: str) -> None:
    native, plain, tf, state = one_step_each(name)
    batch = stored(native)
    plain.tf_rng.uniform([1, 1], -1.0, 1.0)
    noise = tf.function(lambda: plain.tf_rng.normal([1, 1]), jit_compile=True)().numpy()  # exploration, under XLA
    action = np.clip(plain.actor(batch[0][0]).numpy() + 0.1 * noise, -1.0, 1.0)[0]
    check_transition(batch, state, action)
    plain.tf_rng.uniform([1, 1], maxval=1, dtype=tf.int32)
    # One step: TD3's actor waits for the second (policy_delay 2), DDPG's moves at once.
    plain._train(*batch, np.int64(0), batch[0][0])
    assert_same_networks(native, plain)
    moved = not np.allclose(native.actor.get_weights()[0], native.actor_target.get_weights()[0])
    assert moved == (name == "ddpg")
