"""BYOL / SimSiam training of a real network, logging what the linear theory predicts.

One training step (:func:`make_step`, jitted, float32 parameters, float32 or bf16 compute):

1. gather the batch on device, ``m`` augmented views (:func:`linsim.bridge.augment.augment`) with the key
   ``fold_in(PRNGKey(seed), step)``, so a resumed run draws exactly what an uninterrupted one draws;
2. online forward of every view (batch-norm statistics per view, as a PyTorch BYOL forwards each view
   separately); target forward with the EMA network (BYOL) or the online outputs themselves (SimSiam,
   ``ema = 0``), behind a stop-gradient unless ``stop_grad`` is off;
3. loss: the symmetric l2-normalised loss 2 - 2 cos(q_i, z'_j) summed over the ordered view pairs i != j,
   averaged over the batch and scaled by 2 / (m (m - 1)), so that two views give BYOL's symmetrised loss
   (Grill et al., NeurIPS 2020, Eq. 2 plus its symmetric term);
4. F_hat <- rho F_hat + (1 - rho) mean_rows(z z^T) over the m B detached online projections z (the
   predictor input), with F_hat = the first batch's value at step 0 (Tian, Chen & Ganguli, ICML 2021,
   Eq. 19; rho = 0.3 as in their DirectPred command) via :func:`linsim.dynamics.predictors.corr_step`;
5. SGD with momentum (or LARS) on the online network with coupled weight decay ``wd``, and on the
   predictor with ``pred_wd`` and learning rate ``lr * pred_lr_ratio`` (the theory's alpha_p);
6. predictor rule: ``symmetric`` projects Wp on its symmetric part after each step; ``directpred`` and
   ``directcopy`` overwrite Wp with the rule's output every ``freq`` steps (also at step 0), as the official
   DirectPred trainer does (its Eq. 18 with the code's max-normalisation, or DirectCopy);
7. target <- m target + (1 - m) online (after the step, as the PyTorch code does).

The loop evaluates before training (epoch 0) and after every epoch (and every ``log_every`` steps): the
predictor's spectra and invariants, CEV-AUC / RankMe of backbone features and projector outputs on a fixed
subset of the pre-training images, kNN and linear-probe accuracy where there are labels; it checkpoints
atomically every epoch. See ``docs/bridge.md`` and ``docs/outputs_and_errors.md``.
"""
from __future__ import annotations

import dataclasses
import json
import math
import sys
import time
from pathlib import Path
from typing import Any, Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax

import linsim
from linsim.bridge import augment as A
from linsim.bridge import checkpoint as C
from linsim.bridge import data as D
from linsim.bridge import evaluate as E
from linsim.bridge import models as M
from linsim.bridge.config import TrainConfig
from linsim.dynamics import predictors as P
from linsim.errors import DivergenceError, LinsimError
from linsim.io import atomic_write_json, atomic_write_text, check_writable, clean_stale_tmp, to_jsonable

F32 = jnp.float32
#: the ``kind`` stamped into config.json: a folder holding it was written by this trainer
RUN_KIND = "linsim bridge train"
#: files and folders of a run folder that belong to linsim (``--force`` removes only these)
OWN_FILES = ("config.json", "metrics.jsonl", "summary.json", "checkpoints", "comparison.json",
             "spectra.png", "predictor_invariants.png", "collapse.png", "accuracy.png")
#: the files of checkpoints/ (``--force`` removes these and leaves anything else there)
CHECKPOINT_FILES = ("init.eqx", "init.json", "last.eqx", "last.json")
#: configuration fields a resumed run may change (they do not change the training trajectory)
RESUMABLE_CHANGES = ("epochs", "data_dir", "log_every", "stop_on_collapse")
EVAL_CHUNK = 256  # images per evaluation forward pass (fixed shape: one compilation)
KNN_K = 20
#: configuration fields that do not enter the compiled step or evaluation (compiled programs are reused
#: across runs that differ only in these, e.g. a run and its resumed continuation in one process)
NOT_TRACED = {"epochs": 1, "log_every": 0, "stop_on_collapse": False, "eval_size": 16,
              "probe_train": 0, "probe_test": 0, "collapse_rankme": 1.0}
_COMPILED: dict[Any, Any] = {}
_COMPILED_MAX = 8


def trace_key(cfg: TrainConfig) -> TrainConfig:
    """``cfg`` with the fields that do not change the compiled programs set to fixed values (the
    ``HYPER`` values are arguments of the step; only SimSiam vs EMA target changes the program; the
    dataset enters through its augmentation recipe and image shapes, which are keys of their own)."""
    return cfg.replace(**NOT_TRACED, dataset="builtin", data_dir=None, lr=1.0, momentum=0.5, wd=0.0, pred_wd=None, pred_lr_ratio=1.0,
                       ema=0.0 if cfg.simsiam else 0.5, rho=0.5, eps=None)


def _cached(key: Any, factory: Callable[[], Any]) -> Any:
    """A small process-wide cache of compiled programs (first in, first out)."""
    if key not in _COMPILED:
        if len(_COMPILED) >= _COMPILED_MAX:
            _COMPILED.pop(next(iter(_COMPILED)))
        _COMPILED[key] = factory()
    return _COMPILED[key]


# ------------------------------------------------------------------------------------------------ state


class TrainState(eqx.Module):
    """Everything that evolves during training (a pytree; its arrays are what a checkpoint holds)."""

    online: M.Online
    target: M.Encoder
    bn: eqx.nn.State  # batch-norm running statistics of the online network
    target_bn: eqx.nn.State
    opt_state: Any  # (online encoder's optimiser state, predictor's optimiser state)
    F_hat: jax.Array  # (d, d) EMA of the predictor input's correlation E[z z^T]
    step: jax.Array  # int32 scalar: optimiser steps taken


def compute_dtype(cfg: TrainConfig):
    """float32 on CPU, bfloat16 on GPU/TPU for ``precision='auto'``."""
    if cfg.precision == "f32" or (cfg.precision == "auto" and jax.default_backend() == "cpu"):
        return jnp.float32
    return jnp.bfloat16


#: the hyperparameters passed to the compiled step as float32 scalars (not baked in as constants), so runs
#: that differ only in these share one compilation (a learning-rate or weight-decay sweep in one process)
HYPER = ("lr", "momentum", "wd", "pred_wd", "pred_lr_ratio", "ema", "rho", "eps")


def hyper_of(cfg: TrainConfig) -> dict[str, Any]:
    """The run-time hyperparameters of ``cfg`` as float32 scalars (the step's last argument)."""
    values = {"lr": cfg.lr, "momentum": cfg.momentum, "wd": cfg.wd, "pred_wd": cfg.pred_wd_value,
              "pred_lr_ratio": cfg.pred_lr_ratio, "ema": cfg.ema, "rho": cfg.rho, "eps": cfg.eps_value}
    return {k: jnp.asarray(np.float32(v)) for k, v in values.items()}


def lr_schedule(cfg: TrainConfig, total_steps: int, base: Any = None) -> Callable[[jax.Array], jax.Array]:
    """Learning rate at optimiser count c: ``base`` (default ``cfg.lr``) constant, or cosine-decayed to 0
    over ``total_steps`` (float32)."""
    base = np.float32(cfg.lr) if base is None else base
    if cfg.schedule == "constant":
        return lambda count: jnp.asarray(base, F32)
    total = max(int(total_steps), 1)

    def cosine(count):
        c = jnp.minimum(count, total).astype(F32)
        return base * (0.5 * (1.0 + jnp.cos(np.float32(math.pi) * c / np.float32(total))))

    return cosine


def _matrix_mask(params):
    return jax.tree_util.tree_map(lambda x: x.ndim > 1, params)


def _optimizer(cfg: TrainConfig, schedule, wd, momentum) -> optax.GradientTransformation:
    """torch-style SGD (weight decay added to the gradient, then heavy-ball momentum), or LARS.

    LARS (You, Gitman & Ginsburg 2017, as in BYOL) leaves biases and batch-norm parameters out of the
    weight decay and the trust ratio. The momentum buffer exists also for momentum 0 (one state layout)."""
    if cfg.optimizer == "lars":
        return optax.lars(schedule, weight_decay=wd, weight_decay_mask=_matrix_mask,
                          trust_ratio_mask=_matrix_mask, momentum=momentum)
    return optax.chain(optax.add_decayed_weights(wd), optax.sgd(schedule, momentum=momentum))


def optimizers(cfg: TrainConfig, total_steps: int, hyper: dict[str, Any] | None = None
               ) -> tuple[optax.GradientTransformation, optax.GradientTransformation]:
    """(online encoder's, predictor's) optimisers; the predictor's lr is ``lr * pred_lr_ratio``.

    ``hyper`` (see :func:`hyper_of`) holds the values, possibly traced; default: those of ``cfg``."""
    h = hyper_of(cfg) if hyper is None else hyper
    enc = _optimizer(cfg, lr_schedule(cfg, total_steps, h["lr"]), h["wd"], h["momentum"])
    pred = _optimizer(cfg, lr_schedule(cfg, total_steps, h["lr"] * h["pred_lr_ratio"]), h["pred_wd"],
                      h["momentum"])
    return enc, pred


def init_state(cfg: TrainConfig, total_steps: int = 1) -> TrainState:
    """The state before training: online network from ``seed``, target = a copy of it (BYOL's init)."""
    online, bn = M.build(cfg, cfg.seed)
    enc_opt, pred_opt = optimizers(cfg, total_steps)
    params = M.params_of(online)
    opt_state = (enc_opt.init(params.encoder), pred_opt.init(params.predictor))
    d = cfg.proj_dim_value
    return TrainState(online=online, target=_copy_arrays(online.encoder), bn=bn, target_bn=_copy_arrays(bn),
                      opt_state=opt_state,
                      F_hat=jnp.zeros((d, d), F32), step=jnp.asarray(0, jnp.int32))


def _keys(cfg: TrainConfig) -> tuple[jax.Array, jax.Array]:
    """(data key, augmentation key): batches of epoch e use fold_in(data key, e), views of step s
    fold_in(augmentation key, s)."""
    base = jax.random.PRNGKey(cfg.seed)
    return jax.random.fold_in(base, 1), jax.random.fold_in(base, 2)


# ------------------------------------------------------------------------------------------------ the step


def _cos_loss(q, z):
    """2 - 2 cos(q, z) per row (rows l2-normalised with torch's floor 1e-12 on the norm), float32."""
    q, z = q.astype(F32), z.astype(F32)
    qn = q / jnp.maximum(jnp.linalg.norm(q, axis=-1, keepdims=True), 1e-12)
    zn = z / jnp.maximum(jnp.linalg.norm(z, axis=-1, keepdims=True), 1e-12)
    return 2.0 - 2.0 * jnp.sum(qn * zn, axis=-1)


def pair_loss(qs, targets):
    """(2 / (m (m - 1))) sum_{i != j} mean_batch (2 - 2 cos(q_i, z'_j)); two views: BYOL's symmetric loss.

    ``qs`` and ``targets`` are (m, B, d) (or sequences of m (B, d) arrays)."""
    m = len(qs)
    total = sum(jnp.mean(_cos_loss(qs[i], targets[j])) for i in range(m) for j in range(m) if i != j)
    return total * (2.0 / (m * (m - 1)))


def forward_views(cfg: TrainConfig, state: TrainState, views, cdt, online=None):
    """Online and target outputs of the views (V, B, S, S, 3) in train mode (batch-norm statistics per
    view, as a PyTorch BYOL forwards each view separately). Returns (loss, z (V, B, d), bn, target_bn)."""
    online = state.online if online is None else online
    x = M.to_chw(views.astype(cdt))
    (_, z, q), bn = M.apply_views(M.cast(online, cdt), state.bn, x)
    tbn = state.target_bn
    if cfg.simsiam:
        zt = z if not cfg.stop_grad else jax.lax.stop_gradient(z)
    else:
        (_, zt), tbn = M.apply_views(M.cast(state.target, cdt), tbn, x)
        zt = jax.lax.stop_gradient(zt)
    return pair_loss(q, zt), z, bn, tbn


def batch_correlation(zs):
    """mean over the m B rows of z z^T (uncentred) for z (m, B, d), float32, detached: the batch estimate of F."""
    z = jax.lax.stop_gradient(zs.astype(F32).reshape(-1, zs.shape[-1]))
    return (z.T @ z) / z.shape[0]


def apply_predictor_rule(cfg: TrainConfig, online: M.Online, F_hat, step, eps) -> M.Online:
    """The symmetric projection or the DirectPred/DirectCopy reset of Wp (``linsim.dynamics.predictors``)."""
    if cfg.predictor == "symmetric":
        return eqx.tree_at(lambda o: o.predictor.fc.weight, online, P.symmetrize(online.predictor.Wp))
    if cfg.predictor in P.RULES:
        Wp = P.reset_predictor(online.predictor.Wp, F_hat, step, rule=cfg.predictor, freq=cfg.freq,
                               eps=eps, form="code", norm="fro", alpha_p=1.0, model="matrix")
        return eqx.tree_at(lambda o: o.predictor.fc.weight, online, Wp.astype(F32))
    return online


def ema_update(target: M.Encoder, encoder: M.Encoder, m, simsiam: bool) -> M.Encoder:
    """target <- m target + (1 - m) online on the parameters (SimSiam: a copy of the online encoder)."""
    if simsiam:
        return encoder
    tp, static = M.split_params(target)
    new = jax.tree_util.tree_map(lambda t, o: m * t + (1.0 - m) * o, tp, M.params_of(encoder))
    return eqx.combine(new, static)


def make_step(cfg: TrainConfig, aug: A.AugmentConfig, like: TrainState, total_steps: int):
    """A jitted ``step(arrays, images, idx, hyper) -> (arrays, loss, batch correlation)`` on a TrainState's
    arrays. ``images`` is the (N, H, W, 3) uint8 pre-training set on device, ``idx`` the (B,) int32 batch
    indices, ``hyper`` the float32 scalars of :func:`hyper_of`;
    the batch correlation is this step's mean z z^T (before the EMA). The state's arrays are donated.
    :func:`step_fn` gives the same function unjitted (for inspection)."""
    return jax.jit(step_fn(cfg, aug, like, total_steps), donate_argnums=0)


def step_fn(cfg: TrainConfig, aug: A.AugmentConfig, like: TrainState, total_steps: int):
    """The training step as a pure function of (state arrays, images, idx, hyper); see :func:`make_step`."""
    _, static = eqx.partition(like, eqx.is_array)
    cdt = compute_dtype(cfg)
    _, aug_key = _keys(cfg)

    def step(arrays, images, idx, hyper):
        state: TrainState = eqx.combine(arrays, static)
        enc_opt, pred_opt = optimizers(cfg, total_steps, hyper)
        views = A.augment(jax.random.fold_in(aug_key, state.step), jnp.take(images, idx, axis=0), aug, cfg.views)
        params, pstatic = M.split_params(state.online)

        def loss_fn(p):
            return forward_views(cfg, state, views, cdt, online=eqx.combine(p, pstatic))

        (_, (loss, zs, bn, tbn)), grads = jax.value_and_grad(lambda p: _aux(loss_fn(p)), has_aux=True)(params)
        corr = batch_correlation(zs)
        F_hat = P.corr_step(state.F_hat, corr, hyper["rho"], state.step)
        upd_e, os_e = enc_opt.update(grads.encoder, state.opt_state[0], params.encoder)
        upd_p, os_p = pred_opt.update(grads.predictor, state.opt_state[1], params.predictor)
        new_params = eqx.tree_at(lambda p: (p.encoder, p.predictor), params,
                                 (optax.apply_updates(params.encoder, upd_e),
                                  optax.apply_updates(params.predictor, upd_p)))
        online = apply_predictor_rule(cfg, eqx.combine(new_params, pstatic), F_hat, state.step, hyper["eps"])
        target = ema_update(state.target, online.encoder, hyper["ema"], cfg.simsiam)
        new = TrainState(online=online, target=target, bn=bn,
                         target_bn=tbn, opt_state=(os_e, os_p), F_hat=F_hat, step=state.step + 1)
        return eqx.partition(new, eqx.is_array)[0], loss, corr

    return step


def _aux(out):
    loss, zs, bn, tbn = out
    return loss, (loss, zs, bn, tbn)


# ------------------------------------------------------------------------------------------------ evaluation


def _eval_fn(cfg: TrainConfig, aug: A.AugmentConfig, like: TrainState):
    """jitted (arrays, uint8 chunk) -> (backbone features h, projections z), inference-mode batch-norm."""
    return _cached(("eval", trace_key(cfg), aug), lambda: _make_eval_fn(cfg, aug, like))


def _make_eval_fn(cfg: TrainConfig, aug: A.AugmentConfig, like: TrainState):
    _, static = eqx.partition(like, eqx.is_array)
    cdt = compute_dtype(cfg)

    @jax.jit
    def run(arrays, images):
        state: TrainState = eqx.combine(arrays, static)
        x = M.to_chw(A.preprocess(images, aug).astype(cdt))
        (h, z), _ = M.apply(M.cast(state.online.encoder, cdt), state.bn, x, inference=True)
        return h.astype(F32), z.astype(F32)

    return run


def _chunked(fn: Callable, arrays, images: np.ndarray | jax.Array, chunk: int = EVAL_CHUNK):
    """Apply ``fn(arrays, chunk)`` over ``images`` in fixed-size chunks (the last one padded)."""
    n = images.shape[0]
    outs: list[list[np.ndarray]] = []
    for start in range(0, n, chunk):
        part = images[start:start + chunk]
        k = part.shape[0]
        if k < chunk:
            pad = np.zeros((chunk - k, *part.shape[1:]), np.uint8)
            part = np.concatenate([np.asarray(part), pad], axis=0)
        res = fn(arrays, jnp.asarray(part))
        outs.append([np.asarray(r)[:k] for r in res])
    return [np.concatenate(parts, axis=0) for parts in zip(*outs)]


@dataclasses.dataclass
class _EvalSet:
    """The fixed images every evaluation uses (numpy, uint8)."""

    eval_images: np.ndarray
    train_images: np.ndarray | None
    train_labels: np.ndarray | None
    test_images: np.ndarray | None
    test_labels: np.ndarray | None


def _eval_set(cfg: TrainConfig, data: D.ImageData) -> _EvalSet:
    rng = np.random.default_rng([cfg.seed, 0xE7A1])
    n = data.pretrain.shape[0]
    ev = data.pretrain[np.sort(rng.permutation(n)[: min(cfg.eval_size, n)])]
    if not data.labelled or data.test_images is None or cfg.probe_train < 2 or cfg.probe_test < 1:
        return _EvalSet(ev, None, None, None, None)
    tr = np.sort(rng.permutation(data.train_images.shape[0])[: cfg.probe_train])
    te = np.sort(rng.permutation(data.test_images.shape[0])[: cfg.probe_test])
    return _EvalSet(ev, data.train_images[tr], data.train_labels[tr], data.test_images[te], data.test_labels[te])


def _check_finite(name: str, x: np.ndarray) -> None:
    if not np.all(np.isfinite(x)):
        raise DivergenceError(f"non-finite {name}: the run diverged")


def evaluate_state(cfg: TrainConfig, state: TrainState, arrays, evalfn, es: _EvalSet, F, *,
                   probes: bool = True) -> dict[str, Any]:
    """Predictor report, representation reports, kNN / probe accuracy and the collapse flag of one state."""
    rec: dict[str, Any] = {}
    if cfg.linear_predictor:
        Wp = np.asarray(state.online.predictor.Wp, np.float64)
        Fm = np.asarray(F, np.float64)
        _check_finite("predictor weights", Wp)
        _check_finite("correlation estimate F", Fm)
        W_before = np.asarray(state.online.encoder.projector.fc2.weight, np.float64)
        rec.update(E.predictor_report(Wp, Fm, W_before, alpha_p=cfg.pred_lr_ratio))
    h, z = _chunked(evalfn, arrays, es.eval_images)
    _check_finite("backbone features", h)
    _check_finite("projector outputs", z)
    rec.update(E.representation_report(h, prefix="backbone"))
    rec.update(E.representation_report(z, prefix="proj"))
    knn = probe = None
    if probes and es.train_images is not None:
        htr, _ = _chunked(evalfn, arrays, es.train_images)
        hte, _ = _chunked(evalfn, arrays, es.test_images)
        _check_finite("backbone features", htr)
        knn = float(E.knn_accuracy(htr, es.train_labels, hte, es.test_labels, k=KNN_K))
        probe = float(E.linear_probe_accuracy(htr, es.train_labels, hte, es.test_labels, seed=cfg.seed))
    rec["knn_acc"], rec["probe_acc"] = knn, probe
    rec["collapsed"] = bool(E.is_collapsed(rec["proj_rankme"], cfg.proj_dim_value, threshold=cfg.collapse_rankme))
    return rec


# ------------------------------------------------------------------------------------------------ run folder


def _is_linsim_run(out: Path) -> bool:
    try:
        return json.loads((out / "config.json").read_text()).get("kind") == RUN_KIND
    except (OSError, ValueError, AttributeError):
        return False


def prepare_run_dir(out: Path, *, resume: bool, force: bool) -> None:
    """Check the output folder before any compute (LinsimError on a conflict); with ``force`` remove
    linsim's own files from it (other files stay)."""
    if resume and force:
        raise LinsimError("--resume and --force exclude each other (--force starts the run again)")
    if out.exists() and not out.is_dir():
        raise LinsimError(f"output path {out} exists and is not a folder")
    check_writable(out)  # the shared check of every writing command: no file on the path, writable
    if out.is_dir():
        clean_stale_tmp(out)
    empty = not out.exists() or not any(out.iterdir())
    if resume:
        if empty or not _is_linsim_run(out):
            raise LinsimError(f"cannot resume: {out} holds no bridge run (no config.json written by linsim)")
        if not (out / "checkpoints" / "last.eqx").is_file():
            raise LinsimError(f"cannot resume: {out / 'checkpoints' / 'last.eqx'} not found")
        return
    if empty:
        return
    if not _is_linsim_run(out):
        raise LinsimError(f"output folder {out} is not empty and was not written by linsim; choose another --out")
    if not force:
        raise LinsimError(f"output folder {out} already holds a bridge run; pass --resume to continue it or "
                          "--force to replace it")
    for name in OWN_FILES:
        p = out / name
        if p.is_dir():  # checkpoints/: only the checkpoint files; anything else a user put there stays
            for f in p.iterdir():
                if f.name in CHECKPOINT_FILES:
                    f.unlink()
            if not any(p.iterdir()):
                p.rmdir()
        elif p.exists():
            p.unlink()


def read_config(run_dir: str | Path) -> tuple[TrainConfig, dict[str, Any]]:
    """(TrainConfig, the whole config.json) of a run folder."""
    path = Path(run_dir) / "config.json"
    try:
        blob = json.loads(path.read_text())
    except FileNotFoundError:
        raise LinsimError(f"{run_dir} is not a bridge run: {path} not found") from None
    except (OSError, ValueError) as err:
        raise LinsimError(f"{path} could not be read: {err}") from None
    if not isinstance(blob, dict) or blob.get("kind") != RUN_KIND or not isinstance(blob.get("train"), dict):
        raise LinsimError(f"{path} is not a bridge training config (kind {RUN_KIND!r} expected)")
    try:
        return TrainConfig.from_dict(blob["train"]), blob
    except TypeError as err:
        raise LinsimError(f"{path}: bad training options ({err})") from None


def _write_records(out: Path, records: list[dict[str, Any]]) -> None:
    text = "".join(json.dumps(to_jsonable(r), allow_nan=False) + "\n" for r in records)
    atomic_write_text(out / "metrics.jsonl", text)


def _read_records(out: Path) -> list[dict[str, Any]]:
    path = out / "metrics.jsonl"
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def load_run(run_dir: str | Path, which: str = "last") -> tuple[TrainConfig, TrainState]:
    """(TrainConfig, TrainState) of a run's checkpoint ``which`` ('last' or 'init')."""
    if which not in ("last", "init"):
        raise LinsimError(f"unknown checkpoint {which!r}; choose 'last' or 'init'")
    cfg, blob = read_config(run_dir)
    like = init_state(cfg, blob.get("resolved", {}).get("total_steps", 1))
    state, _ = C.load(Path(run_dir) / "checkpoints", which, like)
    return cfg, state


# ------------------------------------------------------------------------------------------------ features


def predictor_inputs(state: TrainState, cfg: TrainConfig, images_uint8, key, views: int = 2) -> np.ndarray:
    """The predictor's input z (online projector output) on ``views`` augmented views: (views, N, d) float32.

    Batch-norm uses batch statistics as in training, over chunks of ``cfg.batch_size`` images (a last
    partial chunk uses its own statistics); the state is not changed."""
    images = np.asarray(images_uint8)
    aug = A.recipe(cfg.dataset, cfg.image_size)
    cdt = compute_dtype(cfg)
    _, static = eqx.partition(state, eqx.is_array)

    def make():
        @jax.jit
        def run(arrays, chunk, k):
            st: TrainState = eqx.combine(arrays, static)
            vs = A.augment(k, chunk, aug, views)
            (_, z), _ = M.apply_views(M.cast(st.online.encoder, cdt), st.bn, M.to_chw(vs.astype(cdt)))
            return z.astype(F32)

        return run

    run = _cached(("inputs", trace_key(cfg), aug, views), make)
    arrays = eqx.partition(state, eqx.is_array)[0]
    out = [np.asarray(run(arrays, jnp.asarray(images[s:s + cfg.batch_size]), jax.random.fold_in(key, i)))
           for i, s in enumerate(range(0, images.shape[0], cfg.batch_size))]
    return np.concatenate(out, axis=1)


def backbone_features(state: TrainState, cfg: TrainConfig, images_uint8) -> np.ndarray:
    """Backbone features (N, 512 * width) of un-augmented images (inference-mode batch-norm), float32."""
    aug = A.recipe(cfg.dataset, cfg.image_size)
    arrays = eqx.partition(state, eqx.is_array)[0]
    return _chunked(_eval_fn(cfg, aug, state), arrays, np.asarray(images_uint8))[0]


# ------------------------------------------------------------------------------------------------ the loop


class _Progress:
    """A plain-text progress line on stderr (rewritten in place on a terminal, one line per epoch otherwise)."""

    def __init__(self, enabled: bool):
        self.enabled = enabled
        self.tty = enabled and sys.stderr.isatty()
        self.last = 0.0

    def step(self, epoch: int, epochs: int, k: int, n: int, loss: float, ips: float) -> None:
        if not self.tty:
            return
        fill = int(20 * k / n)
        sys.stderr.write(f"\repoch {epoch}/{epochs} [{'#' * fill}{'.' * (20 - fill)}] {k}/{n} "
                         f"loss {loss:.4f} {ips:.0f} img/s ")
        sys.stderr.flush()

    def line(self, text: str) -> None:
        if not self.enabled:
            return
        sys.stderr.write(("\r" if self.tty else "") + text + "\n")
        sys.stderr.flush()


def _summary_line(rec: dict[str, Any], cfg: TrainConfig) -> str:
    parts = [f"loss {rec['loss']:.4f}" if rec.get("loss") is not None else "loss -",
             f"proj RankMe {rec['proj_rankme']:.2f}/{cfg.proj_dim_value}",
             f"backbone CEV-AUC {rec['backbone_cev_auc']:.3f}"]
    if rec.get("knn_acc") is not None:
        parts.append(f"kNN {rec['knn_acc']:.3f}")
    if rec.get("probe_acc") is not None:
        parts.append(f"probe {rec['probe_acc']:.3f}")
    if rec.get("asymmetry") is not None:
        parts.append(f"Wp asym {rec['asymmetry']:.3f} comm {rec['commutator']:.3f}")
    return ", ".join(parts)


def train(cfg: TrainConfig, out: str | Path, *, resume: bool = False, force: bool = False,
          data: D.ImageData | None = None, progress: bool = True) -> dict[str, Any]:
    """Train, log and checkpoint into ``out``; returns the summary (also written to ``out/summary.json``).

    ``resume`` continues the run in ``out`` from its last checkpoint (``cfg`` may differ from the saved one
    only in ``RESUMABLE_CHANGES``); ``force`` replaces linsim's own files of a previous run in ``out``.
    A non-finite loss or state raises DivergenceError after writing ``summary.json`` with status "nan".
    """
    out = Path(out)
    prepare_run_dir(out, resume=resume, force=force)
    if resume:
        saved, _ = read_config(out)
        diff = [f.name for f in dataclasses.fields(TrainConfig)
                if getattr(saved, f.name) != getattr(cfg, f.name) and f.name not in RESUMABLE_CHANGES]
        if diff:
            changes = ", ".join(f"{n} {getattr(saved, n)!r} -> {getattr(cfg, n)!r}" for n in diff)
            raise LinsimError(f"a resumed run keeps its configuration; changed: {changes}")
        if cfg.schedule == "cosine" and cfg.epochs != saved.epochs:
            raise LinsimError("the cosine schedule depends on --epochs: resume with the run's "
                              f"--epochs {saved.epochs}")
    if data is None:
        data = D.load_dataset(cfg.dataset, cfg.data_dir, seed=cfg.seed)
    n = data.pretrain.shape[0]
    if cfg.batch_size > n:
        raise LinsimError(f"--batch-size {cfg.batch_size} exceeds the {n} pre-training images of {data.name}")
    aug = A.recipe(cfg.dataset, cfg.image_size)
    spe = n // cfg.batch_size
    total = spe * cfg.epochs
    show = _Progress(progress)

    like = init_state(cfg, total)
    ckpt_dir = out / "checkpoints"
    t_origin = time.perf_counter()
    if resume:
        state, meta = C.load(ckpt_dir, "last", like)
        start_epoch, time_offset = int(meta["epoch"]) + 1, float(meta["time_s"])
        if start_epoch > cfg.epochs:
            raise LinsimError(f"the run in {out} already has {meta['epoch']} epochs; pass a larger --epochs")
        records = [r for r in _read_records(out) if r["epoch"] <= meta["epoch"] and r["step"] <= meta["step"]]
        note = " (the checkpoint save after it was interrupted: resuming from the one before)" if meta.get("recovered") else ""
        show.line(f"resuming {out} after epoch {meta['epoch']} (step {meta['step']}){note}")
    else:
        state, start_epoch, time_offset, records = like, 1, 0.0, []
    _write_config(out, cfg, data, aug, spe, total, M.count_params(like.online))

    images = D.to_device(data.pretrain)
    data_key, aug_key = _keys(cfg)
    es = _eval_set(cfg, data)
    evalfn = _eval_fn(cfg, aug, like)
    arrays = eqx.partition(state, eqx.is_array)[0]
    hyper = hyper_of(cfg)
    step = make_step(cfg, aug, like, total)  # compiled (or taken from the cache) before the first epoch

    def now() -> float:
        return time_offset + time.perf_counter() - t_origin

    def epoch_record(epoch: int, kind: str, st_arrays, loss: float, ips: float | None, probes: bool) -> dict:
        st = eqx.combine(st_arrays, eqx.partition(like, eqx.is_array)[1])
        k = int(st.step)
        rec: dict[str, Any] = {"epoch": epoch, "step": k, "kind": kind, "loss": loss, "images_per_s": ips,
                               "lr": float(lr_schedule(cfg, total)(jnp.asarray(k, jnp.int32)))}
        rec.update(evaluate_state(cfg, st, st_arrays, evalfn, es, st.F_hat if k > 0 else F0, probes=probes))
        rec["time_s"] = now()
        return rec

    status, message, collapsed_at = "finished", "", None
    try:
        t_c = time.perf_counter()
        idx_probe = D.epoch_batches(jax.random.fold_in(data_key, start_epoch), n, cfg.batch_size)[0]
        total_key = total if cfg.schedule != "constant" else 0
        step = _cached(("step", trace_key(cfg), aug, total_key, images.shape, idx_probe.shape),
                       lambda: step.lower(arrays, images, idx_probe, hyper).compile())
        show.line(f"compiled the training step in {time.perf_counter() - t_c:.1f} s "
                  f"({spe} steps of {cfg.batch_size} images per epoch)")
        if not resume:
            idx0 = D.epoch_batches(jax.random.fold_in(data_key, 1), n, cfg.batch_size)[0]
            # the first step on a copy of the state (then discarded): loss and F of the first batch at init
            _, loss0, F0 = step(_copy_arrays(arrays), images, idx0, hyper)
            _check_finite("loss", np.asarray(loss0))
            rec = epoch_record(0, "epoch", arrays, float(loss0), None, True)
            records.append(rec)
            _write_records(out, records)
            C.save(ckpt_dir, "init", state, _meta(cfg, 0, 0, rec["time_s"]))
            C.save(ckpt_dir, "last", state, _meta(cfg, 0, 0, rec["time_s"]))
            show.line(f"epoch 0/{cfg.epochs}: {_summary_line(rec, cfg)}")
            collapsed_at = 0 if rec["collapsed"] else None
        else:
            F0 = None
            collapsed_at = next((r["epoch"] for r in records if r.get("collapsed") and r["kind"] == "epoch"), None)
        for epoch in range(start_epoch, cfg.epochs + 1):
            batches = D.epoch_batches(jax.random.fold_in(data_key, epoch), n, cfg.batch_size)
            losses, t0, last_show, window = [], time.perf_counter(), 0.0, []
            for k in range(spe):
                arrays, loss, _ = step(arrays, images, batches[k], hyper)
                losses.append(loss)
                window.append(loss)
                gstep = (epoch - 1) * spe + k + 1
                t = time.perf_counter()
                if t - last_show > 0.5 or k == spe - 1:
                    cur = float(loss)
                    if not math.isfinite(cur):
                        raise DivergenceError(f"the loss became {cur} at step {gstep} (epoch {epoch}); "
                                              "try a smaller --lr")
                    show.step(epoch, cfg.epochs, k + 1, spe, cur, (k + 1) * cfg.batch_size / (t - t0))
                    last_show = t
                if cfg.log_every and gstep % cfg.log_every == 0 and k != spe - 1:
                    wl = float(np.mean(np.asarray(jnp.stack(window))))
                    window = []
                    ips = (k + 1) * cfg.batch_size / (time.perf_counter() - t0)
                    records.append(epoch_record(epoch, "step", arrays, wl, ips, False))
                    _write_records(out, records)
            mean_loss = float(np.mean(np.asarray(jnp.stack(losses))))
            if not math.isfinite(mean_loss):
                raise DivergenceError(f"the loss became {mean_loss} in epoch {epoch}; try a smaller --lr")
            ips = spe * cfg.batch_size / (time.perf_counter() - t0)
            rec = epoch_record(epoch, "epoch", arrays, mean_loss, ips, True)
            records.append(rec)
            _write_records(out, records)
            state = eqx.combine(arrays, eqx.partition(like, eqx.is_array)[1])
            C.save(ckpt_dir, "last", state, _meta(cfg, epoch, int(state.step), rec["time_s"]))
            show.line(f"epoch {epoch}/{cfg.epochs} ({ips:.0f} img/s): {_summary_line(rec, cfg)}")
            if rec["collapsed"] and collapsed_at is None:
                collapsed_at = epoch
                show.line(f"warning: the projector output collapsed at epoch {epoch} (RankMe "
                          f"{rec['proj_rankme']:.2f} < {cfg.collapse_rankme:g})")
            if rec["collapsed"] and cfg.stop_on_collapse:
                status, message = "collapsed", f"stopped at epoch {epoch}: the projector output collapsed"
                break
    except DivergenceError as err:
        summary = _summary(cfg, records, "nan", str(err), collapsed_at, now())
        atomic_write_json(out / "summary.json", summary)
        raise DivergenceError(f"{err}; run folder {out} (last good checkpoint kept)") from None
    last = records[-1]
    if status == "finished" and last.get("collapsed"):
        status = "collapsed"
        message = f"the projector output is collapsed (RankMe {last['proj_rankme']:.2f} < {cfg.collapse_rankme:g})"
    summary = _summary(cfg, records, status, message, collapsed_at, now())
    atomic_write_json(out / "summary.json", summary)
    return summary


def _copy_arrays(arrays):
    """A copy of a state's arrays in fresh buffers (via the host: no compilation)."""
    return jax.tree_util.tree_map(lambda x: jnp.asarray(np.array(x)) if eqx.is_array(x) else x, arrays)


def _meta(cfg: TrainConfig, epoch: int, step: int, time_s: float) -> dict[str, Any]:
    data_key, aug_key = _keys(cfg)
    return {"epoch": epoch, "step": step, "seed": cfg.seed, "time_s": time_s,
            "data_key": np.asarray(data_key).tolist(), "augment_key": np.asarray(aug_key).tolist(),
            "rho": cfg.rho, "linsim_version": linsim.__version__}


def _write_config(out: Path, cfg: TrainConfig, data: D.ImageData, aug: A.AugmentConfig, spe: int,
                  total: int, n_params: int) -> None:
    from linsim.bridge.models import uses_standard_stem

    blob = {
        "kind": RUN_KIND,
        "linsim_version": linsim.__version__,
        "train": cfg.to_dict(),
        "dataset": {"name": data.name, "source": data.source, "pretrain": list(data.pretrain.shape),
                    "labelled": bool(data.labelled)},
        "resolved": {"width": cfg.width_value, "proj_hidden": cfg.proj_hidden_value, "proj_dim": cfg.proj_dim_value,
                     "pred_wd": cfg.pred_wd_value, "eps": cfg.eps_value, "steps_per_epoch": spe,
                     "total_steps": total, "standard_stem": uses_standard_stem(cfg),
                     "compute_dtype": jnp.dtype(compute_dtype(cfg)).name, "backend": jax.default_backend(),
                     "parameters": n_params},
        "augment": dataclasses.asdict(aug),
        "command": " ".join(["linsim", *sys.argv[1:]]) if Path(sys.argv[0]).name == "linsim" else None,
    }
    atomic_write_json(out / "config.json", blob)


_FINAL_KEYS = ("loss", "proj_rankme", "proj_cev_auc", "backbone_rankme", "backbone_cev_auc", "knn_acc",
               "probe_acc", "asymmetry", "commutator", "balance", "images_per_s")


def _summary(cfg, records, status, message, collapsed_at, time_s) -> dict[str, Any]:
    ep = [r for r in records if r["kind"] == "epoch"]
    last = ep[-1] if ep else {}
    speeds = [r["images_per_s"] for r in ep if r.get("images_per_s")]
    return {
        "status": status,
        "message": message,
        "epochs_done": last.get("epoch", 0),
        "steps": last.get("step", 0),
        "collapsed": bool(last.get("collapsed", False)),
        "collapsed_at_epoch": collapsed_at,
        "collapse_threshold_rankme": cfg.collapse_rankme,
        "time_s": time_s,
        "mean_images_per_s": float(np.mean(speeds)) if speeds else None,
        "final": {k: last.get(k) for k in _FINAL_KEYS},
        "initial": {k: ep[0].get(k) for k in _FINAL_KEYS} if ep else {},
    }
