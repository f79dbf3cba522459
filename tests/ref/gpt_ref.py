"""Independent PyTorch reference of exitrl's policy model, written from the model description
(docs/DESIGN.md §3 and host/model/model.h), not from exitrl's code.

The model is GPT-2: learned position embeddings, pre-LayerNorm (eps 1e-5), GELU with the tanh
approximation, causal multi-head attention scaled by 1/sqrt(head_dim), an input embedding tied to the
output projection. The embedding has Vp >= V rows ("padded vocab"): all Vp rows are ordinary weights
and produce Vp logits, but only the first V logit columns enter the softmax and the loss.

Every formula is written out by hand (LayerNorm, GELU, softmax attention) so the reference shares no
fused kernel with what it checks; autograd supplies the gradients. Run it in float64 to use it as an
oracle for fp32 code.

The flat parameter vector follows exitrl's layout (host/model/model.h), each linear weight [out, in]:
  wte[Vp,C] wpe[maxT,C] ln1w[L,C] ln1b[L,C] qkvw[L,3C,C] qkvb[L,3C] attprojw[L,C,C] attprojb[L,C]
  ln2w[L,C] ln2b[L,C] fcw[L,4C,C] fcb[L,4C] fcprojw[L,C,4C] fcprojb[L,C] lnfw[C] lnfb[C]
"""
import math
from dataclasses import dataclass

import torch

LN_EPS = 1e-5


@dataclass(frozen=True)
class Config:
    n_layer: int
    n_head: int
    d_model: int
    max_seq: int
    vocab: int
    vocab_padded: int


def param_shapes(cfg):
    """(name, shape) of every parameter tensor, in exitrl's flat order."""
    L, C, Vp, T = cfg.n_layer, cfg.d_model, cfg.vocab_padded, cfg.max_seq
    return [
        ("wte", (Vp, C)), ("wpe", (T, C)),
        ("ln1w", (L, C)), ("ln1b", (L, C)),
        ("qkvw", (L, 3 * C, C)), ("qkvb", (L, 3 * C)),
        ("attprojw", (L, C, C)), ("attprojb", (L, C)),
        ("ln2w", (L, C)), ("ln2b", (L, C)),
        ("fcw", (L, 4 * C, C)), ("fcb", (L, 4 * C)),
        ("fcprojw", (L, C, 4 * C)), ("fcprojb", (L, C)),
        ("lnfw", (C,)), ("lnfb", (C,)),
    ]


def num_params(cfg):
    return sum(math.prod(shape) for _, shape in param_shapes(cfg))


def unflatten(cfg, flat):
    """Splits a flat 1-D tensor into named views (no copy), in exitrl's order."""
    if flat.dim() != 1 or flat.numel() != num_params(cfg):
        raise ValueError(f"flat parameter vector has {flat.numel()} values, config needs "
                         f"{num_params(cfg)}")
    params, offset = {}, 0
    for name, shape in param_shapes(cfg):
        n = math.prod(shape)
        params[name] = flat[offset:offset + n].view(shape)
        offset += n
    return params


def flatten(cfg, params):
    """Concatenates named tensors (e.g. gradients) into one flat vector in exitrl's order."""
    parts = []
    for name, shape in param_shapes(cfg):
        t = params[name]
        if tuple(t.shape) != shape:
            raise ValueError(f"{name}: shape {tuple(t.shape)}, expected {shape}")
        parts.append(t.reshape(-1))
    return torch.cat(parts)


def layernorm(x, w, b):
    mean = x.mean(dim=-1, keepdim=True)
    var = ((x - mean) ** 2).mean(dim=-1, keepdim=True)  # biased variance, as GPT-2
    return (x - mean) / torch.sqrt(var + LN_EPS) * w + b


def gelu_tanh(x):
    # GELU(x) ~= 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))  (Hendrycks & Gimpel 2016)
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3)))


def gelu_erf(x):
    # The exact GELU; only used to show the fixture tells the two apart.
    return 0.5 * x * (1.0 + torch.erf(x / math.sqrt(2.0)))


def causal_attention(qkv, n_head, scale=None, causal=True):
    """qkv[B,T,3C] = q | k | v; head h uses channels h*hs..(h+1)*hs-1 of each. Returns [B,T,C]."""
    B, T, C3 = qkv.shape
    C = C3 // 3
    hs = C // n_head
    q, k, v = qkv[..., :C], qkv[..., C:2 * C], qkv[..., 2 * C:]
    q = q.reshape(B, T, n_head, hs).transpose(1, 2)  # [B,NH,T,hs]
    k = k.reshape(B, T, n_head, hs).transpose(1, 2)
    v = v.reshape(B, T, n_head, hs).transpose(1, 2)
    scores = (q @ k.transpose(-1, -2)) * (scale if scale is not None else 1.0 / math.sqrt(hs))
    if causal:
        future = torch.triu(torch.ones(T, T, dtype=torch.bool), diagonal=1)
        scores = scores.masked_fill(future, float("-inf"))
    scores = scores - scores.amax(dim=-1, keepdim=True)
    p = torch.exp(scores)
    p = p / p.sum(dim=-1, keepdim=True)
    return (p @ v).transpose(1, 2).reshape(B, T, C)


def forward(cfg, params, tokens, variant=None):
    """Logits [B,T,Vp] for tokens [B,T] (int64). `variant` names a deliberate deviation from the
    model (used only to prove the fixture detects it): 'gelu_erf', 'attn_scale_c', 'no_causal'."""
    B, T = tokens.shape
    if T > cfg.max_seq:
        raise ValueError(f"T={T} exceeds max_seq={cfg.max_seq}")
    C = cfg.d_model
    act = gelu_erf if variant == "gelu_erf" else gelu_tanh
    scale = 1.0 / math.sqrt(C) if variant == "attn_scale_c" else None
    x = params["wte"][tokens] + params["wpe"][:T]
    for l in range(cfg.n_layer):
        h = layernorm(x, params["ln1w"][l], params["ln1b"][l])
        qkv = h @ params["qkvw"][l].T + params["qkvb"][l]
        y = causal_attention(qkv, cfg.n_head, scale=scale, causal=(variant != "no_causal"))
        x = x + y @ params["attprojw"][l].T + params["attprojb"][l]
        h = layernorm(x, params["ln2w"][l], params["ln2b"][l])
        f = act(h @ params["fcw"][l].T + params["fcb"][l])
        x = x + f @ params["fcprojw"][l].T + params["fcprojb"][l]
    x = layernorm(x, params["lnfw"], params["lnfb"])
    return x @ params["wte"].T  # tied output projection over all Vp rows


def token_losses(cfg, logits, targets, variant=None):
    """Per-token -log softmax(logits[:V])[target]; 0 where target < 0. [B,T]."""
    V = cfg.vocab_padded if variant == "softmax_over_vp" else cfg.vocab
    live = logits[..., :V]
    lse = torch.logsumexp(live, dim=-1)
    safe = targets.clamp(min=0)
    picked = live.gather(-1, safe.unsqueeze(-1)).squeeze(-1)
    return torch.where(targets >= 0, lse - picked, torch.zeros_like(lse))


def uniform_weights(targets):
    """exitrl's NULL loss weights: 1/(number of targets) on each target token, 0 elsewhere."""
    is_target = (targets >= 0).to(torch.float64)
    n = is_target.sum()
    if n == 0:
        raise ValueError("batch has no target token")
    return is_target / n


def weighted_loss_and_grads(cfg, flat_params, tokens, targets, weights, variant=None):
    """sum_n w_n * loss_n and its gradient w.r.t. the flat parameter vector.
    Returns (logits, losses, loss, grad_flat), detached."""
    flat = flat_params.detach().clone().requires_grad_(True)
    params = unflatten(cfg, flat)
    logits = forward(cfg, params, tokens, variant)
    losses = token_losses(cfg, logits, targets, variant)
    loss = (weights.to(losses.dtype) * losses).sum()
    (grad,) = torch.autograd.grad(loss, flat)
    return logits.detach(), losses.detach(), loss.detach(), grad.detach()

