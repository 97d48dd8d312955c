"""XOR, the classic problem a single layer cannot solve.

Two implementations of the same 2-H-1 network (tanh hidden layer, sigmoid
output, binary cross-entropy):

* ``keras``: built with :func:`kerasdojo.networks.mlp` and trained with
  ``model.fit``; each epoch is one compiled call of many steps.
* ``numpy``: written from scratch, forward and backward passes by hand, no
  TensorFlow at all: the reference for what ``fit`` does.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from kerasdojo.errors import DojoError
from kerasdojo.events import EventWriter
from kerasdojo.files import save_arrays, save_keras_model
from kerasdojo.runs import Run

X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], np.float32)
Y = np.array([0, 1, 1, 0], np.float32)
IMPLS = ("keras", "numpy")


@dataclass(frozen=True)
class XorConfig:
    impl: str = "keras"
    hidden: int = 8
    epochs: int = 0  # 0: the implementation's default
    lr: float = 0.0  # 0: the implementation's default
    seed: int = 0


@dataclass
class XorResult:
    probabilities: np.ndarray
    losses: list[float]

    @property
    def predictions(self) -> np.ndarray:
        return (self.probabilities > 0.5).astype(int)

    @property
    def correct(self) -> int:
        return int((self.predictions == Y.astype(int)).sum())


DEFAULTS = {"keras": {"epochs": 40, "lr": 0.05}, "numpy": {"epochs": 4000, "lr": 1.0}}


def run(cfg: XorConfig, runs_dir: str | Path = "runs") -> tuple[Run, XorResult]:
    if cfg.impl not in IMPLS:
        raise DojoError(f"Unknown XOR implementation. Received: --impl {cfg.impl}", hint="valid: keras, numpy")
    for name in ("hidden", "epochs"):
        if getattr(cfg, name) < 0 or (name == "hidden" and cfg.hidden < 1):
            raise DojoError(f"--{name} must be positive. Received: {getattr(cfg, name)}")
    if cfg.lr < 0:
        raise DojoError(f"--lr must be positive. Received: {cfg.lr}")
    epochs = cfg.epochs or DEFAULTS[cfg.impl]["epochs"]
    lr = cfg.lr or DEFAULTS[cfg.impl]["lr"]
    from kerasdojo.supervised.fit import finish, new_run

    config = {"task": "xor", **asdict(cfg), "epochs": epochs, "lr": lr}
    with new_run(runs_dir, ("xor", cfg.impl, f"s{cfg.seed}"), config) as run_:
        if cfg.impl == "keras":
            result = train_keras(run_, cfg.hidden, epochs, lr, cfg.seed)
        else:
            result = train_numpy(run_, cfg.hidden, epochs, lr, cfg.seed)
        metrics = {
            "correct": result.correct,
            "final_loss": result.losses[-1],
            "probabilities": result.probabilities.round(4).tolist(),
        }
        finish(run_, config, metrics, epochs)
    return run_, result


def train_keras(run: Run, hidden: int, epochs: int, lr: float, seed: int, steps_per_epoch: int = 50) -> XorResult:
    """Adam on the four points; an epoch is ``steps_per_epoch`` full-batch steps in one compiled call."""
    from kerasdojo import backend, networks
    from kerasdojo.supervised.fit import epoch_tensorboard

    backend.seed_everything(seed)
    keras = backend.keras()
    model = networks.mlp(2, hidden=(hidden,), activation="tanh", output_dim=1, output_activation="sigmoid", name="xor")
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=lr),
        loss="binary_crossentropy",
        steps_per_execution=steps_per_epoch,
    )
    x = np.tile(X, (steps_per_epoch, 1))
    y = np.tile(Y, steps_per_epoch)
    history = model.fit(
        x, y, batch_size=len(X), epochs=epochs, shuffle=False, verbose=0, callbacks=[epoch_tensorboard(run.path)]
    )
    probs = model.predict(X, verbose=0).reshape(-1)
    save_keras_model(model, run.path / "model.keras")
    return XorResult(probs, [float(v) for v in history.history["loss"]])


def train_numpy(run: Run, hidden: int, epochs: int, lr: float, seed: int, log_every: int = 20) -> XorResult:
    """Full-batch gradient descent with hand-written backpropagation."""
    net = NumpyMLP(2, hidden, seed)
    writer = EventWriter(run.path / "train")
    losses = []
    for epoch in range(epochs):
        loss = net.train_step(X, Y, lr)
        losses.append(loss)
        if epoch % log_every == 0 or epoch == epochs - 1:
            writer.scalar("epoch_loss", loss, epoch)
    writer.close()
    save_arrays(run.path / "model_numpy.npz", net.params(), {"hidden": hidden, "activation": "tanh"})
    return XorResult(net.forward(X)[0], losses)


class NumpyMLP:
    """A 2-layer perceptron, ``sigmoid(tanh(x W1 + b1) W2 + b2)``, trained on binary cross-entropy."""

    def __init__(self, n_in: int, n_hidden: int, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        # Glorot-uniform initialisation, as Keras's Dense layers use.
        lim1 = np.sqrt(6.0 / (n_in + n_hidden))
        lim2 = np.sqrt(6.0 / (n_hidden + 1))
        self.w1 = rng.uniform(-lim1, lim1, (n_in, n_hidden))
        self.b1 = np.zeros(n_hidden)
        self.w2 = rng.uniform(-lim2, lim2, (n_hidden, 1))
        self.b2 = np.zeros(1)

    def forward(self, x: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        h = np.tanh(x @ self.w1 + self.b1)
        z = h @ self.w2 + self.b2
        p = 1.0 / (1.0 + np.exp(-z))
        return p.reshape(-1), {"x": x, "h": h}

    def train_step(self, x: np.ndarray, y: np.ndarray, lr: float) -> float:
        p, cache = self.forward(x)
        eps = 1e-7
        loss = float(-np.mean(y * np.log(p + eps) + (1 - y) * np.log(1 - p + eps)))
        n = len(x)
        # d loss / d z for sigmoid + binary cross-entropy is (p - y) / n.
        dz = ((p - y) / n)[:, None]
        dw2 = cache["h"].T @ dz
        db2 = dz.sum(axis=0)
        dh = dz @ self.w2.T
        da = dh * (1.0 - cache["h"] ** 2)  # tanh'
        dw1 = cache["x"].T @ da
        db1 = da.sum(axis=0)
        for param, grad in ((self.w1, dw1), (self.b1, db1), (self.w2, dw2), (self.b2, db2)):
            param -= lr * grad
        return loss

    def params(self) -> dict[str, Any]:
        return {"w1": self.w1, "b1": self.b1, "w2": self.w2, "b2": self.b2}
