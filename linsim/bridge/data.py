"""Image datasets for the bridge trainer: readers for CIFAR-10, STL-10 and ``.npz`` files, a built-in
offline set, and on-device batch sampling.

Every loader returns an :class:`ImageData` holding uint8 ``(N, H, W, 3)`` arrays: ``pretrain`` (the
images self-supervised pre-training sees) and, where labels exist, a labelled ``train``/``test`` split
for the kNN and linear-probe evaluations. Nothing is ever fetched from the network; a missing file, a
corrupt file or an array of the wrong shape or dtype raises :class:`~linsim.errors.LinsimError` with one
line naming the file and what is wrong.

Datasets (``DATASETS``):

- ``builtin``: generated deterministically from ``seed`` in well under a second, 10 classes of shapes
  (disc, square, triangle, plus, ring, diamond, X, frame, half-disc, double bar) with random position,
  scale (radius 0.3-0.45 of the side, the whole shape inside the image), rotation, shading and a random
  grating texture on the background, 32 x 32; 2,000 train and 500 test images, balanced; pretrain = the
  train images. Foreground and background are fixed grey levels: a random colour per image is a feature
  that survives colour jitter better than the shape does, and a short BYOL run on this small set then
  learns the colour (kNN and probe accuracy stay at chance); with fixed greys the shape is the only class
  signal and the only thing two views share beyond the texture.
- ``cifar10``: the python pickle batches ``data_batch_1..5`` and ``test_batch`` (Krizhevsky, "Learning
  Multiple Layers of Features from Tiny Images", 2009), in ``data_dir`` or ``data_dir/cifar-10-batches-py``;
  pretrain = the train split. The pickles are read with an unpickler that only accepts numpy arrays.
- ``stl10``: the binary files ``unlabeled_X.bin``, ``train_X.bin``, ``train_y.bin``, ``test_X.bin``,
  ``test_y.bin`` (Coates, Lee, Ng, "An Analysis of Single-Layer Networks in Unsupervised Feature
  Learning", AISTATS 2011), in ``data_dir`` or ``data_dir/stl10_binary``: each image is 3 x 96 x 96 bytes,
  channel-major and column-major inside a channel; labels 1..10 become 0..9; pretrain = unlabeled + train.
- ``npz``: ``data_dir`` is an ``.npz`` file with ``images`` (N, H, W, 3) uint8 and optional integer
  ``labels`` (N,); a labelled file gets a deterministic stratified 80/20 train/test split (from ``seed``)
  and pretrain = its train part; an unlabelled one is all pretrain.
- ``digits``: scikit-learn's 1,797 real 8 x 8 handwritten digits (optional extra ``linsim[digits]``),
  bilinearly upsampled to 32 x 32 grey-as-RGB, split 80/20 like ``npz``.

See ``docs/bridge.md`` for the trainer that consumes these.
"""
from __future__ import annotations

import dataclasses
import importlib
import pickle
import zipfile
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from linsim.errors import LinsimError

DATASETS = ("builtin", "cifar10", "stl10", "npz", "digits")

BUILTIN_CLASSES = (
    "disc", "square", "triangle", "plus", "ring", "diamond", "x", "frame", "half_disc", "double_bar",
)
BUILTIN_SIZE = 32
BUILTIN_TRAIN = 2000
BUILTIN_TEST = 500
#: the builtin set's fixed background and foreground grey levels (in [0, 1]): colour carries no
#: information about an image, so the shape is the only thing two augmented views share beyond texture
BUILTIN_BACKGROUND = np.full(3, 0.25, np.float32)
BUILTIN_FOREGROUND = np.full(3, 0.8, np.float32)
TEST_FRACTION = 0.2  # held-out share of a labelled npz / digits set


@dataclasses.dataclass(frozen=True)
class ImageData:
    """A dataset in memory: uint8 (N, H, W, 3) images for pre-training and an optional labelled split."""

    name: str
    pretrain: np.ndarray
    train_images: np.ndarray | None
    train_labels: np.ndarray | None
    test_images: np.ndarray | None
    test_labels: np.ndarray | None
    num_classes: int | None
    source: str

    @property
    def labelled(self) -> bool:
        """Whether the set has a labelled train/test split for probes."""
        return self.train_labels is not None

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """(H, W, 3) of every image."""
        return tuple(self.pretrain.shape[1:])  # type: ignore[return-value]


def load_dataset(name: str, data_dir: str | Path | None = None, *, seed: int = 0) -> ImageData:
    """Load dataset ``name`` (one of ``DATASETS``); ``data_dir`` is the folder (or the ``.npz`` file)."""
    if name not in DATASETS:
        raise LinsimError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")
    if name == "builtin":
        return builtin_dataset(seed=seed)
    if name == "digits":
        return digits_dataset(seed=seed)
    if data_dir is None:
        raise LinsimError(f"dataset {name!r} needs --data-dir (nothing is downloaded)")
    path = Path(data_dir).expanduser()
    if name == "cifar10":
        return read_cifar10(path)
    if name == "stl10":
        return read_stl10(path)
    return read_npz(path, seed=seed)


# --------------------------------------------------------------------------------------------------
# built-in shapes


def _shape_masks(label: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Boolean (N, S, S) foreground masks; ``u, v`` are per-image normalised (rotated) coordinates."""
    r2 = u * u + v * v
    au, av = np.abs(u), np.abs(v)
    cheb = np.maximum(au, av)
    a, b = np.abs(u + v) * np.float32(np.sqrt(0.5)), np.abs(u - v) * np.float32(np.sqrt(0.5))
    masks = (
        r2 <= 1.0,                                                         # disc
        cheb <= 0.8,                                                       # square
        (v <= 0.75) & (v >= -0.95 + 1.7 * au / 0.95),                      # triangle, apex up
        ((au <= 0.3) & (av <= 0.95)) | ((av <= 0.3) & (au <= 0.95)),       # plus
        (r2 <= 1.0) & (r2 >= 0.3),                                         # ring
        au + av <= 1.05,                                                   # diamond
        ((a <= 0.25) & (b <= 1.0)) | ((b <= 0.25) & (a <= 1.0)),           # x
        (cheb <= 0.9) & (cheb >= 0.55),                                    # frame
        (r2 <= 1.0) & (v <= 0.15),                                         # half disc, flat side down
        (au <= 0.95) & ((np.abs(v - 0.45) <= 0.2) | (np.abs(v + 0.45) <= 0.2)),  # double bar
    )
    out = np.zeros(u.shape, dtype=bool)
    for k, mask in enumerate(masks):
        sel = label == k
        out[sel] = mask[sel]
    return out


def make_shapes(n: int, *, seed: int, size: int = BUILTIN_SIZE) -> tuple[np.ndarray, np.ndarray]:
    """``n`` images (n, size, size, 3) uint8 of the 10 built-in shape classes, balanced, and their labels."""
    rng = np.random.default_rng(seed)
    f32 = np.float32

    def unif(lo: float, hi: float, shape: tuple[int, ...]) -> np.ndarray:
        return rng.uniform(lo, hi, shape).astype(f32)

    labels = rng.permutation(np.arange(n) % len(BUILTIN_CLASSES)).astype(np.int32)
    grid = np.arange(size, dtype=f32) + f32(0.5)
    yy, xx = grid[None, :, None], grid[None, None, :]
    radius = unif(0.3, 0.45, (n, 1, 1)) * f32(size)
    # the centre is at least one radius from every edge: the shape (up to a rotated corner) is in the image
    cy = (radius + unif(0.0, 1.0, (n, 1, 1)) * (f32(size) - 2 * radius)).astype(f32)
    cx = (radius + unif(0.0, 1.0, (n, 1, 1)) * (f32(size) - 2 * radius)).astype(f32)
    theta = unif(-0.35, 0.35, (n, 1, 1))
    dx, dy = (xx - cx) / radius, (yy - cy) / radius
    u = np.cos(theta) * dx + np.sin(theta) * dy
    v = -np.sin(theta) * dx + np.cos(theta) * dy
    mask = _shape_masks(labels, u, v)[..., None]

    # background: one fixed dark grey plus a random sinusoidal grating (the texture) and pixel noise
    freq = unif(0.05, 0.3, (n, 1, 1))
    phi = unif(0.0, np.pi, (n, 1, 1))
    phase = unif(0.0, 2 * np.pi, (n, 1, 1))
    grating = np.sin(f32(2 * np.pi) * freq * (xx * np.cos(phi) + yy * np.sin(phi)) + phase)
    background = BUILTIN_BACKGROUND + unif(0.0, 0.2, (n, 1, 1, 1)) * grating[..., None]
    # foreground: one fixed light grey, lightly shaded
    foreground = BUILTIN_FOREGROUND + unif(-0.1, 0.1, (n, 1, 1, 1)) * (u + v)[..., None]
    img = np.where(mask, foreground, background)
    img += (rng.random((n, size, size, 1), dtype=f32) - f32(0.5)) * f32(0.1)  # pixel noise, +-0.05
    return np.clip(np.rint(img * f32(255.0)), 0, 255).astype(np.uint8), labels


def builtin_dataset(*, seed: int = 0, n_train: int = BUILTIN_TRAIN, n_test: int = BUILTIN_TEST) -> ImageData:
    """The built-in offline shapes set: deterministic in ``seed``, balanced train and test splits."""
    train_x, train_y = make_shapes(n_train, seed=2 * seed)
    test_x, test_y = make_shapes(n_test, seed=2 * seed + 1)
    return ImageData(
        name="builtin", pretrain=train_x, train_images=train_x, train_labels=train_y, test_images=test_x,
        test_labels=test_y, num_classes=len(BUILTIN_CLASSES), source=f"generated (seed={seed})",
    )


# --------------------------------------------------------------------------------------------------
# helpers shared by the readers


def _check_images(images: np.ndarray, where: str) -> np.ndarray:
    """Return ``images`` if it is a (N, H, W, 3) uint8 array with N >= 1, else raise naming ``where``."""
    if not isinstance(images, np.ndarray):
        raise LinsimError(f"{where}: images must be an array, found {type(images).__name__}")
    if images.dtype != np.uint8:
        raise LinsimError(f"{where}: images must be uint8, found dtype {images.dtype}")
    if images.ndim != 4 or images.shape[-1] != 3:
        raise LinsimError(f"{where}: images must have shape (N, H, W, 3), found {images.shape}")
    if images.shape[0] == 0 or images.shape[1] == 0 or images.shape[2] == 0:
        raise LinsimError(f"{where}: images are empty, shape {images.shape}")
    return images


def _check_labels(labels: object, n: int, where: str) -> np.ndarray:
    """Labels as int32 (n,), non-negative integers, else raise naming ``where``."""
    arr = np.asarray(labels)
    if arr.dtype.kind not in "iu":
        raise LinsimError(f"{where}: labels must be integers, found dtype {arr.dtype}")
    if arr.shape != (n,):
        raise LinsimError(f"{where}: labels must have shape ({n},) to match the images, found {arr.shape}")
    if n and arr.min() < 0:
        raise LinsimError(f"{where}: labels must be >= 0, found {int(arr.min())}")
    return arr.astype(np.int32)


def split_labelled(images: np.ndarray, labels: np.ndarray, *, seed: int, test_fraction: float = TEST_FRACTION
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Deterministic stratified split: ``test_fraction`` of every class (rounded, >= 1 if the class has 2+)."""
    rng = np.random.default_rng(seed)
    test_idx = []
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        k = int(round(test_fraction * idx.size))
        if idx.size >= 2:
            k = min(max(k, 1), idx.size - 1)
        test_idx.append(idx[:k])
    test = np.zeros(labels.shape[0], dtype=bool)
    test[np.concatenate(test_idx)] = True
    return images[~test], labels[~test], images[test], labels[test]


def _find_dir(path: Path, sub: str, marker: str, what: str) -> Path:
    """``path`` or ``path/sub``, whichever holds ``marker``; raise if neither exists or holds it."""
    if not path.exists():
        raise LinsimError(f"{path}: no such directory ({what} data dir)")
    if not path.is_dir():
        raise LinsimError(f"{path}: not a directory ({what} data dir)")
    for cand in (path, path / sub):
        if (cand / marker).is_file():
            return cand
    return path


def _need_file(path: Path) -> Path:
    if path.is_dir():
        raise LinsimError(f"{path}: is a directory, expected a file")
    if not path.is_file():
        raise LinsimError(f"{path}: file not found")
    return path


# --------------------------------------------------------------------------------------------------
# CIFAR-10


def _numpy_globals() -> dict[tuple[str, str], object]:
    """The only globals a CIFAR-10 pickle may reference: numpy's array reconstruction machinery."""
    pkg = "numpy._core" if hasattr(np, "_core") else "numpy.core"
    core = importlib.import_module(f"{pkg}.multiarray")
    numeric = importlib.import_module(f"{pkg}.numeric")
    import codecs

    allowed: dict[tuple[str, str], object] = {
        ("numpy", "ndarray"): np.ndarray, ("numpy", "dtype"): np.dtype,
        ("_codecs", "encode"): codecs.encode,  # how Python 3's protocol 2 pickles the bytes of an array
    }
    for mod in ("numpy.core.multiarray", "numpy._core.multiarray"):
        allowed[(mod, "_reconstruct")] = core._reconstruct
        allowed[(mod, "scalar")] = core.scalar
    for mod in ("numpy.core.numeric", "numpy._core.numeric"):
        allowed[(mod, "_frombuffer")] = numeric._frombuffer  # protocol 5
    return allowed


class _ArrayUnpickler(pickle.Unpickler):
    """An unpickler that builds dicts, lists, bytes and numpy arrays and refuses everything else."""

    _allowed = _numpy_globals()

    def find_class(self, module: str, name: str) -> object:
        try:
            return self._allowed[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}") from None


def _read_cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """One CIFAR-10 python batch: dict with b'data' (n, 3072) uint8 rows R|G|B, 32x32 row-major, b'labels'."""
    _need_file(path)
    try:
        with open(path, "rb") as fh:
            batch = _ArrayUnpickler(fh, encoding="bytes").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError,
            KeyError, ImportError, MemoryError) as err:
        raise LinsimError(f"{path}: not a readable CIFAR-10 python pickle ({type(err).__name__}: {err})") from None
    if not isinstance(batch, dict):
        raise LinsimError(f"{path}: expected a pickled dict, found {type(batch).__name__}")
    keys = {k.decode() if isinstance(k, bytes) else str(k): v for k, v in batch.items()}
    missing = [k for k in ("data", "labels") if k not in keys]
    if missing:
        raise LinsimError(f"{path}: missing key(s) {missing} (found {sorted(keys)})")
    data = np.asarray(keys["data"]) if not isinstance(keys["data"], np.ndarray) else keys["data"]
    if data.dtype != np.uint8:
        raise LinsimError(f"{path}: b'data' must be uint8, found dtype {data.dtype}")
    if data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        raise LinsimError(f"{path}: b'data' must have shape (N, 3072), found {data.shape}")
    images = data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    labels = _check_labels(keys["labels"], images.shape[0], str(path))
    if labels.size and labels.max() > 9:
        raise LinsimError(f"{path}: CIFAR-10 labels must be in 0..9, found {int(labels.max())}")
    return np.ascontiguousarray(images), labels


def read_cifar10(path: Path) -> ImageData:
    """CIFAR-10 from ``data_batch_1..5`` and ``test_batch`` in ``path`` or ``path/cifar-10-batches-py``."""
    root = _find_dir(Path(path), "cifar-10-batches-py", "test_batch", "CIFAR-10")
    parts = [_read_cifar_batch(root / f"data_batch_{i}") for i in range(1, 6)]
    train_x = np.concatenate([p[0] for p in parts])
    train_y = np.concatenate([p[1] for p in parts])
    test_x, test_y = _read_cifar_batch(root / "test_batch")
    return ImageData(
        name="cifar10", pretrain=train_x, train_images=train_x, train_labels=train_y, test_images=test_x,
        test_labels=test_y, num_classes=10, source=str(root.resolve()),
    )


# --------------------------------------------------------------------------------------------------
# STL-10

STL_SIDE = 96
_STL_BYTES = 3 * STL_SIDE * STL_SIDE


def _read_stl_images(path: Path) -> np.ndarray:
    """An STL-10 ``*_X.bin``: n images of 3 x 96 x 96 bytes, channel-major, column-major in each channel."""
    _need_file(path)
    raw = np.fromfile(path, dtype=np.uint8)
    if raw.size == 0 or raw.size % _STL_BYTES:
        raise LinsimError(f"{path}: size {raw.size} bytes is not a positive multiple of 3*96*96 = {_STL_BYTES}")
    return np.ascontiguousarray(raw.reshape(-1, 3, STL_SIDE, STL_SIDE).transpose(0, 3, 2, 1))


def _read_stl_labels(path: Path, n: int) -> np.ndarray:
    """An STL-10 ``*_y.bin``: one byte per image, 1..10, returned as 0..9."""
    _need_file(path)
    raw = np.fromfile(path, dtype=np.uint8)
    if raw.size != n:
        raise LinsimError(f"{path}: {raw.size} labels for {n} images")
    if raw.size and (raw.min() < 1 or raw.max() > 10):
        raise LinsimError(f"{path}: STL-10 labels must be in 1..10, found {int(raw.min())}..{int(raw.max())}")
    return raw.astype(np.int32) - 1


def read_stl10(path: Path) -> ImageData:
    """STL-10 binary files in ``path`` or ``path/stl10_binary``; pretrain = unlabeled + train."""
    root = _find_dir(Path(path), "stl10_binary", "train_X.bin", "STL-10")
    train_x = _read_stl_images(root / "train_X.bin")
    train_y = _read_stl_labels(root / "train_y.bin", train_x.shape[0])
    test_x = _read_stl_images(root / "test_X.bin")
    test_y = _read_stl_labels(root / "test_y.bin", test_x.shape[0])
    unlabeled = _read_stl_images(root / "unlabeled_X.bin")
    return ImageData(
        name="stl10", pretrain=np.concatenate([unlabeled, train_x]), train_images=train_x, train_labels=train_y,
        test_images=test_x, test_labels=test_y, num_classes=10, source=str(root.resolve()),
    )


# --------------------------------------------------------------------------------------------------
# npz and digits


def _labelled(name: str, images: np.ndarray, labels: np.ndarray | None, *, seed: int, source: str) -> ImageData:
    if labels is None:
        return ImageData(name=name, pretrain=images, train_images=None, train_labels=None, test_images=None,
                         test_labels=None, num_classes=None, source=source)
    tr_x, tr_y, te_x, te_y = split_labelled(images, labels, seed=seed)
    if te_y.size == 0:
        raise LinsimError(f"{source}: too few labelled images for a train/test split (no class has 2 images)")
    return ImageData(name=name, pretrain=tr_x, train_images=tr_x, train_labels=tr_y, test_images=te_x,
                     test_labels=te_y, num_classes=int(labels.max()) + 1, source=source)


def read_npz(path: Path, *, seed: int = 0) -> ImageData:
    """An ``.npz`` with ``images`` (N, H, W, 3) uint8 and optional integer ``labels`` (N,)."""
    path = Path(path)
    _need_file(path)
    try:
        with np.load(path, allow_pickle=False) as npz:
            keys = sorted(npz.files)
            unknown = [k for k in keys if k not in ("images", "labels")]
            if unknown:
                raise LinsimError(f"{path}: unexpected key(s) {unknown}; an npz dataset holds 'images' and "
                                  "optionally 'labels'")
            if "images" not in keys:
                raise LinsimError(f"{path}: no 'images' array (found keys {keys})")
            images = npz["images"]
            labels = npz["labels"] if "labels" in keys else None
    except LinsimError:
        raise
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as err:
        raise LinsimError(f"{path}: not a readable .npz file ({type(err).__name__}: {err})") from None
    _check_images(images, str(path))
    if labels is not None:
        labels = _check_labels(labels, images.shape[0], str(path))
    return _labelled("npz", images, labels, seed=seed, source=str(path.resolve()))


def _upsample_matrix(n_in: int, n_out: int) -> np.ndarray:
    """(n_out, n_in) bilinear interpolation weights at pixel centres, edges clamped."""
    pos = np.clip((np.arange(n_out) + 0.5) * n_in / n_out - 0.5, 0.0, n_in - 1.0)
    lo = np.floor(pos).astype(int)
    hi = np.minimum(lo + 1, n_in - 1)
    frac = pos - lo
    m = np.zeros((n_out, n_in))
    m[np.arange(n_out), lo] += 1.0 - frac
    m[np.arange(n_out), hi] += frac
    return m


def digits_dataset(*, seed: int = 0, size: int = 32) -> ImageData:
    """scikit-learn's 8 x 8 digits (values 0..16), bilinearly upsampled to ``size`` and repeated to RGB."""
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise LinsimError('the digits dataset needs scikit-learn: pip install "linsim[digits]"') from None
    bunch = load_digits()
    small = np.asarray(bunch.images, dtype=np.float64) / 16.0
    m = _upsample_matrix(small.shape[1], size)
    big = np.einsum("ai,nij,bj->nab", m, small, m)
    images = np.repeat(np.clip(np.rint(big * 255.0), 0, 255).astype(np.uint8)[..., None], 3, axis=-1)
    labels = np.asarray(bunch.target, dtype=np.int32)
    return _labelled("digits", images, labels, seed=seed, source="scikit-learn load_digits (8x8 -> 32x32)")


# --------------------------------------------------------------------------------------------------
# on device


def to_device(images: np.ndarray) -> jax.Array:
    """Put uint8 images on the default device once, so batches are gathered there."""
    return jax.device_put(jnp.asarray(_check_images(np.asarray(images), "images")))


def sample_indices(key: jax.Array, n: int, batch_size: int) -> jax.Array:
    """``batch_size`` distinct int32 indices drawn uniformly from ``range(n)`` (jit-able; n, batch_size static)."""
    if batch_size > n:
        raise LinsimError(f"batch size {batch_size} exceeds the {n} images of the dataset")
    return jax.random.choice(key, n, (batch_size,), replace=False).astype(jnp.int32)


def sample_batch(key: jax.Array, images: jax.Array, batch_size: int) -> jax.Array:
    """A uniformly sampled batch (without replacement within the batch) of on-device images."""
    return jnp.take(images, sample_indices(key, images.shape[0], batch_size), axis=0)


def epoch_batches(key: jax.Array, n: int, batch_size: int) -> jax.Array:
    """(n // batch_size, batch_size) int32 indices: one shuffled pass over the data, last partial batch dropped."""
    if batch_size > n:
        raise LinsimError(f"batch size {batch_size} exceeds the {n} images of the dataset")
    steps = n // batch_size
    perm = jax.random.permutation(key, n)[: steps * batch_size].astype(jnp.int32)
    return perm.reshape(steps, batch_size)
