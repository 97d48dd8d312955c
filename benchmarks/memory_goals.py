"""Memory and goals: recurrent PPO on CartPoleNoVel-v1 and SAC with hindsight replay on
FetchReach-v4, kerasdojo beside sb3-contrib's RecurrentPPO and SB3's SAC + HerReplayBuffer.

Both sides use RL Zoo's hyperparameters (CartPoleNoVel-v1 as the Zoo's published model,
sb3/ppo_lstm-CartPoleNoVel-v1: 8 envs, 32 steps, batch 256, 20 epochs, lr and clip linear
from 1e-3 and 0.2, observations normalised, LSTM 64 for actor and critic, ReLU, heads of
64, no orthogonal init; ``sac.yml`` FetchReach-v1: 20,000 steps, gamma 0.95, lr 1e-3, batch 256,
learning_starts 1000, net 64x64, future goals, 4 sampled; the Zoo's ``normalize`` is left
out on both sides, as kerasdojo's off-policy agents replay raw observations). Every
library is evaluated by kerasdojo's own loop on the same vector env and seeds (the
recurrent policies with their memory carried through each episode): CartPoleNoVel 10
episodes every 10,000 steps (goal 475), FetchReach 20 episodes every 2,000 steps (goal:
success rate 0.9). Training seconds exclude evaluation and include compilation; each
(library, task, seed) runs in a fresh Python process, one at a time. Install the peers
beside kerasdojo, never as dependencies:
``pip install torch==2.13.0 stable-baselines3 sb3-contrib`` (FetchReach also needs the
``robotics`` extra on both sides).

    python benchmarks/memory_goals.py                     # both tasks, seed 0, peers if installed
    python benchmarks/memory_goals.py --tasks lstm --lstm-steps 20000
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import fmt, kerasdojo_run, machine, markdown_table, run_worker, today, update_section, versions  # noqa: E402

EVAL_SEED = 10_000
FINAL_EPISODES = 50
# task -> (env, kerasdojo agent, total steps, eval every, eval episodes, goal)
TASKS = {
    "lstm": ("CartPoleNoVel-v1", "ppo_lstm", 100_000, 10_000, 10, 475.0),
    "her": ("FetchReach-v4", "sac", 20_000, 2_000, 20, 0.9),
}


def kerasdojo_worker(task: str, seed: int, steps: int) -> dict:
    env_id, agent, _, every, episodes, goal = TASKS[task]
    if task == "lstm":
        return kerasdojo_run(env_id, agent, seed, every, episodes, goal, FINAL_EPISODES, EVAL_SEED + 1, steps)
    return _success_run(env_id, agent, seed, every, episodes, goal, steps)


def _success_run(env_id: str, agent: str, seed: int, every: int, episodes: int, goal: float, steps: int) -> dict:
    """kerasdojo's preset, reporting the first evaluation whose success rate reached ``goal``."""
    import tempfile

    from kerasdojo.runs import read_progress
    from kerasdojo.training.session import TrainSpec, evaluate_run, start

    with tempfile.TemporaryDirectory() as tmp:
        spec = TrainSpec(
            env_id, agent, seed=seed, total_steps=steps, eval_every=every, eval_episodes=episodes, save_every=0
        )
        session = start(spec, tmp)
        summary = session.train()
        rows = [r for r in read_progress(session.run.path / "progress.csv") if r.get("eval/success_rate")]
        final = evaluate_run(session.run.path, episodes=FINAL_EPISODES, seed=EVAL_SEED + 1).result
    reached = next((r for r in rows if float(r["eval/success_rate"]) >= goal), None)
    return {
        "steps": summary.steps,
        "fps": summary.steps / summary.train_seconds_total,
        "solve_step": int(reached["time/total_timesteps"]) if reached else None,
        "solve_seconds": float(reached["time/train_seconds"]) if reached else None,
        "final": final.success_rate,
        "evals": [float(r["eval/success_rate"]) for r in rows],
    }


def _evaluate(
    env_id: str, model, episodes: int, seed: int, recurrent: bool, scale=lambda obs: obs
) -> tuple[float, float | None]:
    """Mean return and success rate of ``model``'s deterministic policy through kerasdojo's evaluation
    (``scale``: the observation normalisation it was trained with)."""
    from kerasdojo.envs import make_vec
    from kerasdojo.training.evaluation import MAX_EVAL_ENVS, EvalResult, evaluate

    class Policy:
        def act(self, obs, deterministic=True):
            return model.predict(scale(obs), deterministic=True)[0]

    class RecurrentPolicy:  # kerasdojo's Actor carries the memory and says where episodes start
        def initial_state(self, n):
            return None

        def act_recurrent(self, obs, state, starts, deterministic=True, mask=None):
            return model.predict(scale(obs), state=state, episode_start=starts, deterministic=True)

    env = make_vec(env_id, min(episodes, MAX_EVAL_ENVS), seed=seed)
    try:
        result = EvalResult.of(*evaluate(RecurrentPolicy() if recurrent else Policy(), env, episodes, seed))
    finally:
        env.close()
    return result.mean_reward, result.success_rate


def sb3_worker(task: str, seed: int, steps: int) -> dict:
    import time

    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.env_util import make_vec_env

    import kerasdojo.envs

    kerasdojo.envs.resolve(TASKS[task][0])  # registers the NoVel and Gymnasium-Robotics ids
    env_id, _, _, every, episodes, goal = TASKS[task]
    if task == "lstm":
        from sb3_contrib import RecurrentPPO
        from stable_baselines3.common.vec_env import VecNormalize
        from torch import nn

        normalized = VecNormalize(make_vec_env(env_id, n_envs=8, seed=seed), norm_obs=True, norm_reward=False)
        model = RecurrentPPO(
            "MlpLstmPolicy",
            normalized,
            n_steps=32,
            batch_size=256,
            gae_lambda=0.8,
            gamma=0.98,
            n_epochs=20,
            ent_coef=0.0,
            learning_rate=lambda remaining: 1e-3 * remaining,  # the Zoo's lin_0.001
            clip_range=lambda remaining: 0.2 * remaining,
            policy_kwargs={
                "ortho_init": False,
                "activation_fn": nn.ReLU,
                "lstm_hidden_size": 64,
                "enable_critic_lstm": True,
                "net_arch": {"pi": [64], "vf": [64]},
            },
            seed=seed,
            device="cpu",
        )
    else:
        from stable_baselines3 import SAC, HerReplayBuffer

        model = SAC(
            "MultiInputPolicy",
            make_vec_env(env_id, n_envs=1, seed=seed),
            replay_buffer_class=HerReplayBuffer,
            replay_buffer_kwargs={"goal_selection_strategy": "future", "n_sampled_goal": 4},
            buffer_size=1_000_000,
            batch_size=256,
            gamma=0.95,
            learning_rate=1e-3,
            learning_starts=1000,
            policy_kwargs={"net_arch": [64, 64]},
            seed=seed,
            device="cpu",
        )
    recurrent = task == "lstm"

    def score(n: int, seed_: int) -> float:
        scale = model.get_env().normalize_obs if recurrent else (lambda obs: obs)
        mean, success = _evaluate(env_id, model, n, seed_, recurrent, scale)
        return mean if success is None or recurrent else success

    class Evaluate(BaseCallback):
        def __init__(self) -> None:
            super().__init__()
            self.next_eval, self.eval_seconds = every, 0.0
            self.solve_step = self.solve_seconds = None
            self.evals: list[float] = []

        def _on_step(self) -> bool:
            if self.num_timesteps >= self.next_eval:
                t0 = time.perf_counter()
                value = score(episodes, EVAL_SEED + seed)
                self.evals.append(value)
                if value >= goal and self.solve_step is None:
                    self.solve_step, self.solve_seconds = self.num_timesteps, t0 - start - self.eval_seconds
                self.eval_seconds += time.perf_counter() - t0
                self.next_eval = (self.num_timesteps // every + 1) * every
            return True

    callback = Evaluate()
    start = time.perf_counter()
    model.learn(steps, callback=callback)
    seconds = time.perf_counter() - start - callback.eval_seconds
    final = score(FINAL_EPISODES, EVAL_SEED + 1)
    out = {"steps": int(model.num_timesteps), "fps": model.num_timesteps / seconds, "evals": callback.evals}
    out.update(solve_step=callback.solve_step, solve_seconds=callback.solve_seconds)
    out["final" if not recurrent else "final_mean"] = final
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--tasks", default="lstm,her")
    parser.add_argument("--lstm-steps", type=int, default=TASKS["lstm"][2])
    parser.add_argument("--her-steps", type=int, default=TASKS["her"][2])
    parser.add_argument("--no-peers", action="store_true", help="kerasdojo only")
    parser.add_argument("--no-write", action="store_true", help="print only; leave RESULTS.md alone")
    parser.add_argument("--worker", nargs=4, metavar=("LIB", "TASK", "SEED", "STEPS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        lib, task, seed, steps = args.worker
        fn = kerasdojo_worker if lib == "kerasdojo" else sb3_worker
        print(json.dumps(fn(task, int(seed), int(steps))))
        return

    peers = {"lstm": "sb3-contrib", "her": "SB3"}
    libs = ["kerasdojo"]
    try:
        import sb3_contrib  # noqa: F401
        import stable_baselines3  # noqa: F401

        libs += [] if args.no_peers else ["peer"]
    except ImportError:
        print("sb3-contrib / stable-baselines3 not installed: kerasdojo only")
    rows, ratios = [], []
    for task in args.tasks.split(","):
        steps = args.lstm_steps if task == "lstm" else args.her_steps
        fps = {}
        for lib in libs:
            for seed in range(args.seeds):
                res = json.loads(run_worker(Path(__file__), [lib, task, str(seed), str(steps)], timeout=5400))
                name = lib if lib == "kerasdojo" else peers[task]
                final = res.get("final_mean", res.get("final"))
                unit = "return" if task == "lstm" else "success"
                line = [name, TASKS[task][0], str(seed), f"{res['fps']:,.0f}", fmt(res["solve_step"], ",d")]
                line += [fmt(res["solve_seconds"], ".1f"), f"{final:.2f}", " ".join(f"{v:g}" for v in res["evals"])]
                rows.append(line)
                fps.setdefault(name, []).append(res["fps"])
                print(
                    f"{name} {task} seed {seed}: {res['fps']:,.0f} steps/s, reached at {fmt(res['solve_step'])}, "
                    f"final {unit} {final:.2f}",
                    flush=True,
                )
        if len(fps) == 2:
            mine, theirs = (sum(v) / len(v) for v in fps.values())
            ratios.append(
                f"- {TASKS[task][0]}: kerasdojo {mine:,.0f} steps/s, {peers[task]} {theirs:,.0f}: x{mine / theirs:.2f}"
            )
    header = ["library", "env", "seed", "steps/s", "reached at step", "reached at s", "final", "evaluations"]
    body = "\n".join(
        [
            "## Memory and goals (`benchmarks/memory_goals.py`)",
            "",
            f"Machine: {machine()}. Date: {today()}. "
            f"{versions('tensorflow', 'keras', 'gymnasium', 'torch', 'stable_baselines3', 'sb3_contrib')}.",
            "",
            "CartPoleNoVel-v1: recurrent PPO, reached = first 10-episode evaluation >= 475, final = mean return over "
            f"{FINAL_EPISODES} episodes. FetchReach-v4: SAC + hindsight replay, reached = first 20-episode evaluation "
            f"with success rate >= 0.9, final = success rate over {FINAL_EPISODES} episodes. s = training seconds "
            "(evaluation excluded, compilation included).",
            "",
            markdown_table(header, rows),
            "",
            *ratios,
        ]
    )
    print("\n" + body)
    if not args.no_write:
        update_section(f"memory-goals-{'-'.join(args.tasks.split(','))}", body)


if __name__ == "__main__":
    main()
