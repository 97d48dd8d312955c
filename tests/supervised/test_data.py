from __future__ import annotations

import gzip

import numpy as np
import pytest

from kerasdojo.errors import DojoError
from kerasdojo.supervised import data, folder
from tests.conftest import digit_images


@pytest.mark.parametrize("name", ["images.idx", "images.idx.gz"])
def test_idx_round_trip_plain_and_gzipped(tmp_path, name) -> None:
    x, _ = digit_images(12)
    data.write_idx(tmp_path / name, x)
    back = data.read_idx(tmp_path / name, expect_ndim=3)
    assert back.dtype == np.uint8 and back.shape == (12, 28, 28)
    np.testing.assert_array_equal(back, x)
    if name.endswith(".gz"):
        assert (tmp_path / name).read_bytes()[:2] == b"\x1f\x8b"


def test_idx_wrong_magic(tmp_path) -> None:
    path = tmp_path / "bad.idx"
    path.write_bytes(b"\x12\x34\x08\x03" + bytes(100))
    with pytest.raises(DojoError, match="wrong magic number 0x12340803"):
        data.read_idx(path)


def test_idx_truncated_body(tmp_path) -> None:
    path = tmp_path / "short.idx"
    data.write_idx(path, np.zeros((10, 28, 28), np.uint8))
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(DojoError, match="truncated.*needs 7840 bytes of data, found 7740"):
        data.read_idx(path)


def test_idx_corrupt_gzip(tmp_path) -> None:
    path = tmp_path / "images.idx.gz"
    data.write_idx(path, np.zeros((10, 28, 28), np.uint8))
    raw = bytearray(path.read_bytes())
    raw[20:40] = bytes(range(20))  # damage the deflate stream, keep the gzip magic
    path.write_bytes(bytes(raw))
    with pytest.raises(DojoError, match="not a readable"):
        data.read_idx(path)


def test_idx_labels_where_images_expected(tmp_path) -> None:
    path = tmp_path / "labels.idx"
    data.write_idx(path, np.zeros(10, np.uint8))
    with pytest.raises(DojoError, match="expected images"):
        data.read_idx(path, expect_ndim=3)


def test_idx_folder_plain_and_gz_and_missing(tmp_path, idx_folder) -> None:
    ds = data.load_idx_folder(idx_folder)
    assert ds.train.x.shape == (600, 28, 28) and ds.test.x.shape == (200, 28, 28)
    plain = tmp_path / "plain"
    plain.mkdir()
    for f in idx_folder.iterdir():
        (plain / f.name[:-3]).write_bytes(gzip.decompress(f.read_bytes()))
    np.testing.assert_array_equal(data.load_idx_folder(plain).train.y, ds.train.y)
    (plain / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(DojoError, match="no t10k-labels-idx1-ubyte"):
        data.load_idx_folder(plain)


def test_npz_loads_and_validates(tmp_path) -> None:
    x, y = digit_images(30)
    good = tmp_path / "good.npz"
    np.savez(good, x_train=x[:20], y_train=y[:20], x_test=x[20:, ..., None], y_test=y[20:])
    ds = data.load_npz(good)
    assert ds.train.x.shape == (20, 28, 28) and ds.test.x.shape == (10, 28, 28)
    missing = tmp_path / "missing.npz"
    np.savez(missing, x_train=x, y_train=y)
    with pytest.raises(DojoError, match="missing key.*x_test, y_test"):
        data.load_npz(missing)
    mismatch = tmp_path / "mismatch.npz"
    np.savez(mismatch, x_train=x, y_train=y[:5], x_test=x, y_test=y)
    with pytest.raises(DojoError, match="30 images but y_train has 5 labels"):
        data.load_npz(mismatch)
    shape = tmp_path / "shape.npz"
    np.savez(shape, x_train=np.zeros((3, 32, 32)), y_train=y[:3], x_test=x, y_test=y)
    with pytest.raises(DojoError, match=r"shape \(3, 32, 32\); expected \(N, 28, 28\)"):
        data.load_npz(shape)
    scaled = tmp_path / "scaled.npz"  # floats in [0, 1] are scaled; centred data is refused, not clipped
    np.savez(scaled, x_train=x / 255.0, y_train=y, x_test=x - 128.0, y_test=y)
    with pytest.raises(DojoError, match="x_test has values outside 0-255 or 0-1"):
        data.load_npz(scaled)
    np.savez(scaled, x_train=x / 255.0, y_train=y, x_test=x.astype(np.float64), y_test=y)
    ds = data.load_npz(scaled)
    np.testing.assert_array_equal(ds.train.x, x.reshape(ds.train.x.shape))
    np.testing.assert_array_equal(ds.test.x, ds.train.x)
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"not a zip")
    with pytest.raises(DojoError, match="not a readable .npz"):
        data.load_npz(junk)


def test_load_dataset_errors(tmp_path) -> None:
    with pytest.raises(DojoError, match="does not exist"):
        data.load_dataset("mnist", tmp_path / "nope")
    (tmp_path / "x.txt").write_text("hi")
    with pytest.raises(DojoError, match=".npz file or a folder"):
        data.load_dataset("mnist", tmp_path / "x.txt")
    with pytest.raises(DojoError, match="Unknown dataset"):
        data.load_dataset("cifar", None)


def test_offline_without_cache_says_pass_data(monkeypatch, tmp_path) -> None:
    import keras

    def offline(*args, **kwargs):
        raise OSError("network is unreachable")

    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    monkeypatch.setattr(keras.datasets.mnist, "load_data", offline)
    with pytest.raises(DojoError) as err:
        data.load_dataset("mnist", None)
    assert "--data" in err.value.one_line()


def test_images_are_converted_to_28x28_gray(tmp_path) -> None:
    import imageio.v3 as iio

    gray = np.full((28, 28), 200, np.uint8)
    rgb = np.zeros((28, 28, 3), np.uint8)
    rgb[..., 0] = 255  # pure red -> luma 76
    rgba = np.zeros((28, 28, 4), np.uint8)
    rgba[..., :3] = 255
    rgba[..., 3] = 128  # half transparent white over black -> 128
    big = np.zeros((56, 56), np.uint8)
    big[:28] = 255
    for name, img in (("g.png", gray), ("rgb.png", rgb), ("rgba.png", rgba), ("big.png", big)):
        iio.imwrite(tmp_path / name, img)
    assert folder.read_image(tmp_path / "g.png").tolist() == gray.tolist()
    assert int(folder.read_image(tmp_path / "rgb.png")[0, 0]) == 76
    assert int(folder.read_image(tmp_path / "rgba.png")[0, 0]) == 128
    resized = folder.read_image(tmp_path / "big.png")
    assert resized.shape == (28, 28) and resized[:13].min() == 255 and resized[15:].max() == 0
    iio.imwrite(tmp_path / "photo.jpg", np.stack([gray] * 3, -1))
    assert abs(int(folder.read_image(tmp_path / "photo.jpg")[5, 5]) - 200) <= 3


def test_undecodable_and_wrong_shape_images(tmp_path) -> None:
    (tmp_path / "broken.png").write_bytes(b"\x89PNG garbage")
    with pytest.raises(DojoError, match="train.csv line 3: cannot decode image"):
        folder.read_image(tmp_path / "broken.png", "train.csv line 3")
    with pytest.raises(DojoError, match="expected a grayscale, RGB or RGBA image"):
        folder.to_gray28(np.zeros((28, 28, 5), np.uint8))
    with pytest.raises(DojoError, match="not found"):
        folder.read_image(tmp_path / "missing.png")


def test_digits_folder_loads(digits_folder) -> None:
    ds = folder.load_digits_folder(digits_folder)
    assert ds.train.x.shape == (300, 28, 28) and ds.train.y.shape == (300,)
    assert ds.test is not None and ds.test.names[0] == "300.png" and ds.test.y is None


def test_digits_images_beside_csv(tmp_path) -> None:
    import imageio.v3 as iio

    (tmp_path / "a.png").write_bytes(iio.imwrite("<bytes>", np.zeros((28, 28), np.uint8), extension=".png"))
    (tmp_path / "train.csv").write_text("filename,label\na.png,3\n")
    ds = folder.load_digits_folder(tmp_path)
    assert ds.train.y.tolist() == [3] and ds.test is None


@pytest.mark.parametrize(
    "csv_text,fragment",
    [
        ("file,label\n0.png,1\n", "lacks column(s) filename"),
        ("filename,label\n0.png,12\n", "train.csv line 2: label '12' is not a digit 0-9"),
        ("filename,label\n0.png,x\n", "label 'x' is not a digit"),
        ("filename,label\n0.png,1\nnope.png,2\n", "train.csv line 3: image nope.png not found"),
        ("filename,label\n", "has no rows"),
        ("filename,label\n0.png,1,7\n", "train.csv line 2 has more fields than the header (2): 7"),
    ],
)
def test_digits_csv_errors(digits_folder, csv_text, fragment) -> None:
    (digits_folder / "train.csv").write_text(csv_text)
    with pytest.raises(DojoError) as err:
        folder.load_digits_folder(digits_folder)
    assert fragment in err.value.one_line()


def test_digits_missing_folder_or_csv(tmp_path) -> None:
    with pytest.raises(DojoError, match="must be a folder"):
        folder.load_digits_folder(tmp_path / "nope")
    with pytest.raises(DojoError, match="no train.csv"):
        folder.load_digits_folder(tmp_path)


def test_stratified_split_keeps_class_balance() -> None:
    y = np.repeat(np.arange(10), [50, 40, 30, 20, 10, 50, 40, 30, 20, 2])
    train, val = data.stratified_split(y, 0.2, seed=0)
    assert len(np.intersect1d(train, val)) == 0 and len(train) + len(val) == len(y)
    counts = np.bincount(y[val], minlength=10)
    assert counts.tolist() == [10, 8, 6, 4, 2, 10, 8, 6, 4, 1]
    again, _ = data.stratified_split(y, 0.2, seed=0)
    np.testing.assert_array_equal(train, again)
    train, val = data.stratified_split(np.array([0, 0, 0, 1]), 0.6, seed=0)
    assert sorted(y_ for y_ in np.array([0, 0, 0, 1])[train]) == [0, 1]  # class 1 keeps its only sample
    assert len(val) == 2
