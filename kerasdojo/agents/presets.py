"""Tuned hyperparameters per (agent, environment), after RL Baselines3 Zoo.

Each preset overrides the agent's dataclass defaults; ``--config`` and
``--set`` override the preset. Sources: rl-baselines3-zoo ``hyperparams/ppo.yml``
and ``dqn.yml`` (``lin_X`` there is ``X`` with a linear schedule here). The Zoo
trains Pendulum-v1 PPO with gSDE, which kerasdojo does not have; its preset
here was tuned without it (see benchmarks/RESULTS.md).
"""

from __future__ import annotations

from typing import Any

PRESETS: dict[tuple[str, str], dict[str, Any]] = {
    # ------------------------------------------------------------------ PPO
    ("ppo", "CartPole-v1"): {
        # XLA gives no steps/s gain over this preset's short updates, and its compilation delays
        # the first solve (median 3.16 s vs 2.74 s over 5 seeds, benchmarks/RESULTS.md).
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
}


def preset(agent: str, env_id: str) -> dict[str, Any]:
    """The preset for ``(agent, env_id)``, or an empty dict."""
    return dict(PRESETS.get((agent, env_id), {}))


def envs_with_preset(agent: str) -> str:
    """The environments that have a preset for ``agent``, comma-separated."""
    return ", ".join(env for (name, env) in PRESETS if name == agent) or "none"
