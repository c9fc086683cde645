"""A PyTorch-style training step of the two-layer linear BYOL/SimSiam model written out by hand in numpy
(no linsim code): the reference that linsim's mapping and discrete simulator are checked against."""
from __future__ import annotations

import numpy as np

from linsim.initial import psd_sqrt
from linsim.mapping import TrainingConventions


def psd(rng, n, floor):
    A = rng.standard_normal((n, n))
    return A @ A.T / n + floor * np.eye(n)


def exact_views(X, Xp):
    """2n paired views (x1_i, x2_i) whose empirical moments are exactly E[x1 x1^T] = E[x2 x2^T] = X + X',
    E[x1 x2^T] = X: z_i = sqrt(2n) S^{1/2} e_i, so (1/2n) sum z z^T = S. The full-batch training loss on
    them is then the expected loss, and its gradient can be compared with linsim's field to rounding."""
    n = X.shape[0]
    S = np.block([[X + Xp, X], [X, X + Xp]])
    Z = np.sqrt(2 * n) * psd_sqrt(S)  # rows z_i (S^{1/2} is symmetric)
    return Z[:, :n], Z[:, n:]


def torch_style_run(W, Wp, Wa, x1, x2, tc: TrainingConventions, steps: int, bW=None, bP=None):
    """The update a PyTorch trainer makes, by hand: loss per sample c ||Wp W a - Wa b||^2 (c = 1/2 if half,
    times 1/d if averaged over the d outputs), reduced over the batch (mean or sum) and over the view
    orders (one, sum or mean); gradients dl/dWp = 2c e (W a)^T, dl/dW = 2c Wp^T e a^T (target detached);
    torch SGD: buf = mu buf + (grad + wd p), p -= lr buf, per block (buffers start at zero unless given);
    then Wa = m Wa + (1 - m) W. Returns (W, Wp, Wa, buf_W, buf_Wp) after each step."""
    L = tc.loss
    c = (0.5 if L.half else 1.0) / (W.shape[0] if L.output == "mean" else 1)
    orders = [(x1, x2)] if L.symmetrised == "no" else [(x1, x2), (x2, x1)]
    wo = {"no": 1.0, "sum": 1.0, "mean": 0.5}[L.symmetrised]
    bW = np.zeros_like(W) if bW is None else bW
    bP = np.zeros_like(Wp) if bP is None else bP
    out = []
    for _ in range(steps):
        gW, gP = np.zeros_like(W), np.zeros_like(Wp)
        for a, b in orders:
            e = a @ W.T @ Wp.T - b @ Wa.T  # (B, d)
            red = 1.0 if L.batch == "sum" else 1.0 / a.shape[0]
            gP += wo * red * 2 * c * e.T @ (a @ W.T)
            gW += wo * red * 2 * c * Wp.T @ e.T @ a
        bW = tc.momentum * bW + gW + tc.weight_decay * W
        bP = tc.momentum * bP + gP + tc.pred_weight_decay_value * Wp
        W = W - tc.lr * bW
        Wp = Wp - tc.pred_lr_value * bP
        Wa = tc.ema * Wa + (1 - tc.ema) * W
        out.append((W, Wp, Wa, bW, bP))
    return out
