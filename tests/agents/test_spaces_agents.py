"""Every agent on nested observations, MultiDiscrete/MultiBinary actions and invalid-action masks
(short runs through the command line; the learning tests are in test_learning.py)."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from gymnasium import spaces

from kerasdojo.runs import read_progress
from kerasdojo.training.session import open_run
from tests.agents.test_agents import FAST, runner, train
from tests.envs.spaces import LOW, MaskedEnv


class DictBoxEnv(gym.Env):
    """Dict observation (a vector and a one-hot phase), Box(-1, 1, (2,)) action: reward is minus
    the distance of the action from the vector's sign pattern. For SAC, TD3 and DDPG."""

    def __init__(self, length: int = 10) -> None:
        self.observation_space = spaces.Dict(
            {"target": spaces.Box(-1, 1, (2,), np.float32), "phase": spaces.Discrete(3)}
        )
        self.action_space = spaces.Box(-1, 1, (2,), np.float32)
        self.length, self.t = length, 0

    def _obs(self) -> dict:
        sign = self.np_random.choice([-1.0, 1.0], 2)
        self.target = (self.np_random.uniform(LOW, 1, 2) * sign).astype(np.float32)
        return {"target": self.target, "phase": int(self.t % 3)}

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return self._obs(), {}

    def step(self, action):
        reward = -float(np.abs(np.asarray(action) - np.sign(self.target)).sum())
        self.t += 1
        return self._obs(), reward, False, self.t >= self.length, {}


class WrongMaskEnv(MaskedEnv):
    """A mask one entry too long."""

    def _action_masks(self) -> np.ndarray:
        return np.ones(self.n_actions + 1, bool)


NESTED_ENVS = {
    "ppo": "tests.envs.spaces:DictImageEnv",
    "a2c": "tests.envs.spaces:TupleEnv",
    "dqn": "tests.envs.spaces:NestedDictEnv",
    **{name: "tests.agents.test_spaces_agents:DictBoxEnv" for name in ("sac", "td3", "ddpg")},
}


def _policy_matches_act(run) -> None:
    """policy.keras loads in plain Keras with one named input per leaf and gives the agent's greedy actions."""
    import keras

    from kerasdojo.envs import make_vec
    from kerasdojo.training.checkpoint import load_agent_state
    from kerasdojo.training.spec import build_agent

    _, spec, cfg = open_run(run)
    env = make_vec(spec.env_id, 4, seed=3)
    agent = build_agent(spec.agent, cfg, env, 0, acting_only=True)
    from kerasdojo.files import load_arrays

    arrays, meta = load_arrays(run / "agent.npz")
    load_agent_state(agent, arrays, meta, "agent.npz")
    policy = keras.models.load_model(run / "policy.keras")
    assert sorted(t.name for t in policy.inputs) == sorted(env.obs.keys())
    out = np.asarray(policy({k: np.asarray(v) for k, v in env.obs.items()}))
    greedy = agent.act(env.obs, deterministic=True)
    if spec.agent == "dqn":
        np.testing.assert_array_equal(out.argmax(axis=1), greedy)
    elif spec.agent in ("ppo", "a2c"):
        np.testing.assert_array_equal(out.argmax(axis=1), greedy)
    else:
        np.testing.assert_allclose(out, greedy, atol=1e-5)


@pytest.mark.parametrize("agent", [a if a == "ppo" else pytest.param(a, marks=pytest.mark.slow) for a in NESTED_ENVS])
def test_every_agent_trains_evaluates_and_exports_on_nested_observations(runs_dir, agent) -> None:
    run = train(runs_dir, NESTED_ENVS[agent], agent, 256)
    assert (run / "policy.keras").exists() and (run / "eval.json").exists()
    _policy_matches_act(run)
    resumed = runner.invoke(app_(), ["resume", str(run), "--steps", "384", "-q"])
    assert resumed.exit_code == 0, resumed.output
    evaluated = runner.invoke(app_(), ["eval", str(run), "--episodes", "2"])
    assert evaluated.exit_code == 0 and "±" in evaluated.output, evaluated.output


def app_():
    from kerasdojo.cli import app

    return app


@pytest.mark.parametrize(
    "env, agent, optimum",
    [
        ("tests.envs.spaces:MaskedEnv", "ppo", 10.0),
        ("tests.envs.spaces:MaskedEnv", "a2c", 10.0),
        ("tests.envs.spaces:MaskedEnv", "dqn", 10.0),
        ("tests.envs.spaces:MaskedEnv", "random", 10.0),
        ("tests.envs.spaces:MultiDiscreteMaskedEnv", "ppo", 20.0),
    ],
)
def test_with_masks_no_illegal_action_is_ever_taken(runs_dir, env, agent, optimum) -> None:
    """Every illegal action costs -1 (+1 for a legal one): with masks, every episode of training
    and evaluation earns exactly the optimum, from the first step, learnt or not."""
    kwargs = ["--env-kwargs", "mask_via=info"] if agent == "dqn" else []  # both conventions
    run = train(runs_dir, env, agent, 512, *kwargs)
    rows = read_progress(run / "progress.csv")
    means = [float(r["rollout/ep_rew_mean"]) for r in rows if r.get("rollout/ep_rew_mean")]
    evals = [float(r["eval/mean_reward"]) for r in rows if r.get("eval/mean_reward")]
    assert means and evals and set(means) == {optimum} and set(evals) == {optimum}


def test_use_masks_false_turns_them_off(runs_dir) -> None:
    run = train(runs_dir, "tests.envs.spaces:MaskedEnv", "ppo", 512, "--set", "use_masks=false")
    rows = read_progress(run / "progress.csv")
    assert max(float(r["rollout/ep_rew_mean"]) for r in rows if r.get("rollout/ep_rew_mean")) < 5.0


def test_a_mask_of_the_wrong_length_is_a_one_line_error(runs_dir) -> None:
    args = ["train", "tests.agents.test_spaces_agents:WrongMaskEnv", "--steps", "64", "--runs-dir", str(runs_dir)]
    result = runner.invoke(app_(), [*args, *FAST["ppo"]])
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.startswith("Error")]
    assert lines and "action mask has shape (6,)" in lines[0] and "needs 5 entries" in lines[0]


@pytest.mark.parametrize(
    "env, width",
    [("tests.envs.spaces:MultiDiscreteEnv", 6), ("tests.envs.spaces:MultiBinaryEnv", 4)],
)
@pytest.mark.parametrize("agent", ["ppo", pytest.param("a2c", marks=pytest.mark.slow)])
def test_multi_discrete_and_multi_binary_policies_return_logits_per_part(runs_dir, env, width, agent) -> None:
    import keras

    run = train(runs_dir, env, agent, 256)
    policy = keras.models.load_model(run / "policy.keras")
    assert policy.output_shape == (None, width)


def test_nested_normalisation_is_per_float_leaf_and_built_into_policy_keras(runs_dir) -> None:
    """normalize_obs standardises the float Box leaf alone (not the one-hot code nor the bits);
    policy.keras takes the raw leaves and gives the agent's greedy actions; a video records."""
    import keras

    from kerasdojo.envs import make_vec
    from kerasdojo.files import load_arrays
    from kerasdojo.training.checkpoint import load_agent_state, normalizer_arrays
    from kerasdojo.training.spec import build_agent

    run = train(runs_dir, "tests.envs.spaces:NestedDictEnv", "ppo", 256, "--set", "normalize_obs=true", "--video")
    assert (run / "videos").is_dir() and any((run / "videos").iterdir())
    _, spec, cfg = open_run(run)
    arrays, meta = load_arrays(run / "agent.npz")
    norm = normalizer_arrays(arrays)
    leaves = {k for k in norm if k.startswith("obs_")}
    assert leaves == {"obs_mean/agent.pos", "obs_var/agent.pos", "obs_count/agent.pos"}
    scaled = make_vec(spec.env_id, 8, seed=5, normalize_obs=True)
    scaled.normalizer.load_state(norm)
    scaled.normalizer.training = False
    scaled.reset(seed=5)
    raw = make_vec(spec.env_id, 8, seed=5)
    np.testing.assert_array_equal(scaled.obs["flags"], raw.obs["flags"])  # bits untouched
    assert not np.allclose(scaled.obs["agent.pos"], raw.obs["agent.pos"])
    agent = build_agent(spec.agent, cfg, scaled, 0, acting_only=True)
    load_agent_state(agent, arrays, meta, "agent.npz")
    policy = keras.models.load_model(run / "policy.keras")
    np.testing.assert_allclose(np.asarray(policy(raw.obs)), agent.forward(scaled.obs)[0], atol=1e-5)
