"""What one iteration of batched PPO (``bench --native --seeds N``, CartPole-v1's preset) is made of.

For each seed count of ``--counts``: the median milliseconds of the compiled rollout (XLA) and
of the update (TensorFlow's kernels, every epoch and minibatch of every seed), over
``--iterations`` iterations after ten of warm-up, with the thread pools ``bench`` uses. Then,
at ``--profile-seeds`` seeds:

- ``xla``: the same update compiled with XLA;
- ``bare``: a lower bound, the update stripped to the loss, its gradients and a plain SGD
  step: no per-seed gradient clipping and no Adam (the preset's minibatch is the whole rollout,
  which the real update gathers nothing for either). It is not PPO; it says how far the
  update could fall by cutting everything else.
- the TensorFlow profiler's thread time of ten real iterations by op type (every op outside
  the rollout's XLA call, the update's for the most part): how much is matrix products and
  how much is element-wise work.

    python benchmarks/seeds_update.py                    # 1 and 16 seeds, the profile at 16
    python benchmarks/seeds_update.py --counts 2,8,16,32 --no-write
"""

from __future__ import annotations

import argparse
import glob
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine, markdown_table, today, update_section, versions  # noqa: E402


def trainer(seeds: int, bare: bool = False, xla: bool = False):
    from kerasdojo import backend
    from kerasdojo.agents.ppo import LOSS_NAMES, clipped_loss, loss_statistics, minibatch_weights
    from kerasdojo.agents.seeds import SeedsPPO
    from kerasdojo.agents.speed import compiled
    from kerasdojo.training.spec import resolve_config

    tf = backend.tf()

    class Bare(SeedsPPO):
        def _update(self, batch, clip):
            cfg, S = self.cfg, self.members
            obs, actions, old_logp, advantages, returns, old_values = batch
            valid = tf.ones([S, obs.shape[1]])

            def body(i, sums):
                weight, adv = minibatch_weights(cfg, advantages, valid)
                with tf.GradientTape() as tape:
                    params, value = self._forward(obs)
                    logp, entropy = self.dist.tf_log_prob_entropy(*params, actions)
                    args = (old_logp, adv, returns, value, old_values, weight, clip)
                    loss, parts = clipped_loss(cfg, logp, entropy, *args)
                    total_loss = tf.reduce_sum(loss)
                for g, v in zip(tape.gradient(total_loss, self.train_vars), self.train_vars, strict=True):
                    v.assign_sub(cfg.learning_rate * g)
                stats = loss_statistics(weight, clip, parts)[1]
                return i + 1, tuple(a + b for a, b in zip(sums, stats, strict=True))

            start = (tf.constant(0), tuple(tf.zeros([S]) for _ in LOSS_NAMES))
            _, sums = tf.while_loop(lambda i, _: i < cfg.n_epochs, body, start)
            return {**dict(zip(LOSS_NAMES, sums, strict=True)), "gradient_steps": tf.constant(float(cfg.n_epochs))}

    cfg = resolve_config("ppo", "CartPole-v1", {}, None)
    t = (Bare if bare else SeedsPPO)(cfg, "CartPole-v1", list(range(seeds)), 10)
    if xla:
        t._train = compiled(t._update, jit=True, autograph=False)
    return t


def iteration(t, i: int) -> tuple[float, float]:
    t0 = time.perf_counter()
    out = t._iterate(np.float32(min(i / 400, 1.0)))  # the schedules' progress, as a 100k-step run's
    [x.numpy() for x in out["batch"]]
    t1 = time.perf_counter()
    stats = t._train(out.pop("batch"), out.pop("clip"))
    [v.numpy() for v in stats.values()]
    return t1 - t0, time.perf_counter() - t1


def timed(t, iterations: int) -> tuple[float, float]:
    for i in range(10):
        iteration(t, i)
    times = [iteration(t, 10 + i) for i in range(iterations)]
    return 1e3 * statistics.median(r for r, _ in times), 1e3 * statistics.median(u for _, u in times)


def op_profile(t) -> list[tuple[str, float]]:
    """Thread milliseconds per iteration by op type over ten iterations (the profiler's own tool,
    a private module of TensorFlow: empty when this TensorFlow lacks it or it fails)."""
    try:
        from tensorflow.python.profiler.internal import _pywrap_profiler_plugin as plugin
    except ImportError:
        return []
    from kerasdojo import backend

    tf = backend.tf()
    for i in range(10):  # compiled and warm before the profiler starts
        iteration(t, i)
    with tempfile.TemporaryDirectory() as logdir:
        tf.profiler.experimental.start(logdir)
        for i in range(10):
            iteration(t, i)
        tf.profiler.experimental.stop()
        planes = glob.glob(f"{logdir}/plugins/profile/*/*.xplane.pb")
        data, ok = plugin.xspace_to_tools_data(planes, "framework_op_stats", {})
    if not ok or not data:
        return []
    table = json.loads(data)[0]
    cols = [c["id"] for c in table["cols"]]
    by_type: dict[str, float] = {}
    for row in table["rows"]:
        r = {c: (x or {}).get("v") for c, x in zip(cols, row["c"], strict=True)}
        kind = {"IDLE": "(idle)"}.get(r["type"], r["type"])
        kind = "the rollout (one XLA call)" if kind.startswith("__inference__iteration") else kind
        by_type[kind] = by_type.get(kind, 0.0) + r["total_self_time"] / 10 / 1e3
    return sorted(by_type.items(), key=lambda kv: -kv[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--counts", default="1,16", help="seed counts, comma-separated")
    parser.add_argument("--iterations", type=int, default=50)
    parser.add_argument("--profile-seeds", type=int, default=16)
    parser.add_argument("--no-write", action="store_true", help="print only; leave RESULTS.md alone")
    args = parser.parse_args()
    from kerasdojo.experiments.batched import share_cores

    share_cores()  # the pools bench --native uses for PPO
    rows = []
    for n in [int(c) for c in args.counts.split(",")]:
        rollout, update = timed(trainer(n), args.iterations)
        rows.append([str(n), "as bench runs it", f"{rollout:.1f}", f"{update:.1f}", f"{update / n:.2f}"])
        print(f"{n} seeds: rollout {rollout:.1f} ms, update {update:.1f} ms", flush=True)
    s = args.profile_seeds
    variants = (
        ("update under XLA", trainer(s, xla=True)),
        ("bare: loss, gradients, an SGD step", trainer(s, bare=True)),
    )
    for name, t in variants:
        rollout, update = timed(t, args.iterations)
        rows.append([str(s), name, f"{rollout:.1f}", f"{update:.1f}", f"{update / s:.2f}"])
        print(f"{s} seeds, {name}: update {update:.1f} ms", flush=True)
    ops = op_profile(trainer(s))
    if not ops:
        print("no profile: this TensorFlow's profiler tool did not answer", flush=True)
        ops = [("(no profile)", 0.0)]
    busy = sum(ms for kind, ms in ops if kind not in ("(idle)", "the rollout (one XLA call)"))
    matmul = sum(ms for kind, ms in ops if "MatMul" in kind)
    print(
        f"profile at {s} seeds: ops besides the rollout {busy:.1f} thread ms, {matmul:.1f} in matrix products",
        flush=True,
    )
    from kerasdojo.training.spec import resolve_config

    c = resolve_config("ppo", "CartPole-v1", {}, None)
    lines = [
        f"Machine: {machine()}. Date: {today()}. {versions('tensorflow', 'keras')}.",
        f"`python benchmarks/seeds_update.py`: CartPole-v1's PPO preset ({c.n_envs} envs x {c.n_steps} steps a seed,",
        f"{c.n_epochs} epochs of {c.batch_size}-sample minibatches), medians of {args.iterations} iterations after ten",
        "of warm-up.",
        "",
        markdown_table(["seeds", "update", "rollout (ms)", "update (ms)", "update per seed (ms)"], rows),
        "",
        f"Thread time of one iteration at {s} seeds by op type (TensorFlow profiler, ten iterations;"
        f" ops besides the rollout {busy:.1f} ms in all, {matmul:.1f} ms of it matrix products,"
        f" {100 * matmul / max(busy, 1e-9):.0f}%):",
        "",
        markdown_table(["op type", "ms an iteration"], [[k, f"{v:.2f}"] for k, v in ops[:14]]),
    ]
    body = "\n".join(lines)
    print(body)
    if not args.no_write:
        update_section("seeds-update", body)


if __name__ == "__main__":
    main()
