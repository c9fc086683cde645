"""ResNet / projector / predictor modules: sizes against torchvision's ResNet-18, stems, dtypes, init, batch-norm."""
from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from linsim.bridge import models as M
from linsim.bridge.config import TrainConfig

from conftest import tiny_cfg


def _shapes(tree) -> list[tuple[int, ...]]:
    """Shapes of the floating leaves (parameters) of a module or of its eval_shape skeleton."""
    leaves = jax.tree_util.tree_leaves(eqx.filter(
        tree, lambda x: hasattr(x, "shape") and jnp.issubdtype(x.dtype, jnp.floating),
        is_leaf=lambda x: isinstance(x, eqx.nn.StateIndex)))
    return [tuple(x.shape) for x in leaves]


def _n_params(tree) -> int:
    return int(sum(np.prod(s) for s in _shapes(tree)))


@pytest.mark.parametrize("size,expected", [
    # torchvision resnet18 without its fc layer: 11,689,512 - 513,000 = 11,176,512 parameters (7x7 stem);
    # the CIFAR stem's 3x3 conv has 64*3*9 = 1,728 weights instead of 64*3*49 = 9,408
    (96, 11_176_512),
    (32, 11_176_512 - 9_408 + 1_728),
])
def test_resnet18_backbone_matches_torchvision_size(size, expected):
    net, _ = eqx.filter_eval_shape(M._skeleton, TrainConfig(arch="resnet18", image_size=size))
    assert _n_params(net.encoder.backbone) == expected
    assert net.encoder.backbone.feature_dim == 512
    assert (net.encoder.backbone.pool is not None) == (size >= 64)
    assert net.encoder.backbone.stem.weight.shape == ((64, 3, 7, 7) if size >= 64 else (64, 3, 3, 3))
    assert len(net.encoder.backbone.blocks) == 8  # [2, 2, 2, 2] BasicBlocks


@pytest.mark.parametrize("predictor,shapes", [
    ("linear", [(128, 128)]),
    ("directpred", [(128, 128)]),
    ("mlp", [(512, 128), (512,), (512,), (512,), (128, 512), (128,)]),
    ("none", []),
])
def test_heads(predictor, shapes):
    net, _ = eqx.filter_eval_shape(M._skeleton, TrainConfig(arch="resnet18", predictor=predictor))
    proj = net.encoder.projector
    assert proj.fc1.weight.shape == (512, 512) and proj.fc2.weight.shape == (128, 512)
    got = _shapes(net.predictor)
    assert got == shapes
    if predictor in ("linear", "directpred"):
        assert net.predictor.fc.bias is None  # the theory's Wp: no bias


def test_tiny_is_small_and_float32():
    cfg = TrainConfig()  # the CPU default: resnet-tiny, width 0.125
    net, state = M.build(cfg, 0)
    assert net.encoder.backbone.feature_dim == 64 and len(net.encoder.backbone.blocks) == 4
    assert 50_000 < M.count_params(net) < 200_000  # ~100x fewer than ResNet-18
    floats = [x for x in jax.tree_util.tree_leaves(net) if eqx.is_inexact_array(x)]
    floats += [x for x in jax.tree_util.tree_leaves(state) if eqx.is_inexact_array(x)]
    assert floats and all(x.dtype == jnp.float32 for x in floats)  # although linsim enables float64


def test_init_is_deterministic_and_he_scaled():
    cfg = tiny_cfg()
    a, _ = M.build(cfg, 3)
    b, _ = M.build(cfg, 3)
    c, _ = M.build(cfg, 4)
    la, lb, lc = (jax.tree_util.tree_leaves(M.params_of(x)) for x in (a, b, c))
    assert all(np.array_equal(x, y) for x, y in zip(la, lb))
    assert not np.array_equal(la[0], lc[0])
    big, _ = M.build(TrainConfig(arch="resnet18"), 0)
    w = np.asarray(big.encoder.backbone.blocks[-1].conv2.weight)  # (512, 512, 3, 3): 2.4M samples
    # He fan-out normal: std sqrt(2 / (512 * 9)); the sample std is within 0.1% for 2.4M draws
    assert w.std() == pytest.approx(np.sqrt(2 / (512 * 9)), rel=3e-3)


def test_apply_views_is_per_view_batch_norm():
    cfg = tiny_cfg(image_size=8)
    net, state = M.build(cfg, 0)
    x = jax.random.normal(jax.random.PRNGKey(0), (2, 6, 3, 8, 8), jnp.float32)
    (h, z, q), merged = eqx.filter_jit(M.apply_views)(net, state, x)
    assert h.shape == (2, 6, 32) and z.shape == (2, 6, 16) and q.shape == (2, 6, 16)
    singles = [eqx.filter_jit(M.apply)(net, state, x[v]) for v in range(2)]
    for v, ((hv, zv, qv), _) in enumerate(singles):
        # the same maths; vmapped and plain convolutions may round differently in float32
        np.testing.assert_allclose(np.asarray(q[v]), np.asarray(qv), rtol=1e-4, atol=1e-5)
    # running statistics move once, with the mean of the two views' statistics
    for lm, l0, l1 in zip(*(jax.tree_util.tree_leaves(s) for s in (merged, singles[0][1], singles[1][1]))):
        if jnp.issubdtype(lm.dtype, jnp.floating):
            np.testing.assert_allclose(np.asarray(lm), (np.asarray(l0) + np.asarray(l1)) / 2, rtol=1e-5, atol=1e-6)
        else:
            assert int(lm) == int(l0) == 1
    # batch statistics per view: one view's outputs do not depend on the other view's images
    x2 = x.at[1].multiply(3.0)
    (_, _, q2), _ = eqx.filter_jit(M.apply_views)(net, state, x2)
    np.testing.assert_array_equal(np.asarray(q2[0]), np.asarray(q[0]))


def test_inference_mode_stays_float32_and_uses_running_stats():
    cfg = tiny_cfg(image_size=8)
    net, state = M.build(cfg, 0)
    x = jax.random.normal(jax.random.PRNGKey(1), (5, 3, 8, 8), jnp.float32)
    (h, _, _), st = eqx.filter_jit(lambda n, s, x: M.apply(n, s, x, inference=True))(net, state, x)
    assert h.dtype == jnp.float32  # equinox's debiasing is float64 under x64; the subclass casts back
    # inference: each example is processed independently of the rest of the batch
    (h1, _, _), _ = eqx.filter_jit(lambda n, s, x: M.apply(n, s, x, inference=True))(net, state, x[:1])
    np.testing.assert_allclose(np.asarray(h[:1]), np.asarray(h1), rtol=1e-5, atol=1e-6)
