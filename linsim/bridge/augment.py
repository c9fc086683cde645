"""On-device, vectorised, jitted image augmentation for BYOL/SimSiam: m random views of a uint8 batch.

The pipeline per view and per image follows the torchvision recipes of the original experiments (BYOL,
Grill et al., NeurIPS 2020, appendix B; SimSiam, Chen & He, CVPR 2021, appendix A; DirectPred, Tian,
Chen & Ganguli, ICML 2021, section 6), in this order:

1. **Random resized crop** (torchvision ``RandomResizedCrop``): area fraction ~ U(``crop_scale``), log
   aspect ratio ~ U(log ``crop_ratio``), width and height rounded to pixels, up to 10 attempts and a centre
   crop fallback, exactly as torchvision samples it, vectorised over 10 attempts per image; the box is
   resampled to ``size`` x ``size`` with ``jax.image.scale_and_translate`` (bilinear, antialiased when
   shrinking, like torchvision's ``antialias=True``). dm-pix has no random-resized-crop (its
   ``random_crop`` is fixed-size, its ``affine_transform`` interpolates per pixel with gathers); a
   separable resampling is two small matrix products per image, fast on CPU and GPU.
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
   with one kernel per image, ~20x slower on CPU (the tests check the two agree).
6. **Normalisation** ``(x - mean) / std`` per channel.

Every random draw and every arithmetic op is float32, whatever ``jax_enable_x64`` says (``import linsim``
turns it on): the views come back float32 with shape ``(views, B, size, size, 3)``. With ``vmap`` the
per-image random order of the jitter evaluates all four jitter ops at each of its four stages and selects;
that costs a few elementwise passes and keeps the whole pipeline one fused, branch-free program.

Per-dataset parameters (:func:`recipe`): CIFAR-10 and STL-10 as in the DirectPred code; STL-10 is not
normalised there, so its mean is 0 and std 1 here too; the built-in set, ``npz`` and ``digits`` use the
CIFAR-10 recipe with mean = std = 0.5, and ``digits`` does not flip (a mirrored digit is another symbol).
See ``docs/bridge.md``.
"""
from __future__ import annotations

import dataclasses
import functools
import math

import dm_pix as pix
import jax
import jax.numpy as jnp

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
    if dataset in ("builtin", "npz"):
        return AugmentConfig(size=size)
    if dataset == "digits":
        return AugmentConfig(size=size, flip_p=0.0)
    raise LinsimError(f"no augmentation recipe for dataset {dataset!r}")


# --------------------------------------------------------------------------------------------------
# single-image ops (vmapped below); images are float32 (H, W, 3) in [0, 1]


def crop_box(key: jax.Array, height: int, width: int, scale: tuple[float, float],
             ratio: tuple[float, float]) -> jax.Array:
    """(top, left, h, w) float32 of a torchvision RandomResizedCrop box (10 attempts, centre fallback)."""
    k_area, k_ratio, k_top, k_left = jax.random.split(key, 4)
    area = F32(height * width)
    target = area * jax.random.uniform(k_area, (_CROP_ATTEMPTS,), F32, scale[0], scale[1])
    log_r = jax.random.uniform(k_ratio, (_CROP_ATTEMPTS,), F32, math.log(ratio[0]), math.log(ratio[1]))
    aspect = jnp.exp(log_r)
    w = jnp.round(jnp.sqrt(target * aspect))
    h = jnp.round(jnp.sqrt(target / aspect))
    ok = (w > 0) & (w <= width) & (h > 0) & (h <= height)
    first = jnp.argmax(ok)
    # torchvision's fallback: the largest centred box whose aspect ratio is clamped into ``ratio``
    in_ratio = width / height
    if in_ratio < ratio[0]:
        fw, fh = float(width), float(round(width / ratio[0]))
    elif in_ratio > ratio[1]:
        fh, fw = float(height), float(round(height * ratio[1]))
    else:
        fw, fh = float(width), float(height)
    any_ok = jnp.any(ok)
    h = jnp.where(any_ok, h[first], F32(fh))
    w = jnp.where(any_ok, w[first], F32(fw))
    top = jnp.floor(jax.random.uniform(k_top, (), F32) * (F32(height) - h + 1))
    left = jnp.floor(jax.random.uniform(k_left, (), F32) * (F32(width) - w + 1))
    top = jnp.where(any_ok, top, jnp.floor((F32(height) - h) / 2))
    left = jnp.where(any_ok, left, jnp.floor((F32(width) - w) / 2))
    return jnp.stack([top, left, h, w])


def resize_box(image: jax.Array, box: jax.Array, size: int) -> jax.Array:
    """Resample the (top, left, h, w) box of ``image`` to (size, size) (bilinear, antialiased)."""
    top, left, h, w = box[0], box[1], box[2], box[3]
    sy, sx = F32(size) / h, F32(size) / w
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


def color_jitter(key: jax.Array, image: jax.Array, strength: tuple[float, float, float, float]) -> jax.Array:
    """torchvision ``ColorJitter(b, c, s, h)`` on one image: factors drawn per image, random order."""
    k_f, k_order = jax.random.split(key)
    kb, kc, ks, kh = jax.random.split(k_f, 4)
    b, c, s, h = strength
    factors = (
        jax.random.uniform(kb, (), F32, max(0.0, 1 - b), 1 + b),
        jax.random.uniform(kc, (), F32, max(0.0, 1 - c), 1 + c),
        jax.random.uniform(ks, (), F32, max(0.0, 1 - s), 1 + s),
        jax.random.uniform(kh, (), F32, -h, h),
    )
    ops = [(fn, f) for fn, f, amount in zip((_brightness, _contrast, _saturation, _hue), factors, strength)
           if amount > 0]
    if not ops:
        return image
    # random order: at each stage every op is evaluated and the one the permutation names is picked by
    # indexing a stack. (lax.switch, lax.select_n or a where-chain on the batched index give the same values,
    # but XLA on CPU then fuses the ops into one loop that recomputes the contrast mean per pixel: 20-40x
    # slower; the stack materialises each stage.)
    order = jax.random.permutation(k_order, len(ops))
    for stage in range(len(ops)):
        image = jnp.stack([fn(image, f) for fn, f in ops])[order[stage]]
    return image


def gaussian_blur(image: jax.Array, sigma: jax.Array, kernel: int) -> jax.Array:
    """Gaussian blur of one (H, W, 3) image: separable, reflect-padded, as torchvision's ``GaussianBlur``.

    Written out (two passes of ``kernel`` shifted multiply-adds) rather than ``dm_pix.gaussian_blur``: that
    takes one sigma per call, and under ``vmap`` with a sigma per image it becomes a grouped convolution with
    a kernel per image, ~20x slower on CPU. The tests check both agree.
    """
    r = kernel // 2
    height, width = image.shape[0], image.shape[1]
    x = jnp.arange(-r, r + 1, dtype=F32)
    w = jnp.exp(-(x * x) / (2 * sigma * sigma))
    w = w / jnp.sum(w)
    padded = jnp.pad(image, ((r, r), (r, r), (0, 0)), mode="reflect")
    rows = sum(w[j] * padded[:, j:j + width, :] for j in range(kernel))
    return sum(w[j] * rows[j:j + height, :, :] for j in range(kernel))


def normalise(image: jax.Array, cfg: AugmentConfig) -> jax.Array:
    """``(x - mean) / std`` per channel, float32."""
    return (image - jnp.asarray(cfg.mean, F32)) / jnp.asarray(cfg.std, F32)


def _one(key: jax.Array, image: jax.Array, cfg: AugmentConfig) -> jax.Array:
    """One augmented view of one uint8 (H, W, 3) image: float32 (size, size, 3), normalised."""
    k_crop, k_flip, k_jit, k_jp, k_gray, k_blur, k_bp = jax.random.split(key, 7)
    height, width = image.shape[0], image.shape[1]
    x = image.astype(F32) / F32(255.0)
    box = crop_box(k_crop, height, width, cfg.crop_scale, cfg.crop_ratio)
    x = jnp.clip(resize_box(x, box, cfg.size), 0.0, 1.0)
    if cfg.flip_p > 0:
        x = jnp.where(jax.random.bernoulli(k_flip, cfg.flip_p), pix.flip_left_right(x), x)
    if cfg.jitter_p > 0 and max(cfg.jitter) > 0:
        x = jnp.where(jax.random.bernoulli(k_jp, cfg.jitter_p), color_jitter(k_jit, x, cfg.jitter), x)
    if cfg.gray_p > 0:
        x = jnp.where(jax.random.bernoulli(k_gray, cfg.gray_p), jnp.broadcast_to(_gray(x), x.shape), x)
    if cfg.blur_p > 0:
        sigma = jax.random.uniform(k_blur, (), F32, cfg.blur_sigma[0], cfg.blur_sigma[1])
        blurred = gaussian_blur(x, sigma, cfg.blur_kernel)
        x = blurred if cfg.blur_p >= 1 else jnp.where(jax.random.bernoulli(k_bp, cfg.blur_p), blurred, x)
    return normalise(x, cfg)


def _check_batch(images: jax.Array) -> None:
    if images.ndim != 4 or images.shape[-1] != 3:
        raise LinsimError(f"augment expects images of shape (B, H, W, 3), found {images.shape}")
    if images.dtype != jnp.uint8:
        raise LinsimError(f"augment expects uint8 images, found dtype {images.dtype}")


@functools.partial(jax.jit, static_argnames=("cfg", "views"))
def augment(key: jax.Array, images: jax.Array, cfg: AugmentConfig, views: int = 2) -> jax.Array:
    """``views`` independent augmentations of uint8 (B, H, W, 3) images: float32 (views, B, size, size, 3)."""
    _check_batch(images)
    if views < 1:
        raise LinsimError(f"views must be >= 1, found {views}")
    n = images.shape[0]
    with jax.enable_x64(False):  # every Python float below becomes float32: no float64 op is traced
        keys = jax.vmap(lambda k: jax.random.split(k, n))(jax.random.split(key, views))
        per_image = jax.vmap(functools.partial(_one, cfg=cfg))
        return jax.vmap(per_image, in_axes=(0, None))(keys, images)


@functools.partial(jax.jit, static_argnames=("cfg",))
def preprocess(images: jax.Array, cfg: AugmentConfig) -> jax.Array:
    """No augmentation: centre square crop, resize to (size, size) (bilinear, antialiased), normalise."""
    _check_batch(images)
    height, width = images.shape[1], images.shape[2]
    side = min(height, width)
    top, left = (height - side) // 2, (width - side) // 2
    with jax.enable_x64(False):  # float32 throughout, as in augment
        x = images[:, top:top + side, left:left + side].astype(F32) / F32(255.0)
        if side != cfg.size:
            shape = (x.shape[0], cfg.size, cfg.size, 3)
            x = jnp.clip(jax.image.resize(x, shape, "linear", antialias=True), 0.0, 1.0)
        return normalise(x, cfg)
