"""A Keras model as a file other runtimes run: a SavedModel, ONNX or LiteRT, written with Keras's
own ``Model.export`` and loaded back by that format's own runtime (TensorFlow's SavedModel
loader, ONNX Runtime, LiteRT's interpreter).

An exported model keeps the Keras model's inputs by name: ``obs`` for a model of one input, the
leaf names for a nested observation's (one input per Dict key or Tuple item); it returns one
float32 array, what the Keras model returns."""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from kerasdojo import backend
from kerasdojo.errors import DojoError

FORMATS = ("saved_model", "onnx", "litert")
KERAS_FORMAT = {"saved_model": "tf_saved_model", "onnx": "onnx", "litert": "litert"}
SUFFIX = {"saved_model": "_saved_model", "onnx": ".onnx", "litert": ".tflite"}
RUNTIME = {"saved_model": "tf.saved_model", "onnx": "ONNX Runtime", "litert": "LiteRT"}
# What each format needs beyond TensorFlow and Keras: (module, pip name).
NEEDS = {
    "saved_model": (),
    "onnx": (("onnx", "onnx"), ("onnxruntime", "onnxruntime"), ("tf2onnx", "tf2onnx")),
    "litert": (("ai_edge_litert", "ai-edge-litert"),),
}
SINGLE_INPUT = "obs"


def check_format(fmt: str) -> str:
    if fmt not in FORMATS:
        raise DojoError(f"Unknown export format. Received: {fmt!r}", hint="valid: " + ", ".join(FORMATS))
    return fmt


def require(fmt: str) -> None:
    """A one-line error naming the ``export`` extra when ``fmt``'s packages are missing."""
    missing = [pip for module, pip in NEEDS[check_format(fmt)] if importlib.util.find_spec(module) is None]
    if missing:
        raise DojoError(
            f"--format {fmt} needs {' and '.join(missing)} (not installed)",
            hint="pip install 'kerasdojo[export]'",
        )


def format_of(path: str | Path) -> str:
    """The format of an exported file: ``.onnx``, ``.tflite``, or a SavedModel folder."""
    path = Path(path)
    if path.is_dir():
        if (path / "saved_model.pb").is_file():
            return "saved_model"
        raise DojoError(f"{path} is a folder without saved_model.pb: not a SavedModel")
    if path.suffix == ".onnx":
        return "onnx"
    if path.suffix in (".tflite", ".litert"):
        return "litert"
    if not path.exists():
        raise DojoError(f"{path} does not exist")
    raise DojoError(f"{path} is not an exported policy", hint="a .onnx or .tflite file, or a SavedModel folder")


def input_specs(model: Any) -> dict[str, tuple[tuple[int | None, ...], str]]:
    """The exported model's inputs, name -> (shape with the batch axis, dtype)."""
    inputs = model.inputs
    if len(inputs) == 1 and not isinstance(getattr(model, "_inputs_struct", None), dict):
        return {SINGLE_INPUT: (tuple(inputs[0].shape), str(inputs[0].dtype))}
    return {t.name: (tuple(t.shape), str(t.dtype)) for t in inputs}


def _signature(model: Any) -> list[Any]:
    tf = backend.tf()
    specs = {name: tf.TensorSpec(shape, dtype, name=name) for name, (shape, dtype) in input_specs(model).items()}
    if list(specs) == [SINGLE_INPUT]:
        return [specs[SINGLE_INPUT]]
    return [specs]


@contextlib.contextmanager
def quiet_stderr() -> Iterator[None]:
    """The C++ runtimes' log lines (LiteRT's 'Created TensorFlow Lite XNNPACK delegate') kept off
    the terminal: file descriptor 2 points at /dev/null for the duration."""
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


@contextlib.contextmanager
def constants_in_graph(model: Any) -> Iterator[None]:
    """Normalization layers given their mean and variance hold them as eager tensors, which a
    traced function captures as inputs: tf2onnx then makes them inputs of the ONNX graph. As
    NumPy arrays for the duration, they become constants of the traced graph."""
    keras = backend.keras()
    held = [
        (layer, layer.mean, layer.variance)
        for layer in model._flatten_layers(include_self=False, recursive=True)
        if isinstance(layer, keras.layers.Normalization) and layer.input_mean is not None
    ]
    try:
        for layer, mean, variance in held:
            layer.mean, layer.variance = np.asarray(mean), np.asarray(variance)
        yield
    finally:
        for layer, mean, variance in held:
            layer.mean, layer.variance = mean, variance


def write(model: Any, fmt: str, path: Path) -> Path:
    """Export ``model`` to ``path`` in ``fmt`` with ``Model.export``."""
    require(fmt)
    import logging

    logging.getLogger("tf2onnx").setLevel(logging.ERROR)
    with warnings.catch_warnings(), quiet_stderr(), constants_in_graph(model):
        warnings.simplefilter("ignore")
        try:
            model.export(str(path), format=KERAS_FORMAT[fmt], input_signature=_signature(model), verbose=False)
        except Exception as exc:  # an op the converter lacks, a disk error: one line, the converter's words
            raise DojoError(f"Keras could not export the model to {fmt}: {first_line(exc)}") from None
    if not path.exists():
        raise DojoError(f"Keras wrote no {fmt} file at {path}")
    return path


def replace(new: Path, old: Path) -> None:
    """Put ``new`` where ``old`` is: a file in one atomic rename; a folder (a SavedModel) by
    moving the old one aside first, so that either the old or the new is there at any time."""
    if not (old.is_dir() and not old.is_symlink()):
        os.replace(new, old)
        return
    aside = old.with_name(f".{old.name}.replaced-{os.getpid()}")
    os.replace(old, aside)
    try:
        os.replace(new, old)
    except OSError:
        os.replace(aside, old)
        raise
    shutil.rmtree(aside, ignore_errors=True)


class Runtime:
    """An exported model loaded by its own runtime: ``runtime(inputs)`` takes a dict of named
    arrays (batch first) and returns the model's output as a float32 array."""

    fmt = ""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.inputs: dict[str, tuple[tuple[int | None, ...], np.dtype]] = {}

    def __call__(self, inputs: dict[str, np.ndarray]) -> np.ndarray:
        missing = set(self.inputs) - set(inputs)
        if missing:
            raise DojoError(f"{self.path} takes inputs {sorted(self.inputs)}; missing {sorted(missing)}")
        feed = {k: np.ascontiguousarray(inputs[k], dtype=dt) for k, (_, dt) in self.inputs.items()}
        return np.asarray(self._run(feed), np.float32)

    def _run(self, feed: dict[str, np.ndarray]) -> Any:
        raise NotImplementedError


class OnnxRuntime(Runtime):
    fmt = "onnx"

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.log_severity_level = 3
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        types = {"tensor(float)": np.float32, "tensor(uint8)": np.uint8, "tensor(int64)": np.int64}
        for i in self.session.get_inputs():
            shape = tuple(d if isinstance(d, int) else None for d in i.shape)
            self.inputs[i.name] = (shape, np.dtype(types.get(i.type, np.float32)))

    def _run(self, feed: dict[str, np.ndarray]) -> Any:
        return self.session.run(None, feed)[0]


class LiteRTRuntime(Runtime):
    fmt = "litert"

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        from ai_edge_litert.interpreter import Interpreter

        with quiet_stderr():
            self.interpreter = Interpreter(model_path=str(path))
            self.runner = self.interpreter.get_signature_runner()
        for name, d in self.runner.get_input_details().items():
            shape = tuple(None if s < 0 else int(s) for s in d["shape_signature"])
            self.inputs[name] = (shape, np.dtype(d["dtype"]))

    def _run(self, feed: dict[str, np.ndarray]) -> Any:
        with quiet_stderr():
            out = self.runner(**feed)
        return next(iter(out.values()))


class SavedModelRuntime(Runtime):
    fmt = "saved_model"

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        tf = backend.tf()
        self.loaded = tf.saved_model.load(str(path))
        self.serve = self.loaded.signatures["serving_default"]
        for name, spec in self.serve.structured_input_signature[1].items():
            self.inputs[name] = (tuple(spec.shape), np.dtype(spec.dtype.as_numpy_dtype))

    def _run(self, feed: dict[str, np.ndarray]) -> Any:
        return next(iter(self.serve(**feed).values())).numpy()


RUNTIMES = {"saved_model": SavedModelRuntime, "onnx": OnnxRuntime, "litert": LiteRTRuntime}


def load(path: str | Path) -> Runtime:
    """An exported model in its own runtime (its format from the path)."""
    path = Path(path)
    fmt = format_of(path)
    if not path.exists():
        raise DojoError(f"{path} does not exist")
    require(fmt)
    try:
        return RUNTIMES[fmt](path)
    except DojoError:
        raise
    except Exception as exc:  # a damaged or foreign file: the runtime's own message, on one line
        raise DojoError(f"{RUNTIME[fmt]} cannot load {path}: {first_line(exc)}") from None


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def batched(runtime: Any, inputs: dict[str, np.ndarray], batch: int = 256) -> np.ndarray:
    """``runtime`` (or any function of named inputs) over many inputs, ``batch`` at a time
    (LiteRT resizes its tensors per call)."""
    n = len(next(iter(inputs.values())))
    return np.concatenate([runtime({k: v[i : i + batch] for k, v in inputs.items()}) for i in range(0, n, batch)])
