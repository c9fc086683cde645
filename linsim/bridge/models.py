"""Networks of the bridge trainer: ResNet-18 / resnet-tiny backbones, the projector MLP and the predictors.

Equinox modules acting on ONE example (channels first); batch-norm layers (``eqx.nn.BatchNorm``, mode
"batch": normalise with the batch statistics in training, torch-style running averages with momentum 0.1
for inference) reduce over the vmapped axis named ``"batch"``, so every network is applied through
:func:`apply`. All parameters are created float32 (``import linsim`` switches JAX to float64 by default).

References: He, Zhang, Ren & Sun, "Deep Residual Learning for Image Recognition", CVPR 2016 (BasicBlock,
ResNet-18 = [2, 2, 2, 2] blocks of widths 64-128-256-512); the CIFAR stem (3x3 stride-1 conv, no max-pool)
of Tian, Chen & Ganguli (ICML 2021) code ``models/resnet_base_network.py``; the projector and predictor
heads of Grill et al., "Bootstrap Your Own Latent", NeurIPS 2020, Sec. 3.3 (Linear -> BN -> ReLU -> Linear).
The linear predictor q = Wp z (no bias) is the theory's Wp; see ``docs/bridge.md``.
"""
from __future__ import annotations

import math
from typing import Any, Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from linsim.bridge.config import TrainConfig

F32 = jnp.float32
BN_MOMENTUM = 0.9  # equinox's momentum = 1 - torch's momentum (0.1)
STANDARD_STEM_MIN_SIZE = 64  # images of this size or larger (STL-10's 96) get the 7x7 / max-pool stem
STAGES = {"resnet18": (2, 2, 2, 2), "resnet-tiny": (1, 1, 1, 1)}
WIDTHS = (64, 128, 256, 512)


class BatchNorm(eqx.nn.BatchNorm):
    """``eqx.nn.BatchNorm`` whose output keeps the input's dtype (its inference-mode debiasing
    ``momentum ** counter`` is float64 when JAX runs in 64-bit mode)."""

    def __call__(self, x, state, *, key=None, inference=None):
        y, state = super().__call__(x, state, key=key, inference=inference)
        return y.astype(x.dtype), state


def _bn(n: int, affine: bool = True) -> BatchNorm:
    return BatchNorm(n, axis_name="batch", momentum=BN_MOMENTUM, mode="batch", dtype=F32,
                            channelwise_affine=affine)


def _conv(cin: int, cout: int, k: int, stride: int, key) -> eqx.nn.Conv2d:
    """A bias-free conv (values are set by :func:`build`)."""
    return eqx.nn.Conv2d(cin, cout, k, stride=stride, padding=k // 2, use_bias=False, key=key, dtype=F32)


def _linear(cin: int, cout: int, key, bias: bool = True) -> eqx.nn.Linear:
    """A linear layer (values are set by :func:`build`)."""
    return eqx.nn.Linear(cin, cout, use_bias=bias, key=key, dtype=F32)


class BasicBlock(eqx.Module):
    """Two 3x3 conv-BN layers with an identity (or 1x1 conv-BN) shortcut (He et al. 2016, Fig. 2)."""

    conv1: eqx.nn.Conv2d
    bn1: BatchNorm
    conv2: eqx.nn.Conv2d
    bn2: BatchNorm
    short_conv: eqx.nn.Conv2d | None
    short_bn: eqx.nn.BatchNorm | None

    def __init__(self, cin: int, cout: int, stride: int, key):
        k1, k2, k3 = jax.random.split(key, 3)
        self.conv1, self.bn1 = _conv(cin, cout, 3, stride, k1), _bn(cout)
        self.conv2, self.bn2 = _conv(cout, cout, 3, 1, k2), _bn(cout)
        if stride != 1 or cin != cout:
            self.short_conv, self.short_bn = _conv(cin, cout, 1, stride, k3), _bn(cout)
        else:
            self.short_conv = self.short_bn = None

    def __call__(self, x, state):
        y, state = self.bn1(self.conv1(x), state)
        y, state = self.bn2(self.conv2(jax.nn.relu(y)), state)
        if self.short_conv is not None:
            x, state = self.short_bn(self.short_conv(x), state)
        return jax.nn.relu(y + x), state


class ResNet(eqx.Module):
    """ResNet backbone without the classifier: image (3, H, W) -> globally pooled features (512 * width,)."""

    stem: eqx.nn.Conv2d
    stem_bn: BatchNorm
    pool: eqx.nn.MaxPool2d | None
    blocks: tuple[BasicBlock, ...]
    feature_dim: int = eqx.field(static=True)

    def __init__(self, arch: str, width: float, standard_stem: bool, key):
        widths = [max(1, round(w * width)) for w in WIDTHS]
        keys = jax.random.split(key, 1 + sum(STAGES[arch]))
        if standard_stem:  # ImageNet/STL-10 stem: 7x7 stride 2, then 3x3 stride-2 max-pool
            self.stem, self.pool = _conv(3, widths[0], 7, 2, keys[0]), eqx.nn.MaxPool2d(3, 2, padding=1)
        else:  # CIFAR stem: 3x3 stride 1, no max-pool
            self.stem, self.pool = _conv(3, widths[0], 3, 1, keys[0]), None
        self.stem_bn = _bn(widths[0])
        blocks, cin, i = [], widths[0], 1
        for stage, (n, cout) in enumerate(zip(STAGES[arch], widths)):
            for b in range(n):
                blocks.append(BasicBlock(cin, cout, 2 if (stage > 0 and b == 0) else 1, keys[i]))
                cin, i = cout, i + 1
        self.blocks = tuple(blocks)
        self.feature_dim = widths[-1]

    def __call__(self, x, state):
        x, state = self.stem_bn(self.stem(x), state)
        x = jax.nn.relu(x)
        if self.pool is not None:
            x = self.pool(x)
        for block in self.blocks:
            x, state = block(x, state)
        return jnp.mean(x, axis=(1, 2)), state


class MLPHead(eqx.Module):
    """Linear -> BatchNorm -> ReLU -> Linear (BYOL's projector, and the 'mlp' predictor)."""

    fc1: eqx.nn.Linear
    bn: BatchNorm
    fc2: eqx.nn.Linear

    def __init__(self, cin: int, hidden: int, cout: int, key):
        k1, k2 = jax.random.split(key)
        self.fc1, self.bn, self.fc2 = _linear(cin, hidden, k1), _bn(hidden), _linear(hidden, cout, k2)

    def __call__(self, x, state):
        h, state = self.bn(self.fc1(x), state)
        return self.fc2(jax.nn.relu(h)), state


class LinearPredictor(eqx.Module):
    """q = Wp z with Wp a d x d matrix, no bias: the theory's predictor (``fc.weight`` is Wp)."""

    fc: eqx.nn.Linear

    def __init__(self, d: int, key):
        self.fc = _linear(d, d, key, bias=False)

    @property
    def Wp(self):
        return self.fc.weight

    def __call__(self, x, state):
        return self.fc(x), state


class IdentityPredictor(eqx.Module):
    """No predictor: q = z."""

    def __call__(self, x, state):
        return x, state


class Encoder(eqx.Module):
    """Backbone + projector: image -> (features h, projection z). The target network is one of these."""

    backbone: ResNet
    projector: MLPHead

    def __call__(self, x, state):
        h, state = self.backbone(x, state)
        z, state = self.projector(h, state)
        return (h, z), state


class Online(eqx.Module):
    """The online network: encoder + predictor; ``__call__`` returns (h, z, q)."""

    encoder: Encoder
    predictor: LinearPredictor | MLPHead | IdentityPredictor

    def __call__(self, x, state):
        (h, z), state = self.encoder(x, state)
        q, state = self.predictor(z, state)
        return (h, z, q), state


def uses_standard_stem(cfg: TrainConfig) -> bool:
    return cfg.image_size >= STANDARD_STEM_MIN_SIZE


def _skeleton(cfg: TrainConfig) -> tuple[Online, eqx.nn.State]:
    key = jax.random.PRNGKey(0)  # only shapes are used (eval_shape): nothing is computed here
    kb, kp, kq = jax.random.split(key, 3)
    backbone = ResNet(cfg.arch, cfg.width_value, uses_standard_stem(cfg), kb)
    d = cfg.proj_dim_value
    projector = MLPHead(backbone.feature_dim, cfg.proj_hidden_value, d, kp)
    if cfg.predictor in ("linear", "symmetric", "directpred", "directcopy"):
        predictor: Any = LinearPredictor(d, kq)
    elif cfg.predictor == "mlp":
        predictor = MLPHead(d, cfg.pred_hidden, d, kq)
    else:
        predictor = IdentityPredictor()
    return eqx.nn.make_with_state(Online)(Encoder(backbone, projector), predictor)


def _init_leaf(path: str, leaf: jax.ShapeDtypeStruct, rng: np.random.Generator):
    """Initial value of one leaf, from its name and shape (torch's defaults for ResNets and heads)."""
    shape, dtype = leaf.shape, leaf.dtype
    if not jnp.issubdtype(dtype, jnp.floating):
        return jnp.asarray(np.zeros(shape, dtype))  # batch-norm step counters
    if path.startswith("[1]"):  # batch-norm running (mean, var)
        return jnp.asarray(np.zeros(shape, F32) if path.endswith("[0]") else np.ones(shape, F32))
    if path.endswith(".bias"):
        return jnp.asarray(np.zeros(shape, F32))
    if len(shape) == 4:  # conv (out, in, k, k): He normal, fan-out mode (torchvision ResNet)
        std = math.sqrt(2.0 / (shape[0] * shape[2] * shape[3]))
        return jnp.asarray((std * rng.standard_normal(shape)).astype(F32))
    if len(shape) == 2:  # linear (out, in): uniform(+-1/sqrt(fan_in)) as torch.nn.Linear
        bound = 1.0 / math.sqrt(shape[1])
        return jnp.asarray(rng.uniform(-bound, bound, shape).astype(F32))
    return jnp.asarray(np.ones(shape, F32))  # batch-norm scale


def build(cfg: TrainConfig, seed: int) -> tuple[Online, eqx.nn.State]:
    """The online network and its batch-norm state, float32, initialised from ``seed``.

    Shapes come from ``eqx.filter_eval_shape`` and values from numpy's generator, so building costs no XLA
    compilation (eager per-layer JAX initialisation compiles one small program per layer shape). Init:
    He-normal (fan-out) convolutions, uniform(+-1/sqrt(fan_in)) linear weights, zero biases, unit BN scale.
    """
    skeleton = eqx.filter_eval_shape(_skeleton, cfg)
    rng = np.random.default_rng([int(seed), 0x5EED])

    def init(path, leaf):
        if isinstance(leaf, jax.ShapeDtypeStruct):
            return _init_leaf(jax.tree_util.keystr(path), leaf, rng)
        return leaf

    return jax.tree_util.tree_map_with_path(init, skeleton)


def is_param(x: Any) -> bool:
    """Trainable leaves: floating arrays (batch-norm state indices are leaves here, and not parameters)."""
    return eqx.is_inexact_array(x)


def _state_index_leaf(x: Any) -> bool:
    return isinstance(x, eqx.nn.StateIndex)


def params_of(module: Any) -> Any:
    """The trainable part of a module (floating arrays outside batch-norm state indices)."""
    return eqx.filter(module, is_param, is_leaf=_state_index_leaf)


def split_params(module: Any) -> tuple[Any, Any]:
    return eqx.partition(module, is_param, is_leaf=_state_index_leaf)


def cast(tree: Any, dtype) -> Any:
    """Cast every floating array of ``tree`` to ``dtype`` (mixed precision: f32 parameters, bf16 compute)."""
    return jax.tree_util.tree_map(lambda x: x.astype(dtype) if eqx.is_inexact_array(x) else x, tree,
                                  is_leaf=_state_index_leaf)


def apply(module: Callable, state: eqx.nn.State, x, *, inference: bool = False):
    """Apply a per-example module to a batch ``x`` (B, ...) with batch-norm over the batch; returns
    (outputs, new state). With ``inference`` the running statistics are used and the state is unchanged."""
    call = eqx.nn.inference_mode(module, value=True) if inference else module
    return jax.vmap(call, axis_name="batch", in_axes=(0, None), out_axes=(0, None))(x, state)


def apply_views(module: Callable, state: eqx.nn.State, x):
    """Apply a per-example module to views ``x`` (V, B, ...) in train mode, batch-norm statistics per view.

    The views run as one vmapped program (one trace, larger convolutions); the running statistics then
    move once, with the mean over the views of their batch statistics (a sequential PyTorch-style forward
    moves them once per view; only inference-mode evaluation reads them)."""
    per_view = jax.vmap(module, axis_name="batch", in_axes=(0, None), out_axes=(0, None))
    y, states = jax.vmap(per_view, in_axes=(0, None), out_axes=(0, 0))(x, state)

    def merge(leaf):
        return jnp.mean(leaf, axis=0) if jnp.issubdtype(leaf.dtype, jnp.inexact) else leaf[0]

    return y, jax.tree_util.tree_map(merge, states)


def to_chw(images):
    """(B, H, W, 3) -> (B, 3, H, W): equinox convolutions are channels-first."""
    return jnp.moveaxis(images, -1, -3)


def count_params(module: Any) -> int:
    return int(sum(x.size for x in jax.tree_util.tree_leaves(params_of(module))))
