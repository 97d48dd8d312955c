"""The summary of a bench folder: a table per seed (with the node that trained it), mean, IQM
and 95% bootstrap CI of the final evaluations, steps to the env's reward threshold,
``summary.json``, ``summary.md`` and ``curves.png``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from kerasdojo.errors import DojoError
from kerasdojo.experiments.bench import EXPERIMENT, NODE, finished, read_marker, seed_run
from kerasdojo.files import read_json


def summarize(out: Path, seeds: tuple[int, ...] | None = None) -> dict[str, Any]:
    """Per-seed results, aggregates, summary.json, summary.md and curves.png of a bench folder."""
    from kerasdojo import envs as envs_mod
    from kerasdojo.experiments import curves as curves_mod
    from kerasdojo.runs import read_progress

    marker = read_marker(out / EXPERIMENT)
    env_id, agent = marker["env_id"], marker["agent"]
    seeds = seeds if seeds is not None else tuple(marker["seeds"])
    threshold = envs_mod.resolve(env_id).reward_threshold
    rows, curves = [], []
    for seed in seeds:
        run = seed_run(out, seed)
        where = node_of(run)
        if run is None or not finished(run):
            rows.append({"seed": seed, "run": str(run) if run else None, "finished": False, **where})
            continue
        result = read_json(run / "eval.json")
        if not isinstance(result, dict) or not isinstance(result.get("mean_reward"), (int, float)):
            raise DojoError(f"{run / 'eval.json'} is damaged: it holds no mean_reward")
        progress = read_progress(run / "progress.csv")
        if not progress:
            raise DojoError(f"{run / 'progress.csv'} is damaged: a finished run with no rows")
        last = progress[-1]
        steps, seconds = int(last["time/total_timesteps"]), float(last["time/train_seconds"])
        reached = None
        if threshold is not None:
            for r in progress:
                if r.get("eval/mean_reward") not in (None, "") and float(r["eval/mean_reward"]) >= threshold:
                    reached = int(r["time/total_timesteps"])
                    break
        rows.append(
            {
                "seed": seed,
                "run": str(run),
                "finished": True,
                "final_eval": result["mean_reward"],
                "best_eval": result.get("best_mean_reward"),
                "final_success_rate": result.get("success_rate"),  # where episodes report info["is_success"]
                "steps_to_threshold": reached,
                "steps": steps,
                "train_seconds": seconds,
                "steps_per_s": steps / max(seconds, 1e-9),
                **where,
            }
        )
        curves.append(curves_mod.read_curve(run))
    finals = [r["final_eval"] for r in rows if r["finished"]]
    import numpy as np

    aggregate = {
        "seeds_finished": len(finals),
        "mean": float(np.mean(finals)) if finals else None,
        "std": float(np.std(finals)) if finals else None,
        "iqm": curves_mod.iqm(finals) if finals else None,
        "iqm_ci95": list(curves_mod.bootstrap_ci(finals)) if finals else None,
        "success_rate": _mean_success(rows),
        "reached_threshold": sum(r.get("steps_to_threshold") is not None for r in rows),
        "threshold": threshold,
        # Which seeds each node trained: the work's spread over a Ray cluster at a glance.
        "nodes": _seeds_by_node(rows),
    }
    summary = {"env_id": env_id, "agent": agent, "seeds": rows, "aggregate": aggregate}
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    (out / "summary.md").write_text(summary_markdown(summary))
    if curves:
        curves_mod.draw(
            {f"{agent} on {env_id}": curves},
            out / "curves.png",
            "eval/mean_reward",
            title=f"{agent} on {env_id}: evaluation return, {len(curves)} seeds",
            threshold=threshold,
        )
    return summary


def node_of(run: Path | None) -> dict[str, Any]:
    """``node`` (a Ray node id, or ``local``), ``node_ip`` and ``host`` from the run's node.json;
    None for runs trained before kerasdojo recorded them."""
    info = read_json(run / NODE) if run is not None and (run / NODE).is_file() else {}
    if not isinstance(info, dict):
        info = {}
    return {key: info.get(key) for key in ("node", "node_ip", "host")}


def node_label(row: dict[str, Any]) -> str:
    """A short name for the table: ``local``, or a Ray node's IP and the first 8 digits of its id
    (nodes on one machine share the IP)."""
    node = row.get("node")
    if node is None:
        return "-"
    if node == "local":
        return "local"
    return f"{row.get('node_ip') or '?'} {node[:8]}"


def _seeds_by_node(rows: list[dict[str, Any]]) -> dict[str, list[int]]:
    spread: dict[str, list[int]] = {}
    for r in rows:
        if r.get("node") is not None:
            spread.setdefault(node_label(r), []).append(r["seed"])
    return spread


def _mean_success(rows: list[dict[str, Any]]) -> float | None:
    """The mean final success rate of the finished seeds, where their episodes report one."""
    rates = [r["final_success_rate"] for r in rows if r["finished"] and r.get("final_success_rate") is not None]
    return sum(rates) / len(rates) if rates else None


def _fmt(v: Any, spec: str = ",.1f") -> str:
    return "-" if v is None else format(v, spec)


def summary_markdown(summary: dict[str, Any]) -> str:
    agg = summary["aggregate"]
    lines = [
        f"# {summary['agent']} on {summary['env_id']}",
        "",
        "| seed | final eval | best eval | steps to goal | steps | steps/s | node |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in summary["seeds"]:
        if not r["finished"]:
            lines.append(f"| {r['seed']} | unfinished | | | | | {node_label(r)} |")
            continue
        lines.append(
            f"| {r['seed']} | {_fmt(r['final_eval'])} | {_fmt(r['best_eval'])} | "
            f"{_fmt(r['steps_to_threshold'], ',')} | {r['steps']:,} | {r['steps_per_s']:,.0f} | {node_label(r)} |"
        )
    if agg["seeds_finished"]:
        lo, hi = agg["iqm_ci95"]
        lines += [
            "",
            f"Final evaluation over {agg['seeds_finished']} seeds: mean {agg['mean']:.1f} ± {agg['std']:.1f}, "
            f"IQM {agg['iqm']:.1f} (95% bootstrap CI {lo:.1f} to {hi:.1f})."
            + ("" if (rate := agg.get("success_rate")) is None else f" Final success rate {rate:.0%} (mean of seeds).")
            + (
                f" {agg['reached_threshold']} of {len(summary['seeds'])} seeds reached the goal {agg['threshold']:g}."
                if agg["threshold"] is not None
                else ""
            ),
        ]
    return "\n".join(lines) + "\n"
