"""Dict observations and action masks: kerasdojo PPO beside Stable-Baselines3 / sb3-contrib.

Three pairs, in one run on one machine, at the same step budget, seeds and hyperparameters
(kerasdojo gets them as ``--set`` overrides, so its presets play no part):

- ``dictimage``: ``tests.envs.spaces:DictImageEnv`` (Dict of a 36x36x1 uint8 image and a
  2-vector; both are needed; optimum 10 per episode, 2.5 for a random policy). SB3: ``PPO``
  with ``MultiInputPolicy`` on the raw env (its CombinedExtractor puts the image through
  NatureCNN, which fits 36x36, and flattens the vector).
- ``minigrid``: ``MiniGrid-Empty-5x5-v0`` (``import minigrid`` registers it): a Dict of
  ``image`` (7x7x3 uint8 of object/colour/state codes), ``direction`` (Discrete(4)) and
  ``mission`` (a Text space). kerasdojo gets the raw env (it drops the Text leaf itself). SB3
  cannot take it raw: ``MultiInputPolicy`` fails on the Text subspace (``TypeError: 'NoneType'
  object is not iterable``), and once the mission is filtered out its CombinedExtractor takes
  the 7x7x3 uint8 Box for an image and builds NatureCNN, whose 8x8 first kernel does not fit
  7x7 (``RuntimeError: Kernel size can't be greater than actual input size``);
  ``policy_kwargs=dict(normalize_images=False)`` does not help (it only skips the dtype and
  bounds checks, so any 3-d Box still goes to NatureCNN). So SB3 gets, with
  ``--minigrid-sb3``:

  * ``dict`` (default): ``gymnasium.wrappers.FilterObservation(env, ["image", "direction"])``
    and the image leaf re-typed float32 (same values, 0..10) by a ``TransformObservation``, so
    ``MultiInputPolicy``'s CombinedExtractor flattens it (147 values) beside the one-hot
    direction (4): the same information kerasdojo uses, the mission (constant in this env)
    dropped, no normalisation on either side;
  * ``zoo``: RL Zoo's own MiniGrid setup, ``minigrid.wrappers.FlatObsWrapper`` (the image
    flattened plus the mission one-hot encoded, 2,835 values; the direction dropped),
    ``MlpPolicy`` and ``VecNormalize`` (observations and rewards: the Zoo's ``normalize: true``);
  * ``both``: the two, as two SB3 rows.

  Hyperparameters: RL Zoo's ``hyperparams/ppo.yml`` MiniGrid defaults (its
  ``MiniGrid-Empty-Random-5x5-v0`` entry: 8 envs, n_steps 128, batch 64, 10 epochs, lr 2.5e-4,
  gamma 0.99, GAE 0.95, ent 0.0, clip 0.2; 100,000 steps), on both sides.
- ``taxi``: ``Taxi-v4`` (Gymnasium >= 1.3 refuses ``Taxi-v3``; v4 only fixed the optional
  ``is_rainy`` and ``fickle_passenger`` modes, off by default, so the task is v3's: Discrete(500)
  observations, one-hot on both sides, 200-step limit, optimum 8.46 on average), whose
  ``info["action_mask"]`` marks the actions that change the state. kerasdojo PPO uses
  the mask by default. sb3-contrib's ``MaskablePPO`` (``MlpPolicy``) reads masks only through
  an ``action_masks()`` method, so its env is
  ``sb3_contrib.common.wrappers.ActionMasker(env, lambda e: e.unwrapped.action_mask(e.unwrapped.s))``
  (Taxi's own ``TaxiEnv.action_mask(state)`` on its current state ``s``), and its evaluation
  passes ``action_masks=`` to ``predict``. The Zoo has no Taxi entry; both sides get 8 envs,
  n_steps 128, batch 256, 10 epochs, lr 2.5e-4, gamma 0.99, GAE 0.95, ent 0.01, clip 0.2.

For each (library, pair, seed), in a fresh Python process, one at a time: training steps/s
(the training loop's wall seconds minus its periodic evaluations, compilation included, not
model construction: ``_common``'s convention), the first step at which a 10-episode
deterministic evaluation (``--evals`` times per run) reaches the goal, and a final
deterministic evaluation of ``--final-episodes`` episodes. kerasdojo is evaluated by its own
loop and vector env (``kerasdojo_run``); the peers by a plain loop over single envs built with
the wrappers they trained on (kerasdojo's vector env cannot stand in for SB3's wrappers), each
episode seeded ``seed + i``; both greedy (masked argmax where masks apply).

Install the peers beside kerasdojo, never as its dependencies, e.g. in their own venv::

    python3 -m venv /work/peers && . /work/peers/bin/activate
    pip install -e . && pip install torch==2.13.0 stable-baselines3 sb3-contrib minigrid

Run from the repository root (the script puts the root on sys.path and PYTHONPATH, for
``tests.envs.spaces``)::

    python benchmarks/spaces.py                                # all pairs, seed 0, writes RESULTS.md
    python benchmarks/spaces.py --only taxi --seeds 2
    python benchmarks/spaces.py --no-kerasdojo --no-write      # the peers alone, printed
    python benchmarks/spaces.py --no-kerasdojo --no-write --steps 2000   # a smoke test
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))
if str(REPO) not in sys.path:
    sys.path.insert(1, str(REPO))
from _common import (  # noqa: E402
    fmt,
    kerasdojo_run,
    machine,
    markdown_table,
    median,
    median_solve,
    run_worker,
    sb3_learn,
    today,
    update_section,
    versions,
)

EVAL_SEED = 10_000
EVAL_EPISODES = 10
FINAL_EPISODES = 50
MINIGRID_ZOO = {  # rl-baselines3-zoo hyperparams/ppo.yml, MiniGrid defaults (&minigrid-defaults)
    "n_envs": 8,
    "n_steps": 128,
    "batch_size": 64,
    "learning_rate": 2.5e-4,
    "n_epochs": 10,
    "gamma": 0.99,
    "gae_lambda": 0.95,
    "ent_coef": 0.0,
    "clip_range": 0.2,
}
PAIRS: dict[str, dict[str, Any]] = {
    "dictimage": {
        "env": "tests.envs.spaces:DictImageEnv",
        "steps": 30_000,
        "goal": 9.0,  # of 10: both leaves read (one leaf alone earns 5)
        "peer": "SB3 PPO MultiInputPolicy",
        "hyper": {**MINIGRID_ZOO, "batch_size": 256, "learning_rate": 3e-4, "ent_coef": 0.0},
    },
    "minigrid": {
        "env": "MiniGrid-Empty-5x5-v0",
        "steps": 100_000,
        "goal": 0.9,  # the shortest path (5 steps) earns 1 - 0.9 * 5 / 100 = 0.955
        "peer": "SB3 PPO MultiInputPolicy",
        "hyper": dict(MINIGRID_ZOO),
    },
    "taxi": {
        "env": "Taxi-v4",
        "steps": 200_000,
        "goal": 7.0,  # an optimal policy averages 8.46 (the starts vary: 10 episodes spread it)
        "peer": "sb3-contrib MaskablePPO",
        "hyper": {**MINIGRID_ZOO, "batch_size": 256, "ent_coef": 0.01},
    },
}
PEER_MODULES = ("stable_baselines3", "sb3_contrib", "minigrid")
LIB_NAMES = {
    "kerasdojo": "kerasdojo",
    "sb3": "SB3",
    "sb3-zoo": "SB3 (Zoo: FlatObsWrapper + VecNormalize)",
}


# --------------------------------------------------------------------------- peer side


def _minigrid_dict(env_id: str) -> Any:
    """MiniGrid for MultiInputPolicy: mission dropped, image re-typed float32 (flattened, not a CNN)."""
    import gymnasium as gym
    import minigrid  # noqa: F401  (registers the envs)
    import numpy as np
    from gymnasium import spaces

    env = gym.wrappers.FilterObservation(gym.make(env_id), ["image", "direction"])
    image = env.observation_space["image"]
    space = spaces.Dict(
        {
            "direction": env.observation_space["direction"],
            "image": spaces.Box(0.0, float(image.high.max()), image.shape, np.float32),
        }
    )
    return gym.wrappers.TransformObservation(
        env, lambda obs: {"direction": obs["direction"], "image": obs["image"].astype(np.float32)}, space
    )


def _minigrid_zoo(env_id: str) -> Any:
    import gymnasium as gym
    import minigrid  # noqa: F401
    from minigrid.wrappers import FlatObsWrapper

    return FlatObsWrapper(gym.make(env_id))


def _taxi_masked(env_id: str) -> Any:
    import gymnasium as gym
    from sb3_contrib.common.wrappers import ActionMasker

    return ActionMasker(gym.make(env_id), lambda env: env.unwrapped.action_mask(env.unwrapped.s))


def peer_env_factory(lib: str, pair: str) -> Callable[[], Any]:
    """A factory of one env as the peer trains on it (no Monitor: make_vec_env adds it)."""
    env_id = PAIRS[pair]["env"]
    if pair == "dictimage":
        from tests.envs.spaces import DictImageEnv

        return DictImageEnv
    if pair == "minigrid":
        return (lambda: _minigrid_zoo(env_id)) if lib == "sb3-zoo" else (lambda: _minigrid_dict(env_id))
    return lambda: _taxi_masked(env_id)


def peer_evaluate(model: Any, make_env: Callable[[], Any], episodes: int, seed: int, masked: bool, norm=None):
    """Mean and std return of ``episodes`` greedy episodes on single envs, episode i seeded seed + i
    (``norm``: the training VecNormalize, whose frozen observation statistics apply)."""
    import numpy as np

    env, returns = make_env(), []
    try:
        for i in range(episodes):
            obs, _ = env.reset(seed=seed + i)
            total, done = 0.0, False
            while not done:
                x = norm.normalize_obs(obs) if norm is not None else obs
                kwargs = {"action_masks": env.action_masks()} if masked else {}
                action, _ = model.predict(x, deterministic=True, **kwargs)
                obs, reward, terminated, truncated, _ = env.step(action.item() if action.shape == () else action)
                total, done = total + float(reward), terminated or truncated
            returns.append(total)
    finally:
        env.close()
    return float(np.mean(returns)), float(np.std(returns))


def peer_worker(lib: str, pair: str, seed: int, steps: int, evals: int, final_episodes: int) -> dict:
    """Train the peer of ``pair`` and report as ``_common.kerasdojo_run`` does."""
    from stable_baselines3 import PPO
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import VecNormalize

    spec = PAIRS[pair]
    hyper = dict(spec["hyper"])
    n_envs = hyper.pop("n_envs")
    make_env = peer_env_factory(lib, pair)
    env = make_vec_env(make_env, n_envs=n_envs, seed=seed)
    norm = None
    if lib == "sb3-zoo":
        env = norm = VecNormalize(env, gamma=hyper["gamma"])
    masked = pair == "taxi"
    if masked:
        from sb3_contrib import MaskablePPO

        model = MaskablePPO("MlpPolicy", env, seed=seed, verbose=0, device="cpu", **hyper)
    else:
        policy = "MlpPolicy" if lib == "sb3-zoo" else "MultiInputPolicy"
        model = PPO(policy, env, seed=seed, verbose=0, device="cpu", **hyper)

    every = max(steps // max(evals, 1), 1) if evals else 0

    def evaluate(episodes: int, eval_seed: int) -> tuple[float, float]:
        if norm is not None:
            norm.training = False
        try:
            return peer_evaluate(model, make_env, episodes, eval_seed, masked, norm)
        finally:
            if norm is not None:
                norm.training = True

    return sb3_learn(
        model, "", steps, seed, every, EVAL_EPISODES, spec["goal"], final_episodes, EVAL_SEED, EVAL_SEED + 1, evaluate
    )


# --------------------------------------------------------------------------- kerasdojo side


def kerasdojo_worker(pair: str, seed: int, steps: int, evals: int, final_episodes: int) -> dict:
    spec = PAIRS[pair]
    if pair == "minigrid":
        import minigrid  # noqa: F401  (registers MiniGrid-*)
    every = max(steps // max(evals, 1), 1) if evals else 0
    return kerasdojo_run(
        spec["env"],
        "ppo",
        seed,
        every,
        EVAL_EPISODES,
        spec["goal"],
        final_episodes,
        EVAL_SEED + 1,
        total_steps=steps,
        overrides=dict(spec["hyper"]),
    )


# --------------------------------------------------------------------------- driver


def missing_modules(pair: str, peers: bool) -> list[str]:
    """The modules a pair needs that this interpreter lacks (minigrid on both sides; the peers'
    libraries unless ``peers`` is False)."""
    from importlib.util import find_spec

    needed = ["minigrid"] if pair == "minigrid" else []
    if peers:
        needed += ["torch", "stable_baselines3"] + (["sb3_contrib"] if pair == "taxi" else [])
    return [name for name in needed if find_spec(name) is None]


def peers_of(pair: str, minigrid_sb3: str) -> list[str]:
    if pair != "minigrid" or minigrid_sb3 == "dict":
        return ["sb3"]
    return ["sb3-zoo"] if minigrid_sb3 == "zoo" else ["sb3", "sb3-zoo"]


def tables(results: dict[tuple[str, str], list[dict]], pairs: list[str], budgets: dict[str, int]) -> list[str]:
    rows, summary, ratios = [], [], []
    for (lib, pair), runs in results.items():
        name = LIB_NAMES[lib] if lib != "sb3" else PAIRS[pair]["peer"]
        for seed, r in enumerate(runs):
            rows.append(
                [
                    pair,
                    name,
                    str(seed),
                    f"{r['steps']:,}",
                    f"{r['train_seconds']:.1f}",
                    f"{r['fps']:,.0f}",
                    fmt(r["solve_step"], missing="never"),
                    f"{r['final_mean']:.2f} ± {r['final_std']:.2f}",
                ]
            )
        summary.append(
            [
                pair,
                name,
                f"{len(runs)}",
                f"{median([r['fps'] for r in runs]):,.0f}",
                fmt(median_solve([r["solve_step"] for r in runs]), missing="never"),
                f"{median([r['final_mean'] for r in runs]):.2f}",
            ]
        )
    for pair in pairs:
        ours = results.get(("kerasdojo", pair))
        for peer in ("sb3", "sb3-zoo"):
            theirs = results.get((peer, pair))
            if ours and theirs:
                name = LIB_NAMES[peer] if peer != "sb3" else PAIRS[pair]["peer"]
                ratio = median([r["fps"] for r in ours]) / median([r["fps"] for r in theirs])
                ratios.append(
                    f"- {pair} ({budgets[pair]:,} steps): steps/s kerasdojo / {name} x{ratio:.2f}; final return "
                    f"{median([r['final_mean'] for r in ours]):.2f} vs {median([r['final_mean'] for r in theirs]):.2f}"
                )
    head = ["pair", "library", "seed", "steps", "train s", "steps/s", "goal at step", "final return"]
    lines = [markdown_table(head, rows), "", "Medians over seeds:", ""]
    lines.append(markdown_table(["pair", "library", "seeds", "steps/s", "goal at step", "final return"], summary))
    if ratios:
        lines += ["", "Ratios (medians):", "", *ratios]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", default=",".join(PAIRS), help=f"comma-separated pairs among {', '.join(PAIRS)}")
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--steps", type=int, default=None, help="one budget for every pair (default: per pair)")
    for pair, spec in PAIRS.items():
        parser.add_argument(f"--{pair}-steps", type=int, default=spec["steps"])
    parser.add_argument("--minigrid-sb3", choices=("dict", "zoo", "both"), default="dict")
    parser.add_argument("--evals", type=int, default=5, help="periodic evaluations per run (0: none)")
    parser.add_argument("--final-episodes", type=int, default=FINAL_EPISODES)
    parser.add_argument("--no-kerasdojo", action="store_true", help="run the peers alone")
    parser.add_argument("--no-peers", action="store_true", help="run kerasdojo alone")
    parser.add_argument("--no-write", action="store_true", help="print only; leave RESULTS.md alone")
    parser.add_argument("--worker", nargs=6, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        lib, pair, seed, steps, evals, final = args.worker
        if lib == "kerasdojo":
            out = kerasdojo_worker(pair, int(seed), int(steps), int(evals), int(final))
        else:
            out = peer_worker(lib, pair, int(seed), int(steps), int(evals), int(final))
        print(json.dumps(out))
        return

    pairs = [p.strip() for p in args.only.split(",") if p.strip()]
    unknown = [p for p in pairs if p not in PAIRS]
    if unknown:
        parser.error(f"unknown pair(s) {unknown}; choose among {list(PAIRS)}")
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    budgets = {p: args.steps or getattr(args, f"{p}_steps") for p in pairs}
    results: dict[tuple[str, str], list[dict]] = {}
    for pair in pairs:
        missing = missing_modules(pair, not args.no_peers)
        if missing:
            print(
                f"{pair}: skipped, {', '.join(missing)} not installed here (pip install torch==2.13.0 "
                "stable-baselines3 sb3-contrib minigrid, beside kerasdojo; or --no-peers)",
                flush=True,
            )
            continue
        libs = ([] if args.no_kerasdojo else ["kerasdojo"]) + (
            [] if args.no_peers else peers_of(pair, args.minigrid_sb3)
        )
        for lib in libs:
            for seed in range(args.seeds):
                worker = [lib, pair, str(seed), str(budgets[pair]), str(args.evals), str(args.final_episodes)]
                res = json.loads(run_worker(Path(__file__), worker, timeout=3600))
                results.setdefault((lib, pair), []).append(res)
                print(
                    f"{pair:9s} {lib:9s} seed {seed}: {res['steps']:,} steps in {res['train_seconds']:.1f} s, "
                    f"{res['fps']:,.0f} steps/s, goal at {fmt(res['solve_step'], missing='never')}, "
                    f"final {res['final_mean']:.2f} ± {res['final_std']:.2f}",
                    flush=True,
                )

    if not results:
        print("nothing ran: RESULTS.md left alone")
        return
    lines = [
        f"Machine: {machine()}. Date: {today()}. "
        f"{versions('tensorflow', 'keras', 'gymnasium', 'numpy', 'torch', *PEER_MODULES)}.",
        "",
        "Same budget, seeds and hyperparameters on both sides (see the script's docstring for each pair's "
        "setup: SB3 gets MiniGrid with the mission filtered out and the image flattened, Taxi through "
        "ActionMasker). steps/s = steps / training-loop wall seconds minus evaluation, compilation included; "
        f"goal = first {EVAL_EPISODES}-episode greedy evaluation at the goal (dictimage 9, minigrid 0.9, taxi 7), "
        f"{args.evals} per run; final = {args.final_episodes} greedy episodes. Budgets: "
        + ", ".join(f"{p} {budgets[p]:,}" for p in pairs)
        + ".",
        "",
        *tables(results, pairs, budgets),
    ]
    body = "## Dict observations and action masks (`benchmarks/spaces.py`)\n\n" + "\n".join(lines)
    print("\n" + body)
    if not args.no_write:
        update_section("spaces", body)


if __name__ == "__main__":
    main()
