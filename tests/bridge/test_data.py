"""Dataset readers: real on-disk formats written by the tests, the built-in set, digits, and bad inputs.

The CIFAR-10 and STL-10 files are written here byte by byte from the formats' own descriptions (CIFAR-10:
a pickled dict per batch, ``b"data"`` rows of 1024 red, 1024 green, 1024 blue bytes, each channel 32 x 32
row-major; STL-10: 3 x 96 x 96 bytes per image, channel by channel, each channel column-major), so a
transposed or mirrored reader fails the asymmetric-pixel checks. Everything is exact (uint8 data).
"""
from __future__ import annotations

import io
import pickle
import struct
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from linsim.bridge import data
from linsim.bridge.data import DATASETS, ImageData, load_dataset
from linsim.errors import LinsimError

# ------------------------------------------------------------------------------------------------ CIFAR-10


def _cifar_rows(images: np.ndarray) -> np.ndarray:
    """(n, 32, 32, 3) -> (n, 3072) rows in the CIFAR-10 layout, written with explicit index arithmetic."""
    n = images.shape[0]
    rows = np.zeros((n, 3072), dtype=np.uint8)
    for c in range(3):
        for r in range(32):
            rows[:, c * 1024 + r * 32: c * 1024 + (r + 1) * 32] = images[:, r, :, c]
    return rows


class _Py2Pickler(pickle._Pickler):
    """Pickles as Python 2's cPickle wrote the CIFAR-10 batches: str and bytes as py2 ``str`` (BINSTRING,
    read back as bytes with ``encoding="bytes"``), numpy classes under ``numpy.core``, GLOBAL opcodes."""

    dispatch = dict(pickle._Pickler.dispatch)

    def _save_py2_str(self, obj):
        raw = obj.encode("latin1") if isinstance(obj, str) else obj
        if len(raw) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(raw)]) + raw)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(raw)) + raw)
        self.memoize(obj)

    def save_global(self, obj, name=None):
        module = obj.__module__.replace("numpy._core", "numpy.core")
        self.write(pickle.GLOBAL + f"{module}\n{name or obj.__name__}\n".encode("ascii"))
        self.memoize(obj)

    dispatch[str] = _save_py2_str
    dispatch[bytes] = _save_py2_str
    dispatch[type] = save_global


def _dump(obj, fh, protocol):
    if protocol == "py2":
        buf = io.BytesIO()
        _Py2Pickler(buf, protocol=2).dump(obj)
        fh.write(buf.getvalue())
    else:
        pickle.dump(obj, fh, protocol=protocol)


def _write_cifar(root, n_per_batch=3, seed=0, *, protocol="py2"):
    """Five train batches and a test batch; returns (train images, train labels, test images, test labels)."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    out = []
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        imgs = rng.integers(0, 256, (n_per_batch, 32, 32, 3), dtype=np.uint8)
        labels = [int(x) for x in rng.integers(0, 10, n_per_batch)]
        batch = {"batch_label": name, "labels": labels, "data": _cifar_rows(imgs),
                 "filenames": ["x.png"] * n_per_batch}
        if protocol != "py2":
            batch = {k.encode(): v for k, v in batch.items()}
        with open(root / name, "wb") as fh:
            _dump(batch, fh, protocol)
        out.append((imgs, np.array(labels)))
    train_x = np.concatenate([x for x, _ in out[:5]])
    train_y = np.concatenate([y for _, y in out[:5]])
    return train_x, train_y, out[5][0], out[5][1]


@pytest.mark.parametrize("protocol", ["py2", 2, pickle.HIGHEST_PROTOCOL])
def test_cifar10_reads_the_pickle_batches_exactly(tmp_path, protocol):
    # "py2": byte for byte what Python 2 wrote (the published archive); 2 and 5: re-pickled by Python 3
    train_x, train_y, test_x, test_y = _write_cifar(tmp_path, protocol=protocol)
    ds = load_dataset("cifar10", tmp_path)
    assert ds.name == "cifar10" and ds.num_classes == 10
    np.testing.assert_array_equal(ds.train_images, train_x)
    np.testing.assert_array_equal(ds.train_labels, train_y)
    np.testing.assert_array_equal(ds.test_images, test_x)
    np.testing.assert_array_equal(ds.test_labels, test_y)
    np.testing.assert_array_equal(ds.pretrain, train_x)
    assert ds.train_images.dtype == np.uint8 and ds.train_labels.dtype == np.int32


def test_cifar10_orientation_with_an_asymmetric_image(tmp_path):
    # one image, built directly in the file layout: red at (row 0, col 1), green at (row 5, col 0),
    # blue at (row 31, col 30); any transpose or flip of rows/cols/channels moves these
    row = np.zeros(3072, dtype=np.uint8)
    row[0 * 1024 + 0 * 32 + 1] = 200
    row[1 * 1024 + 5 * 32 + 0] = 100
    row[2 * 1024 + 31 * 32 + 30] = 50
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        with open(tmp_path / name, "wb") as fh:
            pickle.dump({b"data": row[None, :], b"labels": [3]}, fh, protocol=2)
    img = load_dataset("cifar10", tmp_path).train_images[0]
    assert img[0, 1, 0] == 200 and img[5, 0, 1] == 100 and img[31, 30, 2] == 50
    assert int(img.astype(int).sum()) == 350


def test_cifar10_in_the_archive_subfolder(tmp_path):
    train_x, *_ = _write_cifar(tmp_path / "cifar-10-batches-py")
    np.testing.assert_array_equal(load_dataset("cifar10", tmp_path).train_images, train_x)


def _break(path, obj=None, raw=None):
    with open(path, "wb") as fh:
        if raw is not None:
            fh.write(raw)
        else:
            pickle.dump(obj, fh, protocol=2)


class _Evil:
    def __reduce__(self):
        return (print, ("pwned",))


@pytest.mark.parametrize("case,fragment", [
    ("missing", "file not found"),
    ("garbage", "not a readable CIFAR-10 python pickle"),
    ("truncated", "not a readable CIFAR-10 python pickle"),
    ("not_dict", "expected a pickled dict"),
    ("cifar100_keys", "missing key(s) ['labels']"),
    ("bad_width", "shape (N, 3072)"),
    ("bad_dtype", "must be uint8"),
    ("label_count", "labels must have shape (3,)"),
    ("label_range", "labels must be in 0..9"),
    ("code", "not a readable CIFAR-10 python pickle"),
])
def test_cifar10_bad_files_name_the_file(tmp_path, case, fragment):
    _write_cifar(tmp_path)
    bad = tmp_path / "data_batch_3"
    good = pickle.loads(bad.read_bytes(), encoding="bytes")  # a Python 2 pickle, as published
    if case == "missing":
        bad.unlink()
    elif case == "garbage":
        _break(bad, raw=b"this is not a pickle at all")
    elif case == "truncated":
        _break(bad, raw=bad.read_bytes()[:100])
    elif case == "not_dict":
        _break(bad, [1, 2, 3])
    elif case == "cifar100_keys":
        _break(bad, {b"data": good[b"data"], b"fine_labels": good[b"labels"]})
    elif case == "bad_width":
        _break(bad, {b"data": good[b"data"][:, :3000], b"labels": good[b"labels"]})
    elif case == "bad_dtype":
        _break(bad, {b"data": good[b"data"].astype(np.int64), b"labels": good[b"labels"]})
    elif case == "label_count":
        _break(bad, {b"data": good[b"data"], b"labels": good[b"labels"][:2]})
    elif case == "label_range":
        _break(bad, {b"data": good[b"data"], b"labels": [0, 10, 1]})
    elif case == "code":
        _break(bad, {b"data": good[b"data"], b"labels": _Evil()})
    with pytest.raises(LinsimError) as err:
        load_dataset("cifar10", tmp_path)
    msg = str(err.value)
    assert "data_batch_3" in msg and fragment in msg and "\n" not in msg


def test_cifar10_bad_directory(tmp_path):
    with pytest.raises(LinsimError, match="no such directory"):
        load_dataset("cifar10", tmp_path / "nowhere")
    (tmp_path / "afile").write_text("x")
    with pytest.raises(LinsimError, match="not a directory"):
        load_dataset("cifar10", tmp_path / "afile")
    with pytest.raises(LinsimError, match="data_batch_1: file not found"):
        load_dataset("cifar10", tmp_path)
    with pytest.raises(LinsimError, match="needs --data-dir"):
        load_dataset("cifar10")


# ------------------------------------------------------------------------------------------------ STL-10


def _stl_bytes(images: np.ndarray) -> bytes:
    """(n, 96, 96, 3) -> STL-10 bytes: per image, per channel, column by column (explicit loops)."""
    n = images.shape[0]
    out = np.zeros(n * 3 * 96 * 96, dtype=np.uint8)
    for i in range(n):
        for c in range(3):
            for col in range(96):
                start = i * 27648 + c * 9216 + col * 96
                out[start:start + 96] = images[i, :, col, c]
    return out.tobytes()


def _write_stl(root, seed=0, n_train=2, n_test=3, n_unlabeled=2):
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    sets = {}
    for split, n in (("train", n_train), ("test", n_test), ("unlabeled", n_unlabeled)):
        x = rng.integers(0, 256, (n, 96, 96, 3), dtype=np.uint8)
        (root / f"{split}_X.bin").write_bytes(_stl_bytes(x))
        y = None
        if split != "unlabeled":
            y = rng.integers(1, 11, n).astype(np.uint8)
            y[0] = 10  # the label 10 must become class 9
            (root / f"{split}_y.bin").write_bytes(y.tobytes())
        sets[split] = (x, y)
    return sets


def test_stl10_reads_the_binary_files_exactly(tmp_path):
    sets = _write_stl(tmp_path)
    ds = load_dataset("stl10", tmp_path)
    np.testing.assert_array_equal(ds.train_images, sets["train"][0])
    np.testing.assert_array_equal(ds.train_labels, sets["train"][1].astype(int) - 1)
    np.testing.assert_array_equal(ds.test_images, sets["test"][0])
    np.testing.assert_array_equal(ds.test_labels, sets["test"][1].astype(int) - 1)
    np.testing.assert_array_equal(ds.pretrain, np.concatenate([sets["unlabeled"][0], sets["train"][0]]))
    assert ds.train_labels[0] == 9 and ds.num_classes == 10 and ds.pretrain.dtype == np.uint8


def test_stl10_orientation_with_an_asymmetric_image(tmp_path):
    raw = np.zeros(27648, dtype=np.uint8)
    raw[0 * 9216 + 1 * 96 + 0] = 200   # red, column 1, row 0
    raw[1 * 9216 + 0 * 96 + 5] = 100   # green, column 0, row 5
    raw[2 * 9216 + 95 * 96 + 90] = 50  # blue, column 95, row 90
    for split in ("train", "test", "unlabeled"):
        (tmp_path / f"{split}_X.bin").write_bytes(raw.tobytes())
    for split in ("train", "test"):
        (tmp_path / f"{split}_y.bin").write_bytes(bytes([1]))
    img = load_dataset("stl10", tmp_path).train_images[0]
    assert img[0, 1, 0] == 200 and img[5, 0, 1] == 100 and img[90, 95, 2] == 50
    assert int(img.astype(int).sum()) == 350


def test_stl10_in_the_archive_subfolder(tmp_path):
    sets = _write_stl(tmp_path / "stl10_binary")
    np.testing.assert_array_equal(load_dataset("stl10", tmp_path).test_images, sets["test"][0])


@pytest.mark.parametrize("case,file,fragment", [
    ("missing_unlabeled", "unlabeled_X.bin", "file not found"),
    ("missing_labels", "test_y.bin", "file not found"),
    ("truncated", "train_X.bin", "not a positive multiple of 3*96*96"),
    ("empty", "test_X.bin", "not a positive multiple"),
    ("label_count", "train_y.bin", "3 labels for 2 images"),
    ("label_zero", "test_y.bin", "labels must be in 1..10"),
])
def test_stl10_bad_files_name_the_file(tmp_path, case, file, fragment):
    _write_stl(tmp_path)
    path = tmp_path / file
    if case.startswith("missing"):
        path.unlink()
    elif case == "truncated":
        path.write_bytes(path.read_bytes()[:-1])
    elif case == "empty":
        path.write_bytes(b"")
    elif case == "label_count":
        path.write_bytes(bytes([1, 2, 3]))
    elif case == "label_zero":
        path.write_bytes(bytes([0, 1, 2]))
    with pytest.raises(LinsimError) as err:
        load_dataset("stl10", tmp_path)
    msg = str(err.value)
    assert file in msg and fragment in msg and "\n" not in msg


# ------------------------------------------------------------------------------------------------ npz


def test_npz_labelled_gets_a_deterministic_stratified_split(tmp_path):
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, (50, 12, 10, 3), dtype=np.uint8)
    labels = np.repeat(np.arange(5), 10)
    np.savez(tmp_path / "d.npz", images=images, labels=labels)
    a = load_dataset("npz", tmp_path / "d.npz", seed=3)
    b = load_dataset("npz", tmp_path / "d.npz", seed=3)
    c = load_dataset("npz", tmp_path / "d.npz", seed=4)
    np.testing.assert_array_equal(a.test_images, b.test_images)
    assert not np.array_equal(a.test_images, c.test_images)
    # 20 % of each class of 10 is held out: 2 per class
    np.testing.assert_array_equal(np.bincount(a.test_labels), [2] * 5)
    np.testing.assert_array_equal(np.bincount(a.train_labels), [8] * 5)
    assert a.num_classes == 5 and a.pretrain is a.train_images
    # the split is a partition of the file's (image, label) pairs
    pairs = {(x.tobytes(), int(y)) for x, y in zip(images, labels)}
    got = [(x.tobytes(), int(y)) for x, y in zip(np.concatenate([a.train_images, a.test_images]),
                                                  np.concatenate([a.train_labels, a.test_labels]))]
    assert len(got) == 50 and set(got) == pairs


def test_npz_unlabelled_is_all_pretrain(tmp_path):
    images = np.arange(2 * 4 * 4 * 3, dtype=np.uint8).reshape(2, 4, 4, 3)
    np.savez(tmp_path / "u.npz", images=images)
    ds = load_dataset("npz", tmp_path / "u.npz")
    np.testing.assert_array_equal(ds.pretrain, images)
    assert ds.train_images is None and ds.num_classes is None and not ds.labelled


@pytest.mark.parametrize("arrays,fragment", [
    ({"imgs": np.zeros((2, 4, 4, 3), np.uint8)}, "unexpected key(s) ['imgs']"),
    ({"labels": np.zeros(2, np.int64)}, "no 'images' array"),
    ({"images": np.zeros((2, 4, 4, 3), np.float32)}, "must be uint8, found dtype float32"),
    ({"images": np.zeros((2, 4, 4), np.uint8)}, "shape (N, H, W, 3), found (2, 4, 4)"),
    ({"images": np.zeros((2, 4, 4, 1), np.uint8)}, "shape (N, H, W, 3)"),
    ({"images": np.zeros((0, 4, 4, 3), np.uint8)}, "empty"),
    ({"images": np.zeros((2, 4, 4, 3), np.uint8), "labels": np.zeros(3, np.int64)}, "labels must have shape (2,)"),
    ({"images": np.zeros((2, 4, 4, 3), np.uint8), "labels": np.zeros(2, np.float64)}, "labels must be integers"),
    ({"images": np.zeros((2, 4, 4, 3), np.uint8), "labels": np.array([0, -1])}, "labels must be >= 0"),
    ({"images": np.array([None, None], dtype=object)}, "not a readable .npz"),
    ({"images": np.zeros((2, 4, 4, 3), np.uint8), "labels": np.array([0, 1])}, "too few labelled images"),
])
def test_npz_bad_contents_name_the_file(tmp_path, arrays, fragment):
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    with pytest.raises(LinsimError) as err:
        load_dataset("npz", path)
    msg = str(err.value)
    assert "bad.npz" in msg and fragment in msg and "\n" not in msg


def test_npz_missing_or_corrupt_file(tmp_path):
    with pytest.raises(LinsimError, match="nope.npz: file not found"):
        load_dataset("npz", tmp_path / "nope.npz")
    with pytest.raises(LinsimError, match="is a directory, expected a file"):
        load_dataset("npz", tmp_path)
    (tmp_path / "junk.npz").write_bytes(b"PK\x03\x04 definitely not a zip")
    with pytest.raises(LinsimError, match="junk.npz: not a readable .npz"):
        load_dataset("npz", tmp_path / "junk.npz")


# ------------------------------------------------------------------------------------------------ builtin


def test_builtin_is_deterministic_balanced_and_shaped():
    a, b, c = data.builtin_dataset(seed=0), data.builtin_dataset(seed=0), data.builtin_dataset(seed=1)
    assert a.pretrain.tobytes() == b.pretrain.tobytes() and a.test_images.tobytes() == b.test_images.tobytes()
    assert a.pretrain.tobytes() != c.pretrain.tobytes()
    assert a.pretrain.shape == (2000, 32, 32, 3) and a.test_images.shape == (500, 32, 32, 3)
    assert a.pretrain.dtype == np.uint8 and a.train_labels.dtype == np.int32
    np.testing.assert_array_equal(np.bincount(a.train_labels), [200] * 10)
    np.testing.assert_array_equal(np.bincount(a.test_labels), [50] * 10)
    assert a.num_classes == len(data.BUILTIN_CLASSES) == 10 and a.source == "generated (seed=0)"
    assert not {x.tobytes() for x in a.test_images} & {x.tobytes() for x in a.pretrain}  # a fresh draw
    # every image has a visible shape (foreground grey 0.8 +- 0.1 shading against a background grey 0.25
    # +- 0.2 texture: >= 0.25 apart by construction, so the per-image spread is large)
    spread = np.ptp(a.pretrain.reshape(2000, -1, 3).astype(int), axis=1).max(axis=1)
    assert spread.min() >= 60


def test_builtin_class_is_the_shape_not_the_colour():
    # colour carries no class information: every image is grey (R = G = B) on the same background grey in
    # every class, while a simple shape statistic does: the fraction of pixels that differ from the image's
    # border colour (the mean image brightness is not colour-free here: it grows with the shape's area)
    ds = data.builtin_dataset(seed=0)
    np.testing.assert_array_equal(ds.train_images[..., 0], ds.train_images[..., 1])
    np.testing.assert_array_equal(ds.train_images[..., 0], ds.train_images[..., 2])
    x = ds.train_images.astype(np.float64) / 255.0
    y = ds.train_labels
    border_rgb = np.concatenate([x[:, 0], x[:, -1], x[:, :, 0], x[:, :, -1]], axis=1).mean(axis=1)
    class_border = np.stack([border_rgb[y == k].mean(axis=0) for k in range(10)])
    # per-image border means spread by ~0.014 (grating, noise, shapes touching the edge), so over 200 images
    # per class the class means agree to ~0.001 plus a small shape-dependent edge effect (0.008 measured)
    assert np.ptp(class_border, axis=0).max() < 0.03
    assert np.all(np.abs(class_border - data.BUILTIN_BACKGROUND) < 0.03)
    border = np.concatenate([x[:, 0], x[:, -1], x[:, :, 0], x[:, :, -1]], axis=1).mean(axis=1)
    fg = (np.abs(x - border[:, None, None, :]).max(axis=-1) > 0.2).mean(axis=(1, 2))
    class_fg = np.array([fg[y == k].mean() for k in range(10)])
    # the ring and the frame cover far less area than the disc and the square
    names = data.BUILTIN_CLASSES
    assert class_fg[names.index("ring")] < class_fg[names.index("disc")]
    assert class_fg[names.index("frame")] < class_fg[names.index("square")]


# ------------------------------------------------------------------------------------------------ digits


def test_digits_upsampled_from_scikit_learn():
    from sklearn.datasets import load_digits

    ds = load_dataset("digits", seed=0)
    assert ds.pretrain.shape[1:] == (32, 32, 3) and ds.pretrain.dtype == np.uint8
    n = ds.train_images.shape[0] + ds.test_images.shape[0]
    assert n == 1797 and ds.num_classes == 10
    np.testing.assert_array_equal(ds.train_images[..., 0], ds.train_images[..., 2])  # grey as RGB
    # each upsampled image, averaged over its 4 x 4 blocks, is close to an original 8 x 8 digit of the
    # same label: bilinear upsampling of a smooth image preserves block means up to ~1 grey level in 16
    orig = load_digits()
    img = ds.test_images[0, :, :, 0].astype(np.float64) / 255.0 * 16.0
    blocks = img.reshape(8, 4, 8, 4).mean(axis=(1, 3))
    err = np.abs(orig.images - blocks).max(axis=(1, 2))
    best = int(np.argmin(err))
    assert orig.target[best] == ds.test_labels[0] and err[best] < 4.0
    assert load_dataset("digits", seed=0).test_images.tobytes() == ds.test_images.tobytes()


def test_digits_without_scikit_learn_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)
    with pytest.raises(LinsimError, match=r'pip install "linsim\[digits\]"'):
        load_dataset("digits")


# ------------------------------------------------------------------------------------------------ misc


def test_unknown_dataset_lists_the_choices():
    with pytest.raises(LinsimError, match="builtin, cifar10, stl10, npz, digits"):
        load_dataset("imagenet")
    assert DATASETS == ("builtin", "cifar10", "stl10", "npz", "digits")


def test_image_data_is_frozen():
    ds = data.builtin_dataset(seed=0, n_train=10, n_test=10)
    assert isinstance(ds, ImageData) and ds.image_shape == (32, 32, 3)
    with pytest.raises(AttributeError):
        ds.name = "x"  # type: ignore[misc]


def test_device_sampling_is_jittable_and_distinct():
    images = data.to_device(np.arange(20 * 2 * 2 * 3, dtype=np.uint8).reshape(20, 2, 2, 3) % 251)
    sample = jax.jit(data.sample_batch, static_argnums=2)
    key = jax.random.PRNGKey(0)
    idx = np.asarray(jax.jit(data.sample_indices, static_argnums=(1, 2))(key, 20, 8))
    assert idx.dtype == np.int32 and len(set(idx.tolist())) == 8 and idx.min() >= 0 and idx.max() < 20
    batch = sample(key, images, 8)
    np.testing.assert_array_equal(np.asarray(batch), np.asarray(images)[idx])
    assert not np.array_equal(np.asarray(sample(jax.random.PRNGKey(1), images, 8)), np.asarray(batch))
    epoch = np.asarray(data.epoch_batches(key, 20, 6))
    assert epoch.shape == (3, 6) and len(set(epoch.ravel().tolist())) == 18
    with pytest.raises(LinsimError, match="batch size 21 exceeds the 20 images"):
        data.epoch_batches(key, 20, 21)
    with pytest.raises(LinsimError, match="must be uint8"):
        data.to_device(np.zeros((2, 2, 2, 3), np.float32))
    assert jnp.asarray(images).dtype == jnp.uint8
