"""Benchmark: images/s of a full BYOL training step against the bare forward+backward of the same network.

Full step (``linsim.bridge.train.make_step``): gather the batch on device, two augmented views
(``linsim.bridge.augment.augment``), online forward + backward on both views, target (EMA) forward on both
views, the F_hat correlation update, SGD with momentum and weight decay on online network and predictor,
the EMA update of the target. Bare: forward + backward (gradients of a scalar loss w.r.t. every online
parameter) of the same online network (backbone, projector, predictor) on the same two pre-augmented views,
nothing else. Both are jitted and compiled before timing; rounds of ``--iters`` calls alternate between the
two (interleaved, so machine load hits both alike) and the median round is reported. images/s counts
images, not views (B per call for both). ratio = bare images/s / step images/s (the training loop's
overhead; 1.0 = none; the extra target forward alone costs about 1/3 of a forward+backward).

Usage: python experiments/benchmarks/bridge_throughput.py [--arch resnet-tiny|resnet18] [--batch 128]
       [--size 32] [--precision auto|f32|bf16] [--rounds 5] [--iters 3] [--width W]

Result (2026-11-30, commit e8c52bf, the project's 2-core CPU container shared with other jobs, load
average 9-12 throughout, jax 0.10.2, float32; medians of interleaved rounds):
    resnet-tiny (width 0.125, 91k parameters), batch 128, 32x32: step 69.7 img/s, bare 75.6 img/s, 1.08x
    resnet18 (11.5M parameters), batch 32, 32x32:                step  1.7 img/s, bare  2.2 img/s, 1.30x
Under that load the process got about a third of one core (the absolute numbers are load-bound; the
ratio, measured interleaved, is the meaningful one). GPU (ResNet-18, bf16): not measured (no GPU lent).
"""
from __future__ import annotations

import argparse
import os
import statistics
import time

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

import linsim  # noqa: F401
from linsim.bridge import augment as A
from linsim.bridge import models as M
from linsim.bridge import train as T
from linsim.bridge.config import TrainConfig
from linsim.host import cores


def machine_line() -> str:
    threads = cores()
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    dev = jax.devices()[0]
    return (f"backend {jax.default_backend()} ({dev.device_kind}), {threads} CPU threads available, "
            f"load average {load}, XLA_FLAGS={os.environ.get('XLA_FLAGS', '')!r}, jax {jax.__version__}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--arch", default="resnet-tiny", choices=("resnet-tiny", "resnet18"))
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--precision", default="auto", choices=("auto", "f32", "bf16"))
    ap.add_argument("--width", type=float, default=None)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--iters", type=int, default=3)
    args = ap.parse_args()

    cfg = TrainConfig(arch=args.arch, batch_size=args.batch, image_size=args.size, precision=args.precision,
                      width=args.width)
    print(machine_line())
    print(f"arch {cfg.arch} (width {cfg.width_value:g}), batch {cfg.batch_size}, {cfg.image_size}x{cfg.image_size}, "
          f"compute {jnp.dtype(T.compute_dtype(cfg)).name}, predictor {cfg.predictor}, ema {cfg.ema}")
    rng = np.random.default_rng(0)
    n = max(4 * args.batch, 512)
    images = jnp.asarray(rng.integers(0, 256, (n, args.size, args.size, 3), dtype=np.uint8))
    idx = jnp.arange(args.batch, dtype=jnp.int32)
    aug = A.recipe("cifar10", args.size)
    state = T.init_state(cfg, 1000)
    arrays, static = eqx.partition(state, eqx.is_array)
    cdt = T.compute_dtype(cfg)

    t = time.perf_counter()
    hyper = T.hyper_of(cfg)
    step = T.make_step(cfg, aug, state, 1000).lower(arrays, images, idx, hyper).compile()
    t_step = time.perf_counter() - t
    views = A.augment(jax.random.PRNGKey(0), jnp.take(images, idx, axis=0), aug, 2)

    @jax.jit
    def bare(arrays, views):
        st = eqx.combine(arrays, static)
        params, pstatic = M.split_params(st.online)

        def loss(p):
            net = M.cast(eqx.combine(p, pstatic), cdt)
            (_, _, q), _ = M.apply_views(net, st.bn, M.to_chw(views.astype(cdt)))
            return jnp.mean(jnp.square(q.astype(jnp.float32)))

        return jax.grad(loss)(params)

    t = time.perf_counter()
    bare_c = bare.lower(arrays, views).compile()
    t_bare = time.perf_counter() - t
    print(f"compile: full step {t_step:.1f} s, bare forward+backward {t_bare:.1f} s")

    arrays, loss, _ = step(arrays, images, idx, hyper)  # warm-up
    jax.block_until_ready(loss)
    jax.block_until_ready(bare_c(arrays, views))
    step_times, bare_times = [], []
    for _ in range(args.rounds):
        t = time.perf_counter()
        for _ in range(args.iters):
            arrays, loss, _ = step(arrays, images, idx, hyper)
        jax.block_until_ready((arrays, loss))
        step_times.append((time.perf_counter() - t) / args.iters)
        t = time.perf_counter()
        for _ in range(args.iters):
            g = bare_c(arrays, views)
        jax.block_until_ready(g)
        bare_times.append((time.perf_counter() - t) / args.iters)
    ts, tb = statistics.median(step_times), statistics.median(bare_times)
    ips_step, ips_bare = args.batch / ts, args.batch / tb
    print(f"full BYOL step:        {ips_step:10.1f} images/s  ({1e3 * ts:.1f} ms/step, rounds "
          + ", ".join(f"{1e3 * x:.0f}" for x in step_times) + " ms)")
    print(f"bare forward+backward: {ips_bare:10.1f} images/s  ({1e3 * tb:.1f} ms/call, rounds "
          + ", ".join(f"{1e3 * x:.0f}" for x in bare_times) + " ms)")
    print(f"ratio (step time / bare time): {ts / tb:.2f}x   (loss {float(loss):.4f})")
    print(machine_line())


if __name__ == "__main__":
    main()
