"""On-device, vectorised, jitted image augmentation for BYOL/SimSiam: m random views of a uint8 batch.

The pipeline per view and per image follows the torchvision recipes of the original experiments (BYOL,
Grill et al., NeurIPS 2020, appendix B; SimSiam, Chen & He, CVPR 2021; and the DirectPred code of Tian,
Chen & Ganguli, "Understanding Self-supervised Learning Dynamics without Contrastive Pairs", ICML 2021,
``facebookresearch/luckmatters``, ``ssl/real-dataset/data/transforms.py``), in this order:

1. **Random resized crop** (torchvision ``RandomResizedCrop``): area fraction ~ U(``crop_scale``), log
   aspect ratio ~ U(log ``crop_ratio``), width and height rounded to pixels, up to 10 attempts and a centre
   crop fallback, exactly as torchvision samples it, vectorised over 10 attempts per image; the box is
   resampled to ``size`` x ``size`` with ``jax.image.scale_and_translate`` (bilinear, antialiased when
   shrinking, like torchvision's ``antialias=True``). dm-pix has no random-resized-crop (its
   ``random_crop`` is fixed-size, its ``affine_transform`` interpolates per pixel with gathers); a
   separable resampling is two small matrix products per image (dense (size x H) weights: cheap at
   32 x 32, and matrix products are what accelerators do best).
2. **Horizontal flip** with probability ``flip_p`` (``dm_pix.flip_left_right``).
3. **Colour jitter** with probability ``jitter_p``: brightness, contrast, saturation and hue factors drawn
   as torchvision's ``ColorJitter(b, c, s, h)`` draws them, applied in a random order per image as
   torchvision does, each followed by a clamp to [0, 1]. Brightness multiplies by the factor, contrast
   blends with the mean grey level, saturation blends with the grey image (torchvision semantics, written
   out: they are one line each, and dm-pix's ``adjust_brightness`` is additive and its
   ``adjust_contrast``/``adjust_saturation`` follow TensorFlow, so they would not match the recipes'
   parameters); grey is ``dm_pix.rgb_to_grayscale`` (ITU-R 601 weights, as torchvision) and the hue shift
   is ``dm_pix.adjust_hue`` (HSV rotation, as torchvision).
4. **Random grayscale** with probability ``gray_p`` (``dm_pix.rgb_to_grayscale``, repeated to 3 channels).
5. **Gaussian blur** with probability ``blur_p``, sigma ~ U(``blur_sigma``), kernel ``blur_kernel``, on a
   reflect-padded image as torchvision pads it. Written out as two separable passes: ``dm_pix.gaussian_blur``
   takes one sigma per call, and with a sigma per image under ``vmap`` it turns into a grouped convolution
   with one kernel per image, ~5x slower on CPU (the tests check the two agree).
6. **Normalisation** ``(x - mean) / std`` per channel.

Every random draw and every arithmetic op is float32, whatever ``jax_enable_x64`` says (``import linsim``
turns it on): the views come back float32 with shape ``(views, B, size, size, 3)``. With ``vmap`` the
per-image random order of the jitter evaluates all four jitter ops at each of its four stages and selects;
that costs a few elementwise passes and keeps the whole pipeline one branch-free program. All random numbers
of a call come from one ``jax.random.uniform`` draw of shape (views, B, 35): a compact program that compiles
fast, deterministic in the key. Only the structure of a config (size, views, which jitter ops and whether
blur exist, blur kernel) is compiled in; probabilities, ranges, mean and std are traced, so configs that
differ only in those numbers share one compiled program.

Per-dataset parameters (:func:`recipe`): CIFAR-10 and STL-10 as in the DirectPred code; STL-10 is not
normalised there, so its mean is 0 and std 1 here too (inputs in [0, 1]); at a size other than 96 the
STL-10 blur kernel and sigma range scale with ``size / 96``; the built-in set, ``npz`` and ``digits`` use the
CIFAR-10 recipe with mean = std = 0.5, ``digits`` does not flip (a mirrored digit is another symbol), and
the built-in set crops at least 30% of the area (``BUILTIN_CROP_SCALE``; with 8% a view of a 32 px shapes
image often misses the shape).
See ``docs/bridge.md``.
"""
from __future__ import annotations

import dataclasses
import functools

import dm_pix as pix
import jax
import jax.numpy as jnp
import numpy as np

from linsim.errors import LinsimError

F32 = jnp.float32
_CROP_ATTEMPTS = 10  # torchvision RandomResizedCrop.get_params


@dataclasses.dataclass(frozen=True)
class AugmentConfig:
    """Parameters of one augmentation recipe; hashable, so it is a static argument to ``jax.jit``."""

    size: int
    crop_scale: tuple[float, float] = (0.08, 1.0)
    crop_ratio: tuple[float, float] = (3 / 4, 4 / 3)
    flip_p: float = 0.5
    jitter: tuple[float, float, float, float] = (0.4, 0.4, 0.4, 0.1)
    jitter_p: float = 0.8
    gray_p: float = 0.2
    blur_p: float = 0.0
    blur_sigma: tuple[float, float] = (0.1, 2.0)
    blur_kernel: int = 9
    mean: tuple[float, float, float] = (0.5, 0.5, 0.5)
    std: tuple[float, float, float] = (0.5, 0.5, 0.5)

    def __post_init__(self) -> None:
        for name in ("crop_scale", "crop_ratio", "jitter", "blur_sigma", "mean", "std"):
            object.__setattr__(self, name, tuple(float(x) for x in getattr(self, name)))
        if not (isinstance(self.size, int) and self.size >= 1):
            raise LinsimError(f"augment size must be a positive integer, found {self.size!r}")
        lo, hi = self.crop_scale
        if not 0.0 < lo <= hi <= 1.0:
            raise LinsimError(f"crop_scale must satisfy 0 < lo <= hi <= 1, found {self.crop_scale}")
        lo, hi = self.crop_ratio
        if not 0.0 < lo <= hi:
            raise LinsimError(f"crop_ratio must satisfy 0 < lo <= hi, found {self.crop_ratio}")
        for name in ("flip_p", "jitter_p", "gray_p", "blur_p"):
            p = getattr(self, name)
            if not 0.0 <= p <= 1.0:
                raise LinsimError(f"{name} must be a probability in [0, 1], found {p}")
        if len(self.jitter) != 4 or min(self.jitter) < 0 or self.jitter[3] > 0.5:
            raise LinsimError(f"jitter must be (brightness, contrast, saturation, hue) >= 0 with hue <= 0.5, "
                              f"found {self.jitter}")
        lo, hi = self.blur_sigma
        if not 0.0 < lo <= hi:
            raise LinsimError(f"blur_sigma must satisfy 0 < lo <= hi, found {self.blur_sigma}")
        if not (isinstance(self.blur_kernel, int) and self.blur_kernel >= 1 and self.blur_kernel % 2 == 1):
            raise LinsimError(f"blur_kernel must be a positive odd integer, found {self.blur_kernel!r}")
        if len(self.mean) != 3 or len(self.std) != 3 or min(self.std) <= 0:
            raise LinsimError(f"mean and std must have 3 entries with std > 0, found {self.mean}, {self.std}")


BUILTIN_CROP_SCALE = (0.3, 1.0)
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2023, 0.1994, 0.2010)


def recipe(dataset: str, size: int) -> AugmentConfig:
    """The augmentation recipe of ``dataset`` at output side ``size`` (see the module docstring)."""
    if dataset == "cifar10":
        return AugmentConfig(size=size, mean=CIFAR10_MEAN, std=CIFAR10_STD)
    if dataset == "stl10":
        # kernel 9 and sigma in U(0.1, 2) are in pixels of the 96 x 96 output; scale them with the size
        f = size / 96.0
        kernel = max(3, 2 * int(round(4.0 * f)) + 1)
        return AugmentConfig(size=size, jitter=(0.8, 0.8, 0.8, 0.2), blur_p=1.0,
                             blur_sigma=(0.1 * f, 2.0 * f), blur_kernel=kernel,
                             mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))
    if dataset == "builtin":
        # crops of at least 30% of the area: a 0.08 crop of a 32 px shapes image often misses the shape
        return AugmentConfig(size=size, crop_scale=BUILTIN_CROP_SCALE)
    if dataset == "npz":
        return AugmentConfig(size=size)
    if dataset == "digits":
        return AugmentConfig(size=size, flip_p=0.0)
    raise LinsimError(f"no augmentation recipe for dataset {dataset!r}")


# --------------------------------------------------------------------------------------------------
# The random numbers of one view of one image are one row of uniforms, drawn for the whole batch in a
# single call (one threefry hash to compile instead of a dozen per image); these are their columns.
_U_AREA = slice(0, _CROP_ATTEMPTS)
_U_RATIO = slice(_CROP_ATTEMPTS, 2 * _CROP_ATTEMPTS)
_U_TOP, _U_LEFT, _U_FLIP, _U_JITTER_P, _U_GRAY, _U_BLUR_P, _U_SIGMA = range(2 * _CROP_ATTEMPTS, 2 * _CROP_ATTEMPTS + 7)
_U_FACTORS = slice(2 * _CROP_ATTEMPTS + 7, 2 * _CROP_ATTEMPTS + 11)
_U_ORDER = slice(2 * _CROP_ATTEMPTS + 11, 2 * _CROP_ATTEMPTS + 15)
_N_UNIFORMS = 2 * _CROP_ATTEMPTS + 15


def _lerp(u: jax.Array, lo: jax.Array, hi: jax.Array) -> jax.Array:
    """U(lo, hi) from U(0, 1)."""
    return lo + (hi - lo) * u


def crop_box(u: jax.Array, height: int, width: int, scale: jax.Array, log_ratio: jax.Array) -> jax.Array:
    """(top, left, h, w) float32 of a torchvision RandomResizedCrop box (10 attempts, centre fallback).

    ``u`` is this image's row of uniforms, ``scale`` the (lo, hi) area fraction, ``log_ratio`` the (lo, hi)
    log aspect ratio (width / height).
    """
    area = F32(height * width)
    target = area * _lerp(u[_U_AREA], scale[0], scale[1])
    aspect = jnp.exp(_lerp(u[_U_RATIO], log_ratio[0], log_ratio[1]))
    w = jnp.round(jnp.sqrt(target * aspect))
    h = jnp.round(jnp.sqrt(target / aspect))
    ok = (w > 0) & (w <= width) & (h > 0) & (h <= height)
    first = jnp.argmax(ok)
    any_ok = jnp.any(ok)
    # torchvision's fallback: the largest centred box whose aspect ratio is clamped into the ratio range
    in_ratio = F32(width / height)
    r_lo, r_hi = jnp.exp(log_ratio[0]), jnp.exp(log_ratio[1])
    fw = jnp.where(in_ratio > r_hi, jnp.round(height * r_hi), F32(width))
    fh = jnp.where(in_ratio < r_lo, jnp.round(width / r_lo), F32(height))
    h = jnp.where(any_ok, h[first], fh)
    w = jnp.where(any_ok, w[first], fw)
    top = jnp.where(any_ok, jnp.floor(u[_U_TOP] * (height - h + 1)), jnp.floor((height - h) / 2))
    left = jnp.where(any_ok, jnp.floor(u[_U_LEFT] * (width - w + 1)), jnp.floor((width - w) / 2))
    return jnp.stack([top, left, h, w])


def resize_box(image: jax.Array, box: jax.Array, size: int) -> jax.Array:
    """Resample the (top, left, h, w) box of ``image`` to (size, size) (bilinear, antialiased)."""
    top, left, h, w = box[0], box[1], box[2], box[3]
    sy, sx = size / h, size / w
    scale = jnp.stack([sy, sx])
    translation = jnp.stack([-top * sy, -left * sx])
    return jax.image.scale_and_translate(image, (size, size, image.shape[-1]), (0, 1), scale, translation,
                                         method="linear", antialias=True)


def _gray(image: jax.Array) -> jax.Array:
    return pix.rgb_to_grayscale(image, keep_dims=True)


def _brightness(image: jax.Array, f: jax.Array) -> jax.Array:
    """torchvision ``adjust_brightness``: blend with black."""
    return jnp.clip(image * f, 0.0, 1.0)


def _contrast(image: jax.Array, f: jax.Array) -> jax.Array:
    """torchvision ``adjust_contrast``: blend with the mean grey level."""
    return jnp.clip(f * image + (1 - f) * jnp.mean(_gray(image)), 0.0, 1.0)


def _saturation(image: jax.Array, f: jax.Array) -> jax.Array:
    """torchvision ``adjust_saturation``: blend with the grey image."""
    return jnp.clip(f * image + (1 - f) * _gray(image), 0.0, 1.0)


def _hue(image: jax.Array, delta: jax.Array) -> jax.Array:
    """torchvision ``adjust_hue``: rotate the HSV hue by ``delta`` turns (dm-pix)."""
    return jnp.clip(pix.adjust_hue(image, delta), 0.0, 1.0)


_JITTER_OPS = (_brightness, _contrast, _saturation, _hue)


def jitter_factors(u: jax.Array, strength: jax.Array) -> jax.Array:
    """torchvision ``ColorJitter`` factors: b, c, s ~ U(max(0, 1 - x), 1 + x), hue ~ U(-h, h)."""
    lo = jnp.concatenate([jnp.maximum(0.0, 1 - strength[:3]), -strength[3:]])
    hi = jnp.concatenate([1 + strength[:3], strength[3:]])
    return _lerp(u, lo, hi)


def color_jitter(image: jax.Array, factors: jax.Array, order_u: jax.Array, ops: tuple[bool, ...]) -> jax.Array:
    """torchvision ``ColorJitter`` on one image with the given factors, in the random order ``argsort(order_u)``.

    ``ops`` says which of (brightness, contrast, saturation, hue) are on (a zero strength is off). At each
    of the stages every op is evaluated and the one the permutation names is picked by indexing a stack
    (lax.switch, lax.select_n or a where-chain on the batched index give the same values, but XLA on CPU
    then fuses the ops into one loop that recomputes the contrast mean per pixel, 20-40x slower).
    """
    active = [i for i in range(4) if ops[i]]
    if not active:
        return image
    order = jnp.argsort(order_u[jnp.asarray(active)])  # a uniformly random permutation of the active ops

    def stage(k: int, x: jax.Array) -> jax.Array:
        return jnp.stack([_JITTER_OPS[i](x, factors[i]) for i in active])[order[k]]

    return jax.lax.fori_loop(0, len(active), stage, image)


def gaussian_blur(image: jax.Array, sigma: jax.Array, kernel: int) -> jax.Array:
    """Gaussian blur of one (H, W, 3) image: separable, reflect-padded, as torchvision's ``GaussianBlur``.

    Written out (two passes of ``kernel`` shifted multiply-adds) rather than ``dm_pix.gaussian_blur``: that
    takes one sigma per call, and under ``vmap`` with a sigma per image it becomes a grouped convolution with
    a kernel per image, ~5x slower on CPU. The tests check both agree.
    """
    r = kernel // 2
    height, width = image.shape[0], image.shape[1]
    x = jnp.arange(-r, r + 1, dtype=F32)
    w = jnp.exp(-(x * x) / (2 * sigma * sigma))
    w = w / jnp.sum(w)
    padded = jnp.pad(image, ((r, r), (r, r), (0, 0)), mode="reflect")
    rows = sum(w[j] * padded[:, j:j + width, :] for j in range(kernel))
    return sum(w[j] * rows[j:j + height, :, :] for j in range(kernel))


def normalise(image: jax.Array, mean: jax.Array, std: jax.Array) -> jax.Array:
    """``(x - mean) / std`` per channel."""
    return (image - mean) / std


# --------------------------------------------------------------------------------------------------
# the pipeline: structure (sizes, which ops exist) is static; probabilities and strengths are traced,
# so configs that differ only in numbers share one compiled program


def _params(cfg: AugmentConfig) -> dict[str, np.ndarray]:
    f = np.float32
    return {
        "scale": np.asarray(cfg.crop_scale, f), "log_ratio": np.log(np.asarray(cfg.crop_ratio, f)),
        "flip_p": f(cfg.flip_p), "jitter": np.asarray(cfg.jitter, f), "jitter_p": f(cfg.jitter_p),
        "gray_p": f(cfg.gray_p), "blur_p": f(cfg.blur_p), "blur_sigma": np.asarray(cfg.blur_sigma, f),
        "mean": np.asarray(cfg.mean, f), "std": np.asarray(cfg.std, f),
    }


def _structure(cfg: AugmentConfig) -> tuple:
    ops = tuple(bool(cfg.jitter_p > 0 and x > 0) for x in cfg.jitter)
    return (cfg.size, ops, cfg.blur_p > 0, cfg.blur_kernel)


def _one(u: jax.Array, image: jax.Array, p: dict, structure: tuple) -> jax.Array:
    """One augmented view of one uint8 (H, W, 3) image from its uniforms ``u``: float32 (size, size, 3)."""
    size, ops, blur, kernel = structure
    height, width = image.shape[0], image.shape[1]
    x = image.astype(F32) / 255.0
    x = jnp.clip(resize_box(x, crop_box(u, height, width, p["scale"], p["log_ratio"]), size), 0.0, 1.0)
    x = jnp.where(u[_U_FLIP] < p["flip_p"], pix.flip_left_right(x), x)
    if any(ops):
        jittered = color_jitter(x, jitter_factors(u[_U_FACTORS], p["jitter"]), u[_U_ORDER], ops)
        x = jnp.where(u[_U_JITTER_P] < p["jitter_p"], jittered, x)
    x = jnp.where(u[_U_GRAY] < p["gray_p"], jnp.broadcast_to(_gray(x), x.shape), x)
    if blur:
        blurred = gaussian_blur(x, _lerp(u[_U_SIGMA], p["blur_sigma"][0], p["blur_sigma"][1]), kernel)
        x = jnp.where(u[_U_BLUR_P] < p["blur_p"], blurred, x)
    return normalise(x, p["mean"], p["std"])


@functools.partial(jax.jit, static_argnames=("structure", "views"))
def _augment(key: jax.Array, images: jax.Array, p: dict, structure: tuple, views: int) -> jax.Array:
    with jax.enable_x64(False):  # every Python float below becomes float32: no float64 op is traced
        u = jax.random.uniform(key, (views, images.shape[0], _N_UNIFORMS), F32)
        per_image = jax.vmap(functools.partial(_one, p=p, structure=structure))
        return jax.vmap(per_image, in_axes=(0, None))(u, images)


def _check_batch(images: jax.Array) -> None:
    if images.ndim != 4 or images.shape[-1] != 3:
        raise LinsimError(f"augment expects images of shape (B, H, W, 3), found {images.shape}")
    if images.dtype != jnp.uint8:
        raise LinsimError(f"augment expects uint8 images, found dtype {images.dtype}")


def augment(key: jax.Array, images: jax.Array, cfg: AugmentConfig, views: int = 2) -> jax.Array:
    """``views`` independent augmentations of uint8 (B, H, W, 3) images: float32 (views, B, size, size, 3).

    Jitted (configs differing only in probabilities or strengths share a compilation); callable inside an
    outer ``jax.jit`` with ``cfg`` and ``views`` static.
    """
    _check_batch(images)
    if not (isinstance(views, int) and views >= 1):
        raise LinsimError(f"views must be a positive integer, found {views!r}")
    return _augment(key, images, _params(cfg), _structure(cfg), views)


@functools.partial(jax.jit, static_argnames=("size",))
def _preprocess(images: jax.Array, mean: jax.Array, std: jax.Array, size: int) -> jax.Array:
    height, width = images.shape[1], images.shape[2]
    side = min(height, width)
    top, left = (height - side) // 2, (width - side) // 2
    with jax.enable_x64(False):  # float32 throughout, as in augment
        x = images[:, top:top + side, left:left + side].astype(F32) / 255.0
        if side != size:
            x = jnp.clip(jax.image.resize(x, (x.shape[0], size, size, 3), "linear", antialias=True), 0.0, 1.0)
        return normalise(x, mean, std)


def preprocess(images: jax.Array, cfg: AugmentConfig) -> jax.Array:
    """No augmentation: centre square crop, resize to (size, size) (bilinear, antialiased), normalise."""
    _check_batch(images)
    p = _params(cfg)
    return _preprocess(images, p["mean"], p["std"], cfg.size)
