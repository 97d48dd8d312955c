"""Reading curves out of run directories, aggregating them over seeds, and drawing them.

Aggregates follow rliable's advice for few seeds (Agarwal et al. 2021): the
interquartile mean (IQM: the mean of the middle 50% of values) with a 95%
percentile-bootstrap confidence interval, beside the plain mean.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from kerasdojo.errors import DojoError
from kerasdojo.runs import Run, read_progress

X_COLUMNS = {"steps": "time/total_timesteps", "seconds": "time/train_seconds"}


@dataclasses.dataclass(frozen=True)
class Curve:
    """One run's metric against steps or seconds."""

    run: Path
    env_id: str
    agent: str
    seed: int
    x: np.ndarray
    y: np.ndarray


def run_dirs(path: str | Path) -> list[Path]:
    """A run directory itself, or the run directories inside an experiment folder."""
    path = Path(path)
    if (path / Run.CONFIG).is_file():
        return [path]
    if not path.is_dir():
        raise DojoError(f"No run or experiment folder at {path}", hint="pass a run directory or a bench --out folder")
    runs = sorted(p for p in path.iterdir() if (p / Run.CONFIG).is_file())
    if not runs:
        raise DojoError(f"{path} holds no kerasdojo runs", hint="pass a run directory or a bench --out folder")
    return runs


def read_curve(run: Path, metric: str = "eval/mean_reward", x: str = "steps") -> Curve:
    if x not in X_COLUMNS:
        raise DojoError(f"--x must be one of {', '.join(X_COLUMNS)}. Received: {x}")
    config = Run.open(run).config
    progress = run / "progress.csv"
    rows = read_progress(progress) if progress.is_file() else []
    if rows and metric not in rows[0]:
        known = sorted(k for k in rows[0] if not k.startswith("time/"))
        raise DojoError(f"{run.name} has no metric {metric!r}", hint="its metrics: " + ", ".join(known))
    filled = [r for r in rows if r.get(metric) not in (None, "", "nan") and r.get(X_COLUMNS[x]) not in (None, "")]
    pairs = [(float(r[X_COLUMNS[x]]), float(r[metric])) for r in filled]
    xs, ys = (np.array(v, np.float64) for v in zip(*pairs, strict=True)) if pairs else (np.zeros(0), np.zeros(0))
    return Curve(
        run, config.get("env_id", "?"), config.get("agent", config.get("task", "?")), config.get("seed", 0), xs, ys
    )


def iqm(values: Sequence[float]) -> float:
    """Interquartile mean: the mean of the middle half (rliable's trimming: drop the lowest
    and the highest 25%, rounding the count down)."""
    v = np.sort(np.asarray(values, np.float64))
    if len(v) == 0:
        return math.nan
    cut = int(math.floor(0.25 * len(v)))
    return float(v[cut : len(v) - cut].mean())


def bootstrap_ci(
    values: Sequence[float], stat=iqm, n: int = 2000, level: float = 0.95, seed: int = 0
) -> tuple[float, float]:
    """Percentile-bootstrap confidence interval of ``stat`` over ``values``."""
    v = np.asarray(values, np.float64)
    if len(v) < 2:
        x = stat(v) if len(v) else math.nan
        return x, x
    rng = np.random.default_rng(seed)
    samples = v[rng.integers(0, len(v), size=(n, len(v)))]
    stats = np.array([stat(s) for s in samples])
    lo, hi = np.percentile(stats, [50 * (1 - level), 50 * (1 + level)])
    return float(lo), float(hi)


def aggregate(curves: Sequence[Curve]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """IQM and its 95% CI over seeds, on the union of the curves' x values (each curve held
    at its last value past its end, as a run that stopped keeps its last evaluation)."""
    curves = [c for c in curves if len(c.x)]
    if not curves:
        return np.zeros(0), np.zeros(0), np.zeros(0), np.zeros(0)
    grid = np.unique(np.concatenate([c.x for c in curves]))
    grid = grid[grid >= max(c.x[0] for c in curves)]  # where every seed has a value
    ys = np.stack([np.interp(grid, c.x, c.y) for c in curves])
    mid = np.array([iqm(col) for col in ys.T])
    ci = np.array([bootstrap_ci(col, n=500) for col in ys.T]).reshape(-1, 2)
    return grid, mid, ci[:, 0], ci[:, 1]


def draw(
    groups: dict[str, list[Curve]],
    out: Path,
    metric: str,
    x: str = "steps",
    title: str = "",
    threshold: float | None = None,
) -> Path:
    """Each curve thin, each group's IQM bold with its 95% bootstrap band; written to ``out`` (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 5.5), dpi=100)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, (label, curves) in enumerate(groups.items()):
        color = colors[i % len(colors)]
        for c in curves:
            ax.plot(c.x, c.y, color=color, alpha=0.35, linewidth=0.9)
        grid, mid, lo, hi = aggregate(curves)
        if len(grid):
            ax.fill_between(grid, lo, hi, color=color, alpha=0.2, linewidth=0)
            ax.plot(grid, mid, color=color, linewidth=2.5, label=f"{label} (IQM of {len(curves)}, 95% CI)")
    if threshold is not None:
        ax.axhline(threshold, color="gray", linestyle="--", linewidth=1, label=f"goal {threshold:g}")
    ax.set_xlabel("environment steps" if x == "steps" else "training seconds")
    ax.set_ylabel(metric)
    ax.set_title(title or metric)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=9)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.stem + ".tmp.png")
    fig.savefig(tmp)
    plt.close(fig)
    tmp.replace(out)
    return out
