"""Independent float64 reference of exitrl's RL ops (kernels/ops.h, "RL (GRPO / ExIt)") and the
maker of tests/fixtures/rl_golden.bin, read by tests/test_rl_ops.c.

Usage: /usr/bin/python3 tests/ref/rl_ref.py [output path]   (needs torch and numpy)

The formulas are written from ops.h and docs/DESIGN.md §5 with PyTorch's own primitives (Bessel
std from torch.std, norms from torch.linalg.norm, log_softmax); the GRPO gradient comes from
autograd of the scalar objective sum_n weight[n] * loss_tok[n], never from the hand-derived g of
ops.h, so the two derivations check each other. Philox4x32-10 is re-implemented here from the
definition in Salmon et al., SC'11, and checked against Random123's known-answer vectors.

Binary format, version 1, all little-endian, no padding:
  char    magic[8] = "EXRLRLGD"
  int32   version = 1
  int32   P, G, C                 groups, group size, embedding channels
  int32   topk_k, random_k        k of the TOPK and RANDOM selections
  uint32  seed_lo, seed_hi        the RANDOM selection's 64-bit seed
  int32   N, V, Vp                GRPO rows, real vocab, padded vocab (row stride)
  float32 eps                     group_advantage eps
  float32 inv_temp, eps_low, eps_high, beta
  -- group ops
  float32 rewards[P*G], emb[P*G*C]
  float32 div[P*G]                diversity_scale(emb)
  float32 adv_group[P*G], adv_batch[P*G], adv_none[P*G]   group_advantage with div_scale = div
  float32 adv_group_nodiv[P*G]    GROUP mode, div_scale = NULL
  float32 scores[P]
  int32   chosen_best[P*G], chosen_topk[P*G], chosen_random[P*G]
  -- GRPO classifier
  float32 logits[N*Vp]            input (padded columns hold large values that must be ignored)
  int32   targets[N]              -1 = not a target
  float32 lp_old[N], lp_ref[N], adv[N], weight[N]
  float32 lp_new[N], loss[N], clipped[N], dlogits[N*Vp]     with lp_ref
  float32 loss_noref[N], dlogits_noref[N*Vp]                with lp_ref = NULL (same beta)

Inputs are drawn, rounded to float32, and the outputs computed in float64 from those float32
values, rounded to float32 once on writing. After writing, the script checks that deliberate
mistakes (population std, eps inside the square root, min-max diversity, ties to the highest index,
no temperature factor in the gradient, gradient through the clipped branch, softmax over Vp, the
k3 gradient's sign) each move the values by far more than the C test's tolerances.
"""
import math
import struct
import sys
from pathlib import Path

import numpy as np
import torch

MAGIC = b"EXRLRLGD"
VERSION = 1
SEED = 20250923
SCALE_GROUP, SCALE_BATCH, SCALE_NONE = 0, 1, 2

P, G, C = 6, 8, 16
TOPK_K, RANDOM_K = 3, 3
SELECT_SEED = 0x0123456789ABCDEF  # both 32-bit key words non-zero
EPS = 1e-4
N, V, VP = 16, 37, 48
INV_TEMP, EPS_LOW, EPS_HIGH, BETA = 1.0 / 0.7, 0.2, 0.28, 0.04

# Tolerances of tests/test_rl_ops.c, repeated to check that the fixture discriminates.
# error ratio = |got - want| / (atol + rtol |want|); for dlogits atol = DLOGIT_ATOL_FRAC * max|want|.
GROUP_ATOL, GROUP_RTOL = 1e-6, 2e-6
ROW_ATOL, ROW_RTOL = 1e-5, 1e-5
DLOGIT_ATOL_FRAC, DLOGIT_RTOL = 1e-5, 1e-4

# ---------------------------------------------------------------- Philox4x32-10
MASK32 = 0xFFFFFFFF


def philox4x32_10(counter, key):
    """Ten Philox rounds: (c0..c3) -> (hi(M1 c2) ^ c1 ^ k0, lo(M1 c2), hi(M0 c0) ^ c3 ^ k1,
    lo(M0 c0)), the key bumped by the Weyl constants between rounds."""
    c0, c1, c2, c3 = counter
    k0, k1 = key
    for _ in range(10):
        p0 = 0xD2511F53 * c0
        p1 = 0xCD9E8D57 * c2
        c0, c1, c2, c3 = (p1 >> 32) ^ c1 ^ k0, p1 & MASK32, (p0 >> 32) ^ c3 ^ k1, p0 & MASK32
        k0 = (k0 + 0x9E3779B9) & MASK32
        k1 = (k1 + 0xBB67AE85) & MASK32
    return c0, c1, c2, c3


def check_philox():
    assert philox4x32_10((0, 0, 0, 0), (0, 0)) == (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)
    assert philox4x32_10((0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344),
                         (0xA4093822, 0x299F31D0)) == (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1)


# ---------------------------------------------------------------- the reference formulas
def group_advantage(rewards, div, mode, eps, mistake=None):
    """rewards [P, G] float64 -> advantages [P, G]."""
    if rewards.shape[1] == 1:
        return torch.zeros_like(rewards)
    centred = rewards - rewards.mean(dim=1, keepdim=True)
    unbiased = mistake != "population_std"
    if mode == SCALE_GROUP:
        std = rewards.std(dim=1, unbiased=unbiased, keepdim=True)
    elif mode == SCALE_BATCH:
        std = rewards.reshape(-1).std(unbiased=unbiased)
    else:
        std = None
    if std is None:
        adv = centred
    elif mistake == "eps_in_sqrt":
        adv = centred / torch.sqrt(std * std + eps)
    else:
        adv = centred / (std + eps)
    return adv * div if div is not None else adv


def diversity_scale(emb, mistake=None):
    """emb [P, G, C] float64 -> d [P, G]."""
    dist = torch.linalg.norm(emb - emb.mean(dim=1, keepdim=True), dim=2)
    lo, hi = dist.min(dim=1, keepdim=True).values, dist.max(dim=1, keepdim=True).values
    num = dist - lo if mistake == "minmax_diversity" else dist
    return torch.where(hi - lo <= 1e-4 * hi, torch.ones_like(dist), num / (hi - lo))


def group_scores(rewards):
    return 4.0 * rewards.var(dim=1, unbiased=False)


def keep_first_k(order, k, size):
    chosen = [0] * size
    for j in order[:k]:
        chosen[j] = 1
    return chosen


def select(rewards, mode, k, seed, mistake=None):
    """0/1 list over all P*G completions, rewards [P, G] (float64 tensor)."""
    out = []
    for g, row in enumerate(rewards.tolist()):
        size = len(row)
        tie = (lambda j: -j) if mistake == "ties_high_index" else (lambda j: j)
        if mode == "best":
            out += keep_first_k(sorted(range(size), key=lambda j: (-row[j], tie(j))), 1, size)
        elif mode == "topk":
            out += keep_first_k(sorted(range(size), key=lambda j: (-row[j], tie(j))), k, size)
        elif mode == "random":
            key = (seed & MASK32, seed >> 32)
            draws = [philox4x32_10((j, g, 1, 0), key)[0] >> 8 for j in range(size)]
            out += keep_first_k(sorted(range(size), key=lambda j: (draws[j], j)), k, size)
        else:
            raise ValueError(mode)
    return out


def grpo(logits32, targets, lp_old, lp_ref, adv, weight, V, inv_temp, eps_low, eps_high, beta,
         mistake=None):
    """Returns lp_new, loss_tok, clipped, dlogits (float64), the gradient by autograd."""
    logits = torch.tensor(logits32, dtype=torch.float64, requires_grad=True)
    tgt = torch.tensor(targets, dtype=torch.int64)
    valid = tgt >= 0
    cols = slice(None) if mistake == "softmax_over_vp" else slice(0, V)
    temp = 1.0 if mistake == "no_temp_in_grad" else inv_temp
    z = logits[:, cols] * temp
    logp = torch.log_softmax(z, dim=1)
    lp = logp[torch.arange(len(targets)), tgt.clamp(min=0)]
    if mistake == "no_temp_in_grad":  # the value at the right temperature, the gradient without it
        lp_true = torch.log_softmax(logits.detach()[:, :V] * inv_temp, dim=1)[
            torch.arange(len(targets)), tgt.clamp(min=0)]
        lp = lp - lp.detach() + lp_true
    A = torch.tensor(adv, dtype=torch.float64)
    rho = torch.exp(lp - torch.tensor(lp_old, dtype=torch.float64))
    lo, hi = 1.0 - eps_low, 1.0 + eps_high
    rho_c = torch.clamp(rho, lo, hi)
    if mistake == "grad_through_clip":
        rho_c = rho_c.detach() + rho - rho.detach()
    loss = -torch.minimum(rho * A, rho_c * A)
    if lp_ref is not None:
        x = torch.tensor(lp_ref, dtype=torch.float64) - lp
        if mistake == "k3_grad_sign":  # same value, mirrored gradient
            x = x.detach() - (x - x.detach())
        loss = loss + beta * (torch.exp(x) - x - 1.0)
    loss = torch.where(valid, loss, torch.zeros_like(loss))
    objective = (torch.tensor(weight, dtype=torch.float64) * loss).sum()
    objective.backward()
    clipped = valid & ((rho < lo) | (rho > hi)) & (rho_c * A < rho * A)
    zero = torch.zeros_like(lp)
    return (torch.where(valid, lp, zero).detach(), loss.detach(), clipped.double(),
            logits.grad.detach())


# ---------------------------------------------------------------- inputs
def f32(x):
    return np.asarray(x, dtype=np.float32)


def group_inputs(rng):
    rewards = np.zeros((P, G))
    rewards[0] = [1, 0, 1, 1, 0, 1, 0, 0]                    # 0/1, ties at the TOPK boundary
    rewards[1] = rng.uniform(0, 1, G)                        # continuous
    rewards[2] = 0.4                                         # all equal: A = 0, score 0
    rewards[3] = [0.7, 0.2, 0.7, 0.7, 0.1, 0.7, 0.3, 0.2]    # ties at the top (BEST, TOPK)
    rewards[4] = 0.5 + 1e-3 * rng.uniform(-1, 1, G)          # tiny spread: Bessel vs population
    rewards[5] = [0, 0, 0, 1, 0, 0, 0, 0]                    # one success
    emb = rng.normal(0, 1, (P, G, C))
    emb[1] = 3 * emb[1] + 2
    emb[4] *= 0.1
    # Group 3 equidistant from its centroid, exactly in float32: centre + 2 * unit vector i.
    emb[3] = np.round(rng.normal(0, 4, C))
    emb[3, np.arange(G), np.arange(G)] += 2.0
    return f32(rewards), f32(emb)


def grpo_inputs(rng):
    logits = rng.normal(0, 2.5, (N, VP))
    logits[:, V:] = 30.0 + rng.uniform(0, 5, (N, VP - V))  # would dominate a softmax over Vp
    targets = rng.integers(0, V, N)
    targets[[4, 11]] = -1
    logits = f32(logits)
    lp64 = torch.log_softmax(torch.tensor(logits[:, :V], dtype=torch.float64) * float(f32(INV_TEMP)),
                             dim=1)[torch.arange(N), torch.tensor(targets).clamp(min=0)].numpy()
    # rho per row: inside (0.9 .. 1.25 with eps_high 0.28), above 1 + eps_high, below 1 - eps_low,
    # each with both signs of A; one row with A = 0.
    rho_target = [0.9, 1.0, 1.45, 0.55, 0.0, 1.25, 1.8, 0.7, 1.1, 0.6, 1.35, 0.0, 1.15, 0.5, 1.6, 0.95]
    adv = [1.3, -0.8, 0.9, -1.1, 0.5, -0.6, -1.7, 0.4, 2.0, 1.2, -0.7, 0.3, 0.0, -2.2, 1.1, -0.4]
    lp_old = np.where(np.array(rho_target) > 0, lp64 - np.log(np.maximum(rho_target, 1e-30)), 0.0)
    lp_ref = lp64 + rng.uniform(-0.6, 0.6, N)
    weight = rng.uniform(0.2, 1.5, N)
    weight[7] = 0.0
    return logits, targets.astype(np.int32), f32(lp_old), f32(lp_ref), f32(adv), f32(weight)


# ---------------------------------------------------------------- checks and output
def err_ratio(got, want, atol, rtol):
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    return float(np.max(np.abs(got - want) / (atol + rtol * np.abs(want))))


def compute_all(rewards, emb, grpo_in, mistake=None):
    r64 = torch.tensor(rewards, dtype=torch.float64)
    div = diversity_scale(torch.tensor(emb, dtype=torch.float64), mistake)
    div_in = torch.tensor(f32(div.numpy()), dtype=torch.float64)  # the C test feeds the fp32 div
    eps = float(f32(EPS))
    out = {
        "div": div,
        "adv_group": group_advantage(r64, div_in, SCALE_GROUP, eps, mistake),
        "adv_batch": group_advantage(r64, div_in, SCALE_BATCH, eps, mistake),
        "adv_none": group_advantage(r64, div_in, SCALE_NONE, eps, mistake),
        "adv_group_nodiv": group_advantage(r64, None, SCALE_GROUP, eps, mistake),
        "scores": group_scores(r64),
        "chosen_best": select(r64, "best", 1, SELECT_SEED, mistake),
        "chosen_topk": select(r64, "topk", TOPK_K, SELECT_SEED, mistake),
        "chosen_random": select(r64, "random", RANDOM_K, SELECT_SEED, mistake),
    }
    logits, targets, lp_old, lp_ref, adv, weight = grpo_in
    hp = [float(f32(x)) for x in (INV_TEMP, EPS_LOW, EPS_HIGH, BETA)]
    out["lp_new"], out["loss"], out["clipped"], out["dlogits"] = grpo(
        logits, targets, lp_old, lp_ref, adv, weight, V, *hp, mistake=mistake)
    _, out["loss_noref"], _, out["dlogits_noref"] = grpo(
        logits, targets, lp_old, None, adv, weight, V, *hp, mistake=mistake)
    return out


def check_regimes(out, grpo_in):
    """Every row must sit clearly inside one regime, so fp32 rounding cannot flip a branch."""
    logits, targets, lp_old, _, adv, _ = grpo_in
    rho = np.exp(out["lp_new"].numpy() - lp_old.astype(np.float64))
    lo, hi = 1 - float(f32(EPS_LOW)), 1 + float(f32(EPS_HIGH))
    seen = set()
    for n in range(N):
        if targets[n] < 0:
            continue
        assert min(abs(rho[n] - lo), abs(rho[n] - hi)) > 0.02, (n, rho[n])
        seen.add(("below" if rho[n] < lo else "above" if rho[n] > hi else "inside", np.sign(adv[n])))
    for regime in ("below", "inside", "above"):
        for sign in (-1.0, 1.0):
            assert (regime, sign) in seen, (regime, sign)
    assert out["clipped"].sum() >= 2


def discrimination(base, rewards, emb, grpo_in):
    """Each mistake must move some output far outside the C test's tolerances."""
    group_keys = ("div", "adv_group", "adv_batch", "adv_none", "adv_group_nodiv", "scores")
    for mistake in ("population_std", "eps_in_sqrt", "minmax_diversity", "ties_high_index",
                    "no_temp_in_grad", "grad_through_clip", "softmax_over_vp", "k3_grad_sign"):
        alt = compute_all(rewards, emb, grpo_in, mistake)
        worst = max(err_ratio(alt[k], base[k], GROUP_ATOL, GROUP_RTOL) for k in group_keys)
        flips = sum(alt[k] != base[k] for k in ("chosen_best", "chosen_topk", "chosen_random"))
        worst = max(worst, err_ratio(alt["lp_new"], base["lp_new"], ROW_ATOL, ROW_RTOL),
                    err_ratio(alt["loss"], base["loss"], ROW_ATOL, ROW_RTOL))
        for k in ("dlogits", "dlogits_noref"):
            atol = DLOGIT_ATOL_FRAC * float(base[k].abs().max())
            worst = max(worst, err_ratio(alt[k], base[k], atol, DLOGIT_RTOL))
        print(f"  mistake {mistake:18s}: worst err ratio {worst:12.4g}, selections changed: {flips}")
        assert worst > 10.0 or flips, f"the fixture cannot tell the mistake {mistake} apart"


def write_fixture(path, rewards, emb, grpo_in, out):
    logits, targets, lp_old, lp_ref, adv, weight = grpo_in
    with open(path, "wb") as f:
        f.write(MAGIC)
        f.write(struct.pack("<6i2I3i", VERSION, P, G, C, TOPK_K, RANDOM_K, SELECT_SEED & MASK32,
                            SELECT_SEED >> 32, N, V, VP))
        f.write(struct.pack("<5f", EPS, INV_TEMP, EPS_LOW, EPS_HIGH, BETA))

        def floats(x):
            f.write(f32(np.asarray(x, dtype=np.float64)).astype("<f4").tobytes())

        def ints(x):
            f.write(np.asarray(x, dtype="<i4").tobytes())

        floats(rewards), floats(emb)
        for k in ("div", "adv_group", "adv_batch", "adv_none", "adv_group_nodiv", "scores"):
            floats(out[k])
        for k in ("chosen_best", "chosen_topk", "chosen_random"):
            ints(out[k])
        floats(logits), ints(targets), floats(lp_old), floats(lp_ref), floats(adv), floats(weight)
        for k in ("lp_new", "loss", "clipped", "dlogits", "loss_noref", "dlogits_noref"):
            floats(out[k])


def main():
    default = Path(__file__).resolve().parents[1] / "fixtures" / "rl_golden.bin"
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else default
    check_philox()
    rng = np.random.default_rng(SEED)
    rewards, emb = group_inputs(rng)
    grpo_in = grpo_inputs(rng)
    out = compute_all(rewards, emb, grpo_in)
    check_regimes(out, grpo_in)
    assert torch.all(out["div"][3] == 1.0), "group 3 must be equidistant"
    write_fixture(path, rewards, emb, grpo_in, out)
    print(f"wrote {path} ({path.stat().st_size} bytes)")
    print(f"  clipped rows {int(out['clipped'].sum())}, max|dlogits| "
          f"{float(out['dlogits'].abs().max()):.4g}, max|adv_group| "
          f"{float(out['adv_group'].abs().max()):.4g}, div range "
          f"[{float(out['div'].min()):.4g}, {float(out['div'].max()):.4g}]")
    discrimination(out, rewards, emb, grpo_in)


if __name__ == "__main__":
    main()
