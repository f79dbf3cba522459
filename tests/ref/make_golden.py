"""Makes tests/fixtures/gpt_tiny_golden.bin: golden forward/backward values of a tiny GPT for
tests/test_model_golden.c, computed in float64 by the independent reference in gpt_ref.py.

Usage: /usr/bin/python3 tests/ref/make_golden.py [output path]   (needs torch and numpy)

Binary format, version 1, all little-endian, no padding between fields:
  char    magic[8]   = "EXRLGOLD"
  int32   version    = 1
  int32   n_layer, n_head, d_model, max_seq, vocab (V), vocab_padded (Vp), B, T
  int32   num_params (= gpt_num_params of that config; exitrl's flat layout, host/model/model.h)
  float32 params[num_params]
  int32   tokens[B*T]
  int32   targets[B*T]             (-1 = not a target)
  float32 logits[B*T*Vp]           (all Vp columns: the pad rows of wte are ordinary weights; only
                                    the first V take part in the loss)
  float32 losses[B*T]              (-log softmax(logits[:V])[target]; 0 where target < 0)
  -- case 1: uniform weights (gpt_set_batch with loss_weights = NULL: 1/(number of targets))
  float32 loss_uniform
  float32 grads_uniform[num_params]
  -- case 2: explicit weights (some negative, one zero on a target, as GRPO produces)
  float32 weights[B*T]
  float32 loss_weighted            (= sum_n weights[n] * losses[n])
  float32 grads_weighted[num_params]

Values are computed in float64 and rounded to float32 once, on writing.

Weights are random at a scale where every part of the model is exercised: matrices
N(0, 1/sqrt(fan_in)) so activations stay O(1), the MLP's two matrices MLP_GAIN times that so GELU
sees inputs of a few units, where its tanh and erf forms differ most (GPT-2's N(0, 0.02) would keep
the network nearly linear, and the GELU variant would then change the output by less than fp32
noise), embeddings N(0, 0.3) (logits of a few units, so the softmax is far from uniform), LayerNorm
weights 1 + N(0, 0.1), biases N(0, 0.1), the pad rows of wte non-zero (so a softmax over Vp columns
would show). After writing, the script checks that deliberate mistakes (exact-erf GELU, attention
scaled by 1/sqrt(C), no causal mask, softmax over Vp, mean over all tokens) each move the values by
far more than the C test's tolerances, and reports how far a float32 run of this same reference is
from the float64 values (a floor for what fp32 code can be asked to meet).
"""
import math
import struct
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import gpt_ref  # noqa: E402

MAGIC = b"EXRLGOLD"
VERSION = 1
CFG = gpt_ref.Config(n_layer=2, n_head=2, d_model=32, max_seq=24, vocab=265, vocab_padded=320)
B, T = 2, 16  # T < max_seq on purpose: rows T.. of wpe must get no gradient
SEED = 20250917
MLP_GAIN = 2.0  # GELU inputs of a few units, where tanh and erf GELU differ most

# Tolerances of tests/test_model_golden.c, repeated here to check the fixture discriminates.
# error ratio = |got - want| / (atol + rtol*|want|), atol for a gradient tensor = GRAD_ATOL_FRAC *
# max|want| over that tensor.
LOGIT_ATOL, LOGIT_RTOL = 2e-5, 1e-5
GRAD_ATOL_FRAC, GRAD_RTOL = 2e-5, 1e-4


def random_params(gen):
    named = {}
    for name, shape in gpt_ref.param_shapes(CFG):
        if name in ("wte", "wpe"):
            t = torch.randn(shape, generator=gen, dtype=torch.float64) * 0.3
        elif name.endswith("w") and name.startswith("ln"):
            t = 1.0 + 0.1 * torch.randn(shape, generator=gen, dtype=torch.float64)
        elif name.endswith("b"):
            t = 0.1 * torch.randn(shape, generator=gen, dtype=torch.float64)
        else:  # linear weight [.., out, in]
            t = torch.randn(shape, generator=gen, dtype=torch.float64) / math.sqrt(shape[-1])
            if name in ("fcw", "fcprojw"):
                t *= MLP_GAIN
        named[name] = t
    return gpt_ref.flatten(CFG, named)


def make_batch(gen):
    tokens = torch.randint(0, CFG.vocab, (B, T), generator=gen)
    targets = torch.randint(0, CFG.vocab, (B, T), generator=gen)
    for b, t in ((0, 3), (1, 0), (1, T - 1)):
        targets[b, t] = -1
    weights = torch.randn(B, T, generator=gen, dtype=torch.float64) / (B * T)
    weights[targets < 0] = 0.0
    weights[0, 5] = 0.0  # a target whose weight is zero contributes nothing
    return tokens, targets, weights


def logit_err(got, want):
    got, want = got[..., :CFG.vocab], want[..., :CFG.vocab]
    return ((got - want).abs() / (LOGIT_ATOL + LOGIT_RTOL * want.abs())).max().item()


def grad_errs(got, want):
    """Per-tensor max error ratio, the C test's metric."""
    g, w = gpt_ref.unflatten(CFG, got), gpt_ref.unflatten(CFG, want)
    out = {}
    for name, _ in gpt_ref.param_shapes(CFG):
        atol = GRAD_ATOL_FRAC * w[name].abs().max().item()
        denom = atol + GRAD_RTOL * w[name].abs()
        out[name] = ((g[name] - w[name]).abs() / denom.clamp(min=1e-30)).max().item()
    return out


def write_fixture(path, params, tokens, targets, logits, losses, cases):
    f32 = lambda t: t.detach().to(torch.float64).numpy().astype("<f4").tobytes()  # noqa: E731
    i32 = lambda t: t.numpy().astype("<i4").tobytes()  # noqa: E731
    with open(path, "wb") as f:
        f.write(MAGIC)
        f.write(struct.pack("<10i", VERSION, CFG.n_layer, CFG.n_head, CFG.d_model, CFG.max_seq,
                            CFG.vocab, CFG.vocab_padded, B, T, gpt_ref.num_params(CFG)))
        f.write(f32(params))
        f.write(i32(tokens))
        f.write(i32(targets))
        f.write(f32(logits))
        f.write(f32(losses))
        (loss_u, grads_u), (weights, loss_w, grads_w) = cases
        f.write(struct.pack("<f", loss_u))
        f.write(f32(grads_u))
        f.write(f32(weights))
        f.write(struct.pack("<f", loss_w))
        f.write(f32(grads_w))


def main():
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else \
        Path(__file__).resolve().parents[1] / "fixtures" / "gpt_tiny_golden.bin"
    gen = torch.Generator().manual_seed(SEED)
    params = random_params(gen)
    tokens, targets, weights = make_batch(gen)
    uniform = gpt_ref.uniform_weights(targets)

    logits, losses, loss_u, grads_u = gpt_ref.weighted_loss_and_grads(
        CFG, params, tokens, targets, uniform)
    _, _, loss_w, grads_w = gpt_ref.weighted_loss_and_grads(CFG, params, tokens, targets, weights)
    write_fixture(out, params, tokens, targets, logits, losses,
                  ((loss_u.item(), grads_u), (weights, loss_w.item(), grads_w)))
    print(f"wrote {out} ({out.stat().st_size} bytes): {gpt_ref.num_params(CFG)} params, "
          f"loss_uniform {loss_u.item():.6f}, loss_weighted {loss_w.item():.6f}")

    # Float32 run of this same reference: how far honest fp32 arithmetic lands from float64.
    lg32, gr32 = _run_f32(params, tokens, targets, uniform)
    errs = grad_errs(gr32, grads_u)
    print(f"float32 reference vs float64: logits err ratio {logit_err(lg32, logits):.3f}, "
          f"worst grad err ratio {max(errs.values()):.3f} ({max(errs, key=errs.get)})")

    # Each deliberate mistake must land far outside the tolerances (ratio >> 1).
    failed = False
    mistakes = ("gelu_erf", "attn_scale_c", "no_causal", "softmax_over_vp", "mean_all_tokens")
    for variant in mistakes:
        w = torch.full((B, T), 1.0 / (B * T), dtype=torch.float64) \
            if variant == "mean_all_tokens" else uniform
        v_logits, _, v_loss, v_grads = gpt_ref.weighted_loss_and_grads(
            CFG, params, tokens, targets, w, None if variant == "mean_all_tokens" else variant)
        le = logit_err(v_logits, logits)
        ge = max(grad_errs(v_grads, grads_u).values())
        print(f"  mistake {variant:16s}: logits err ratio {le:10.1f}, worst grad err ratio "
              f"{ge:10.1f}, loss {v_loss.item():.6f}")
        if max(le, ge) < 20.0:
            print(f"ERROR: the fixture does not detect {variant}", file=sys.stderr)
            failed = True
    if failed:
        sys.exit(1)


def _run_f32(params, tokens, targets, weights):
    flat = params.float().requires_grad_(True)
    p = gpt_ref.unflatten(CFG, flat)
    lg = gpt_ref.forward(CFG, p, tokens)
    loss = (weights.float() * gpt_ref.token_losses(CFG, lg, targets)).sum()
    (g,) = torch.autograd.grad(loss, flat)
    return lg.detach().double(), g.detach().double()


if __name__ == "__main__":
    main()
