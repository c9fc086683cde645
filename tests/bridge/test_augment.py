"""On-device augmentation: shapes, dtypes, randomness, exact special cases, torchvision semantics, float32 only.

JAX compiles once per (config, shape), so the tests share a few configs and one batch shape (8 images of
16 x 16, and 32 x 32 where a recipe needs it); hypothesis draws few examples.
"""
from __future__ import annotations

import dataclasses

import dm_pix as pix
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from linsim.bridge import augment as A
from linsim.bridge.augment import AugmentConfig, augment, preprocess, recipe
from linsim.errors import LinsimError

B, S = 8, 16
IMAGES = np.random.default_rng(0).integers(0, 256, (B, S, S, 3), dtype=np.uint8)
KEY = jax.random.PRNGKey(0)
# everything off but the crop, with the crop forced to the whole image; no normalisation
PLAIN = AugmentConfig(size=S, crop_scale=(1.0, 1.0), crop_ratio=(1.0, 1.0), flip_p=0.0, jitter_p=0.0,
                      gray_p=0.0, blur_p=0.0, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))
SMALL = recipe("builtin", S)


def _unit(images):
    return np.asarray(images, dtype=np.float64) / 255.0


def test_shape_dtype_and_range():
    out = augment(KEY, jnp.asarray(IMAGES), SMALL, views=3)
    assert out.shape == (3, B, S, S, 3) and out.dtype == jnp.float32
    x = np.asarray(out)
    # every stage keeps values in [0, 1] (convex resampling and blur, clamped jitter), so after
    # normalising with mean = std = 0.5 the views lie in [-1, 1]; 1e-6 is float32 round-off
    assert np.isfinite(x).all() and x.min() >= -1 - 1e-6 and x.max() <= 1 + 1e-6


def test_deterministic_per_key_and_random_across_keys_and_views():
    a = np.asarray(augment(KEY, jnp.asarray(IMAGES), SMALL))
    b = np.asarray(augment(KEY, jnp.asarray(IMAGES), SMALL))
    c = np.asarray(augment(jax.random.PRNGKey(1), jnp.asarray(IMAGES), SMALL))
    np.testing.assert_array_equal(a, b)
    # independent crops of uniform-noise images differ by ~0.5 per value on average (normalised units, range 2);
    # the bounds are 10x and 50x below that, far above float32 round-off
    assert np.abs(a - c).mean() > 0.05
    assert all(np.abs(a[0, i] - a[1, i]).mean() > 0.01 for i in range(B))  # the two views of each image


def test_crop_of_the_whole_image_is_the_identity():
    # scale (1, 1), ratio (1, 1): the box is the full image, resampled at scale 1 with zero translation;
    # every output pixel centre falls exactly on an input pixel centre, so the triangle kernel gives
    # weights 1 and 0 and the output is the input up to float32 rounding of the normalisation (~1e-7)
    out = np.asarray(augment(KEY, jnp.asarray(IMAGES), PLAIN))
    np.testing.assert_allclose(out[0], _unit(IMAGES), atol=1e-6)
    np.testing.assert_allclose(out[1], _unit(IMAGES), atol=1e-6)


def test_flip_with_probability_one_is_the_exact_mirror():
    cfg = dataclasses.replace(PLAIN, flip_p=1.0)
    out = np.asarray(augment(KEY, jnp.asarray(IMAGES), cfg))
    np.testing.assert_allclose(out[0], _unit(IMAGES)[:, :, ::-1], atol=1e-6)  # same bound as the identity


def test_grayscale_with_probability_one_gives_equal_channels():
    cfg = dataclasses.replace(SMALL, gray_p=1.0)
    out = np.asarray(augment(KEY, jnp.asarray(IMAGES), cfg))
    np.testing.assert_array_equal(out[..., 0], out[..., 1])
    np.testing.assert_array_equal(out[..., 0], out[..., 2])
    # ... and the grey level is ITU-R 601 luma, as torchvision's Grayscale
    plain_gray = np.asarray(augment(KEY, jnp.asarray(IMAGES), dataclasses.replace(PLAIN, gray_p=1.0)))
    luma = _unit(IMAGES) @ np.array([0.2989, 0.5870, 0.1140])
    # a float32 weighted sum of 3 values in [0, 1]: a few ulp
    np.testing.assert_allclose(plain_gray[0, ..., 0], luma, atol=1e-6)


def test_normalisation_uses_mean_and_std():
    cfg = dataclasses.replace(PLAIN, mean=(0.1, 0.2, 0.3), std=(0.5, 0.25, 2.0))
    out = np.asarray(augment(KEY, jnp.asarray(IMAGES), cfg))
    want = (_unit(IMAGES) - np.array([0.1, 0.2, 0.3])) / np.array([0.5, 0.25, 2.0])
    np.testing.assert_allclose(out[0], want, atol=1e-5)  # float32 of values up to ~4: ~5e-7 relative


def _all_f64(jaxpr) -> list[str]:
    """Every float64 value named in a jaxpr (variables and literals), recursively."""
    return [line for line in str(jaxpr).splitlines() if "f64" in line]


@pytest.mark.parametrize("name,side", [("cifar10", 32), ("stl10", 32)])
def test_no_float64_anywhere_in_the_traced_program(name, side):
    assert jnp.asarray(1.0).dtype == jnp.float64  # linsim has turned x64 on, so this test means something
    images = jnp.zeros((2, side, side, 3), jnp.uint8)
    cfg = recipe(name, side)
    assert _all_f64(jax.make_jaxpr(lambda k, x: augment(k, x, cfg, 2))(KEY, images)) == []
    assert _all_f64(jax.make_jaxpr(lambda x: preprocess(x, recipe(name, 24)))(images)) == []
    # inside an outer jit traced with x64 on (as the training step is), the views stay float32
    out = jax.jit(lambda k, x: augment(k, x, cfg, 2) * 2.0)(KEY, images)
    assert out.dtype == jnp.float32


def test_recipes_of_the_original_experiments():
    c = recipe("cifar10", 32)
    assert (c.size, c.crop_scale, c.flip_p, c.jitter, c.jitter_p, c.gray_p, c.blur_p) == (
        32, (0.08, 1.0), 0.5, (0.4, 0.4, 0.4, 0.1), 0.8, 0.2, 0.0)
    assert c.mean == (0.4914, 0.4822, 0.4465) and c.std == (0.2023, 0.1994, 0.2010)
    s = recipe("stl10", 96)
    assert (s.jitter, s.jitter_p, s.gray_p, s.blur_p, s.blur_kernel, s.blur_sigma) == (
        (0.8, 0.8, 0.8, 0.2), 0.8, 0.2, 1.0, 9, (0.1, 2.0))
    assert s.mean == (0.0, 0.0, 0.0) and s.std == (1.0, 1.0, 1.0)
    assert recipe("stl10", 48).blur_kernel == 5 and recipe("stl10", 48).blur_sigma == (0.05, 1.0)
    assert recipe("digits", 32).flip_p == 0.0 and recipe("npz", 32).mean == (0.5, 0.5, 0.5)
    assert recipe("builtin", 32).crop_scale == (0.3, 1.0) and recipe("npz", 32).crop_scale == (0.08, 1.0)
    assert hash(c) == hash(recipe("cifar10", 32))  # hashable, a static jit argument
    with pytest.raises(LinsimError, match="no augmentation recipe"):
        recipe("imagenet", 224)


@pytest.mark.parametrize("kwargs,fragment", [
    ({"size": 0}, "size"),
    ({"crop_scale": (0.5, 0.2)}, "crop_scale"),
    ({"crop_scale": (0.0, 1.0)}, "crop_scale"),
    ({"crop_ratio": (2.0, 1.0)}, "crop_ratio"),
    ({"flip_p": 1.5}, "flip_p"),
    ({"gray_p": -0.1}, "gray_p"),
    ({"jitter": (0.4, 0.4, 0.4, 0.6)}, "jitter"),
    ({"blur_kernel": 4}, "blur_kernel"),
    ({"std": (1.0, 0.0, 1.0)}, "std"),
])
def test_config_validation(kwargs, fragment):
    with pytest.raises(LinsimError, match=fragment):
        AugmentConfig(**{"size": 8, **kwargs})


def test_bad_image_batches():
    with pytest.raises(LinsimError, match="uint8"):
        augment(KEY, jnp.zeros((2, S, S, 3), jnp.float32), SMALL)
    with pytest.raises(LinsimError, match=r"\(B, H, W, 3\)"):
        augment(KEY, jnp.zeros((2, S, S), jnp.uint8), SMALL)
    with pytest.raises(LinsimError, match="uint8"):
        preprocess(jnp.zeros((2, S, S, 3), jnp.int32), SMALL)


# ------------------------------------------------------------------------------------------------ ops


def test_crop_boxes_follow_torchvision_sampling():
    h_img, w_img = 32, 24
    scale, ratio = (0.08, 1.0), (3 / 4, 4 / 3)
    u = jax.random.uniform(jax.random.PRNGKey(3), (2000, A._N_UNIFORMS), jnp.float32)
    log_ratio = jnp.log(jnp.asarray(ratio, jnp.float32))
    boxes = np.asarray(jax.vmap(lambda r: A.crop_box(r, h_img, w_img, jnp.asarray(scale, jnp.float32),
                                                     log_ratio))(u))
    top, left, h, w = boxes.T
    assert (h >= 1).all() and (w >= 1).all() and (top >= 0).all() and (left >= 0).all()
    assert (top + h <= h_img).all() and (left + w <= w_img).all()
    assert np.array_equal(boxes, np.round(boxes))  # whole pixels, as torchvision
    # the drawn area a = w_raw * h_raw lies in scale * H * W and |w - w_raw|, |h - h_raw| <= 1/2, so
    # (w - 1/2)(h - 1/2) <= a_max and (w + 1/2)(h + 1/2) >= a_min; the centre-crop fallback (all 10
    # attempts failing; rare here) is the full 24 x 32 box, which satisfies both too
    area = h_img * w_img
    assert ((w - 0.5) * (h - 0.5) <= scale[1] * area + 1e-6).all()
    assert ((w + 0.5) * (h + 0.5) >= scale[0] * area - 1e-6).all()
    # E[area fraction] of U(0.08, 1) is 0.54; attempts that do not fit (large, elongated boxes) are
    # redrawn, which lowers it: the sample mean of 2000 draws (std ~0.006) is between 0.35 and 0.54
    frac = h * w / area
    assert 0.35 < frac.mean() < 0.54
    # offsets are uniform: the box is not always at the top-left corner or centred
    assert len(np.unique(top)) > 10 and len(np.unique(left)) > 10


def test_crop_fallback_is_torchvision_centre_crop():
    # a 16 x 32 image, whole-area boxes of ratio 1 (23 x 23) never fit: torchvision falls back to the
    # centred box of the clamped ratio, 16 x 16 at left = (32 - 16) // 2
    u = jax.random.uniform(KEY, (A._N_UNIFORMS,), jnp.float32)
    box = A.crop_box(u, 16, 32, jnp.asarray([1.0, 1.0], jnp.float32), jnp.zeros(2, jnp.float32))
    np.testing.assert_array_equal(np.asarray(box), [0, 8, 16, 16])


def test_resampling_a_box_at_scale_one_copies_its_pixels():
    # a 16 x 16 box of a 32 x 32 image resampled to 16 x 16: scale 1, translation -(top, left), so the
    # output is exactly the sub-image (this pins the sign and axis order of the translation)
    img = jnp.asarray(_unit(np.random.default_rng(2).integers(0, 256, (32, 32, 3), dtype=np.uint8)), jnp.float32)
    out = A.resize_box(img, jnp.asarray([3.0, 5.0, 16.0, 16.0], jnp.float32), 16)
    np.testing.assert_allclose(out, img[3:19, 5:21], atol=1e-6)  # weights 1/0: float32 round-off only


def test_jitter_ops_match_torchvision_definitions():
    x = jnp.asarray(_unit(IMAGES[0]), jnp.float32)
    gray = np.asarray(x) @ np.array([0.2989, 0.5870, 0.1140])
    # brightness: blend with black; contrast: blend with the mean grey; saturation: blend with grey
    np.testing.assert_allclose(A._brightness(x, 1.3), np.clip(np.asarray(x) * 1.3, 0, 1), atol=1e-6)
    np.testing.assert_allclose(A._contrast(x, 0.6), np.clip(0.6 * np.asarray(x) + 0.4 * gray.mean(), 0, 1),
                               atol=1e-6)
    np.testing.assert_allclose(A._saturation(x, 0.0), np.repeat(gray[..., None], 3, -1), atol=1e-6)
    np.testing.assert_allclose(A._contrast(x, 1.0), x, atol=1e-6)
    # hue: an HSV rotation; 0 is the identity and 1/3 of a turn maps red to green (the float32 RGB -> HSV
    # -> RGB round trip divides by the value and range: a few ulp of O(1) numbers, well under 1e-5)
    np.testing.assert_allclose(A._hue(x, 0.0), x, atol=1e-5)
    red = jnp.zeros((2, 2, 3), jnp.float32).at[..., 0].set(0.8)
    np.testing.assert_allclose(A._hue(red, 1 / 3), np.zeros((2, 2, 3)) + [0, 0.8, 0], atol=1e-5)


def test_colour_jitter_leaves_grey_images_grey_under_hue_and_saturation():
    grey = jnp.broadcast_to(jnp.linspace(0.1, 0.9, S * S, dtype=jnp.float32).reshape(S, S, 1), (S, S, 3))
    u = jax.random.uniform(KEY, (16, 8), jnp.float32)
    strength = jnp.asarray([0.0, 0.0, 0.8, 0.5], jnp.float32)
    ops = (False, False, True, True)
    out = jax.vmap(lambda r: A.color_jitter(grey, A.jitter_factors(r[:4], strength), r[4:], ops))(u)
    # a grey pixel has saturation 0: rotating its hue does not move it, and blending it with its grey level
    # moves it only by the ITU-R 601 weights' sum 0.9999 (as in torchvision): |1 - f| * 1e-4 <= 1e-4
    np.testing.assert_allclose(out, jnp.broadcast_to(grey, out.shape), atol=2e-4)


def test_jitter_factors_are_drawn_in_torchvision_ranges():
    u = jax.random.uniform(KEY, (4000, 4), jnp.float32)
    f = np.asarray(jax.vmap(lambda r: A.jitter_factors(r, jnp.asarray([0.4, 1.5, 0.0, 0.1], jnp.float32)))(u))
    lo, hi = np.array([0.6, 0.0, 1.0, -0.1]), np.array([1.4, 2.5, 1.0, 0.1])
    assert (f >= lo - 1e-6).all() and (f <= hi + 1e-6).all()
    # uniform over each range: sample means within 5 standard errors (range / sqrt(12 * 4000) <= 0.012)
    np.testing.assert_allclose(f.mean(axis=0), (lo + hi) / 2, atol=0.06)


def test_colour_jitter_applies_the_ops_in_a_random_order():
    # brightness x1.6 then contrast x0.5 differs from the reverse order (brightness clips), so each output
    # must be exactly one of the two compositions, and over 64 draws of the order both must occur
    x = jnp.asarray(_unit(IMAGES[0]), jnp.float32)
    factors = jnp.asarray([1.6, 0.5, 1.0, 0.0], jnp.float32)
    u = jax.random.uniform(KEY, (64, 4), jnp.float32)
    outs = np.asarray(jax.vmap(lambda r: A.color_jitter(x, factors, r, (True, True, False, False)))(u))
    bc = np.asarray(A._contrast(A._brightness(x, 1.6), 0.5))
    cb = np.asarray(A._brightness(A._contrast(x, 0.5), 1.6))
    assert np.abs(bc - cb).max() > 0.05
    match_bc = np.abs(outs - bc).max(axis=(1, 2, 3)) < 1e-6
    match_cb = np.abs(outs - cb).max(axis=(1, 2, 3)) < 1e-6
    assert (match_bc ^ match_cb).all()
    assert match_bc.sum() >= 16 and match_cb.sum() >= 16  # Binomial(64, 1/2) is outside [16, 48] w.p. 5e-5


def test_blur_matches_dm_pix_and_keeps_constants():
    x = jnp.asarray(_unit(IMAGES[0]), jnp.float32)
    r = 4
    padded = jnp.pad(x, ((r, r), (r, r), (0, 0)), mode="reflect")
    ref = pix.gaussian_blur(padded, 1.3, 9, padding="VALID")
    # same separable kernel, different summation order: float32 round-off on values in [0, 1]
    np.testing.assert_allclose(A.gaussian_blur(x, jnp.float32(1.3), 9), ref, atol=1e-5)
    const = jnp.full((S, S, 3), 0.7, jnp.float32)
    # reflect padding: a constant image stays constant (zero padding would darken the border)
    np.testing.assert_allclose(A.gaussian_blur(const, jnp.float32(2.0), 9), const, atol=1e-6)


def test_stl10_recipe_with_blur_runs_on_a_larger_image():
    images = jnp.asarray(np.random.default_rng(1).integers(0, 256, (2, 40, 40, 3), dtype=np.uint8))
    out = np.asarray(augment(KEY, images, recipe("stl10", 24)))
    # no normalisation: values are the [0, 1] intensities (round-off 1e-6)
    assert out.shape == (2, 2, 24, 24, 3) and out.min() >= -1e-6 and out.max() <= 1 + 1e-6


def test_preprocess_is_centre_crop_resize_normalise():
    out = np.asarray(preprocess(jnp.asarray(IMAGES), SMALL))
    np.testing.assert_allclose(out, (_unit(IMAGES) - 0.5) / 0.5, atol=1e-6)  # same size: no resampling
    wide = np.zeros((2, 16, 24, 3), np.uint8)
    wide[:, :, 4:20] = 200  # the centre 16 x 16 square is uniform, the side strips are black
    small = np.asarray(preprocess(jnp.asarray(wide), recipe("builtin", 8)))
    assert small.shape == (2, 8, 8, 3)
    np.testing.assert_allclose(small, (200 / 255 - 0.5) / 0.5, atol=1e-5)  # resampling a constant


@settings(max_examples=6)
@given(
    flip=st.sampled_from([0.0, 1.0]),
    scale_lo=st.sampled_from([0.08, 0.5]),
    jitter=st.sampled_from([(0.4, 0.4, 0.4, 0.1), (0.8, 0.0, 0.8, 0.2)]),
    gray=st.sampled_from([0.0, 0.5]),
    blur=st.sampled_from([0.25, 0.75]),  # both keep the blur in the program: one compile per jitter set
    seed=st.integers(0, 2**31 - 1),
)
def test_views_stay_in_range_for_any_recipe(flip, scale_lo, jitter, gray, blur, seed):
    cfg = AugmentConfig(size=S, crop_scale=(scale_lo, 1.0), flip_p=flip, jitter=jitter, gray_p=gray,
                        blur_p=blur, blur_kernel=5, mean=(0.25, 0.5, 0.75), std=(0.5, 0.5, 0.5))
    out = np.asarray(augment(jax.random.PRNGKey(seed), jnp.asarray(IMAGES), cfg))
    lo = (0.0 - np.array(cfg.mean)) / 0.5
    hi = (1.0 - np.array(cfg.mean)) / 0.5
    # every stage maps [0, 1] into [0, 1] (see test_shape_dtype_and_range); 1e-5 covers float32 round-off
    assert np.isfinite(out).all() and out.dtype == np.float32
    assert (out >= lo - 1e-5).all() and (out <= hi + 1e-5).all()
