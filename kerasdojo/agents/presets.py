"""Tuned hyperparameters per (agent, environment), after RL Baselines3 Zoo.

Each preset overrides the agent's dataclass defaults; ``--config`` and
``--set`` override the preset. Sources: rl-baselines3-zoo ``hyperparams/ppo.yml``,
``dqn.yml``, ``a2c.yml``, ``sac.yml``, ``td3.yml`` and ``tqc.yml`` (``lin_X`` there is ``X``
with a linear schedule here; ``normalize: true`` is ``normalize_obs`` and
``normalize_reward``; the Zoo's MuJoCo entries name v3/v4 envs, used here for
v5). kerasdojo has no gSDE (generalised state-dependent exploration): where the
Zoo uses it (PPO Pendulum, A2C on continuous envs, SAC on MountainCarContinuous
and BipedalWalker) the preset keeps the rest of the Zoo's values and plain
Gaussian exploration; PPO's Pendulum preset was tuned without it (see
benchmarks/RESULTS.md).
"""

from __future__ import annotations

from typing import Any

from kerasdojo.agents.presets_recurrent import ATARI_RECURRENT, RECURRENT_PRESETS

# The Zoo's hindsight replay for goal envs: HerReplayBuffer(goal_selection_strategy="future", n_sampled_goal=4).
HER = {"her": True, "her_goal_selection": "future", "her_n_sampled_goal": 4}

PRESETS: dict[tuple[str, str], dict[str, Any]] = {
    # ------------------------------------------------------------------ PPO
    ("ppo", "CartPole-v1"): {
        # XLA gives no steps/s gain over this preset's short updates, and its compilation delays
        # the first solve (benchmarks/RESULTS.md, "PPO and XLA").
        "jit_compile": False,
        "n_envs": 8,
        "total_steps": 100_000,
        "n_steps": 32,
        "batch_size": 256,
        "gae_lambda": 0.8,
        "gamma": 0.98,
        "n_epochs": 20,
        "ent_coef": 0.0,
        "learning_rate": 1e-3,
        "lr_schedule": "linear",
        "clip_range": 0.2,
        "clip_schedule": "linear",
    },
    ("ppo", "Acrobot-v1"): {
        "normalize_obs": True,
        "normalize_reward": True,
        "n_envs": 16,
        "total_steps": 1_000_000,
        "n_steps": 256,
        "gae_lambda": 0.94,
        "gamma": 0.99,
        "n_epochs": 4,
        "ent_coef": 0.0,
    },
    ("ppo", "MountainCar-v0"): {
        "normalize_obs": True,
        "normalize_reward": True,
        "n_envs": 16,
        "total_steps": 1_000_000,
        "n_steps": 16,
        "gae_lambda": 0.98,
        "gamma": 0.99,
        "n_epochs": 4,
        "ent_coef": 0.0,
    },
    ("ppo", "Pendulum-v1"): {
        "n_envs": 4,
        "total_steps": 100_000,
        "n_steps": 1024,
        "gae_lambda": 0.95,
        "gamma": 0.9,
        "n_epochs": 10,
        "ent_coef": 0.0,
        "learning_rate": 1e-3,
        "clip_range": 0.2,
    },
    ("ppo", "LunarLander-v3"): {
        "n_envs": 16,
        "total_steps": 1_000_000,
        "n_steps": 1024,
        "batch_size": 64,
        "gae_lambda": 0.98,
        "gamma": 0.999,
        "n_epochs": 4,
        "ent_coef": 0.01,
    },
    # ------------------------------------------------------------------ DQN
    ("dqn", "CartPole-v1"): {
        "total_steps": 50_000,
        "learning_rate": 2.3e-3,
        "batch_size": 64,
        "buffer_size": 100_000,
        "learning_starts": 1000,
        "gamma": 0.99,
        "target_update_interval": 10,
        "train_freq": 256,
        "gradient_steps": 128,
        "exploration_fraction": 0.16,
        "exploration_final_eps": 0.04,
        "net_arch": (256, 256),
        # The 128 gradient steps run beside the next 256 env steps: 3,123 steps/s against 2,540,
        # the same median step to a 475 evaluation over 5 seeds (benchmarks/RESULTS.md).
        "overlap_update": True,
    },
    # Taxi-v4 (Gymnasium's Taxi, whose info gives an action mask): kerasdojo's own, the Zoo has none;
    # with its masks it reaches the optimum (about 8) in 60,000 steps, without them it stays at -200.
    ("dqn", "Taxi-v4"): {
        "total_steps": 60_000,
        "learning_rate": 1e-3,
        "batch_size": 64,
        "buffer_size": 50_000,
        "learning_starts": 1000,
        "target_update_interval": 1000,
        "train_freq": 4,
        "exploration_fraction": 0.4,
    },
    ("dqn", "Acrobot-v1"): {
        "total_steps": 100_000,
        "learning_rate": 6.3e-4,
        "batch_size": 128,
        "buffer_size": 50_000,
        "learning_starts": 0,
        "gamma": 0.99,
        "target_update_interval": 250,
        "train_freq": 4,
        "gradient_steps": -1,
        "exploration_fraction": 0.12,
        "exploration_final_eps": 0.1,
        "net_arch": (256, 256),
    },
    ("dqn", "MountainCar-v0"): {
        "total_steps": 120_000,
        "learning_rate": 4e-3,
        "batch_size": 128,
        "buffer_size": 10_000,
        "learning_starts": 1000,
        "gamma": 0.98,
        "target_update_interval": 600,
        "train_freq": 16,
        "gradient_steps": 8,
        "exploration_fraction": 0.2,
        "exploration_final_eps": 0.07,
        "net_arch": (256, 256),
    },
    ("dqn", "LunarLander-v3"): {
        "total_steps": 100_000,
        "learning_rate": 6.3e-4,
        "batch_size": 128,
        "buffer_size": 50_000,
        "learning_starts": 0,
        "gamma": 0.99,
        "target_update_interval": 250,
        "train_freq": 4,
        "gradient_steps": -1,
        "exploration_fraction": 0.12,
        "exploration_final_eps": 0.1,
        "net_arch": (256, 256),
    },
    # ------------------------------------------------------------------ A2C (SB3 defaults: n_steps 5, RMSprop)
    ("a2c", "CartPole-v1"): {"n_envs": 8, "total_steps": 500_000, "ent_coef": 0.0},
    ("a2c", "Acrobot-v1"): {
        "normalize_obs": True,
        "normalize_reward": True,
        "n_envs": 16,
        "total_steps": 500_000,
        "ent_coef": 0.0,
    },
    ("a2c", "LunarLander-v3"): {
        "n_envs": 8,
        "total_steps": 200_000,
        "gamma": 0.995,
        "n_steps": 5,
        "learning_rate": 8.3e-4,
        "lr_schedule": "linear",
        "ent_coef": 1e-5,
    },
    **{
        ("a2c", env): {
            "normalize_obs": True,
            "normalize_reward": True,
            "n_envs": n_envs,
            "total_steps": steps,
            "ent_coef": 0.0,
            "max_grad_norm": 0.5,
            "n_steps": 8,
            "gae_lambda": 0.9,
            "vf_coef": 0.4,
            "gamma": gamma,
            "normalize_advantage": False,
            "learning_rate": lr,
            "lr_schedule": "linear",
            "log_std_init": -2.0,
            "ortho_init": False,
        }
        for env, n_envs, steps, gamma, lr in (
            ("Pendulum-v1", 8, 1_000_000, 0.9, 7e-4),
            ("LunarLanderContinuous-v3", 4, 5_000_000, 0.99, 7e-4),
            ("BipedalWalker-v3", 16, 5_000_000, 0.99, 9.6e-4),
        )
    },
    ("a2c", "MountainCarContinuous-v0"): {
        "normalize_obs": True,
        "normalize_reward": True,
        "n_envs": 4,
        "n_steps": 100,
        "total_steps": 100_000,
        "ent_coef": 0.0,
        "log_std_init": 0.0,
        "ortho_init": False,
    },
    **{
        ("a2c", env): {"normalize_obs": True, "normalize_reward": True, "total_steps": 1_000_000}
        for env in ("HalfCheetah-v5", "Hopper-v5")
    },
    # ------------------------------------------------------------------ SAC (SB3 defaults: 256x256, tau 0.005)
    ("sac", "Pendulum-v1"): {"total_steps": 20_000, "learning_rate": 1e-3},
    ("sac", "MountainCarContinuous-v0"): {
        "total_steps": 50_000,
        "learning_rate": 3e-4,
        "buffer_size": 50_000,
        "batch_size": 512,
        "ent_coef": "0.1",
        "train_freq": 32,
        "gradient_steps": 32,
        "gamma": 0.9999,
        "tau": 0.01,
        "learning_starts": 0,
        "net_arch": (64, 64),
    },
    ("sac", "LunarLanderContinuous-v3"): {
        "total_steps": 500_000,
        "batch_size": 256,
        "learning_rate": 7.3e-4,
        "lr_schedule": "linear",
        "buffer_size": 1_000_000,
        "gamma": 0.99,
        "tau": 0.01,
        "learning_starts": 10_000,
        "net_arch": (400, 300),
    },
    ("sac", "BipedalWalker-v3"): {
        "total_steps": 500_000,
        "learning_rate": 7.3e-4,
        "buffer_size": 300_000,
        "batch_size": 256,
        "gamma": 0.98,
        "tau": 0.02,
        "train_freq": 64,
        "gradient_steps": 64,
        "learning_starts": 10_000,
        "net_arch": (400, 300),
    },
    **{("sac", env): {"total_steps": 1_000_000, "learning_starts": 10_000} for env in ("HalfCheetah-v5", "Hopper-v5")},
    # Gymnasium-Robotics' Fetch tasks with hindsight replay (the Zoo names v1 ids, v4 here). FetchReach:
    # sac.yml's entry, less its normalize: true (off-policy agents here replay raw observations).
    ("sac", "FetchReach-v4"): {
        **HER,
        "total_steps": 20_000,
        "buffer_size": 1_000_000,
        "batch_size": 256,
        "gamma": 0.95,
        "learning_rate": 1e-3,
        "learning_starts": 1000,
        "net_arch": (64, 64),
    },
    # sac.yml has no other Fetch entry: tqc.yml's shared one (TQC is SAC with distributional critics,
    # two of them here too), which neither sets learning_starts nor normalizes.
    **{
        ("sac", env): {
            **HER,
            "total_steps": steps,
            "buffer_size": 1_000_000,
            "batch_size": 2048,
            "gamma": 0.95,
            "learning_rate": 1e-3,
            "tau": 0.05,
            "net_arch": (512, 512, 512),
        }
        for env, steps in (
            ("FetchPush-v4", 1_000_000),
            ("FetchSlide-v4", 3_000_000),
            ("FetchPickAndPlace-v4", 1_000_000),
        )
    },
    # ------------------------------------------------------------------ TD3 (SB3 defaults: 400x300, delay 2)
    ("td3", "Pendulum-v1"): {
        "total_steps": 20_000,
        "gamma": 0.98,
        "buffer_size": 200_000,
        "learning_starts": 10_000,
        "noise_type": "normal",
        "noise_std": 0.1,
        "learning_rate": 1e-3,
    },
    ("td3", "MountainCarContinuous-v0"): {
        "total_steps": 300_000,
        "noise_type": "ornstein-uhlenbeck",
        "noise_std": 0.5,
    },
    **{
        ("td3", env): {
            "total_steps": steps,
            "gamma": 0.98,
            "buffer_size": 200_000,
            "learning_starts": 10_000,
            "noise_type": "normal",
            "noise_std": 0.1,
            "learning_rate": 1e-3,
        }
        for env, steps in (("LunarLanderContinuous-v3", 300_000), ("BipedalWalker-v3", 1_000_000))
    },
    **{
        ("td3", env): {"total_steps": 1_000_000, "learning_starts": 10_000, "noise_type": "normal", "noise_std": 0.1}
        for env in ("HalfCheetah-v5", "Hopper-v5")
    },
}


# Atari (ALE ids): the Zoo has one entry per algorithm, "atari", for every game (with AtariWrapper
# and a stack of 4 frames, here the default preprocessing). Pong, Breakout and MsPacman are named
# with it; any other ALE id gets it too (ATARI_PRESETS). The Nature CNN's 512 features are
# net_arch=(512,); SB3's CnnPolicy shares the CNN between policy and value, as kerasdojo does on
# images. The Zoo's budget is 10M steps.
ATARI_PRESETS: dict[str, dict[str, Any]] = {
    "ppo": {
        "n_envs": 8,
        "total_steps": 10_000_000,
        "net_arch": (512,),
        "n_steps": 128,
        "n_epochs": 4,
        "batch_size": 256,
        "learning_rate": 2.5e-4,
        "lr_schedule": "linear",
        "clip_range": 0.1,
        "clip_schedule": "linear",
        "vf_coef": 0.5,
        "ent_coef": 0.01,
    },
    "dqn": {
        "n_envs": 1,
        "total_steps": 10_000_000,
        "net_arch": (512,),
        "buffer_size": 100_000,
        "learning_rate": 1e-4,
        "batch_size": 32,
        "learning_starts": 100_000,
        "target_update_interval": 1000,
        "train_freq": 4,
        "gradient_steps": 1,
        "exploration_fraction": 0.1,
        "exploration_final_eps": 0.01,
        "double_q": False,  # SB3's DQN, which the Zoo tuned, has no double Q-learning
        "optimize_memory_usage": True,  # the Zoo keeps it off for SB3's timeout handling; ours needs none
        "overlap_update": True,  # the gradient step runs beside the next 4 env steps (acting as in SB3's order)
    },
}
ATARI_PRESETS["ppo_lstm"] = ATARI_RECURRENT
PRESETS.update(RECURRENT_PRESETS)
ATARI_GAMES = ("ALE/Pong-v5", "ALE/Breakout-v5", "ALE/MsPacman-v5")
for _agent, _values in ATARI_PRESETS.items():
    for _env in ATARI_GAMES:
        PRESETS[(_agent, _env)] = dict(_values)


def _is_ale(env_id: str) -> bool:
    try:
        from kerasdojo.envs import atari, resolve

        return atari.is_atari(resolve(env_id))
    except Exception:  # unknown ids, ale-py missing: no Atari preset
        return False


def preset(agent: str, env_id: str) -> dict[str, Any]:
    """The preset for ``(agent, env_id)``, the generic Atari one for other ALE ids, or an empty dict."""
    if (agent, env_id) in PRESETS:
        return dict(PRESETS[(agent, env_id)])
    if agent in ATARI_PRESETS and _is_ale(env_id):
        return dict(ATARI_PRESETS[agent])
    return {}


def envs_with_preset(agent: str) -> str:
    """The environments that have a preset for ``agent``, comma-separated."""
    names = [env for (name, env) in PRESETS if name == agent]
    if agent in ATARI_PRESETS:
        names.append("any other ALE/...-v5 game (the generic Atari preset)")
    return ", ".join(names) or "none"
