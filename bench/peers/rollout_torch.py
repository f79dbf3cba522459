"""Peer for bench_rollout: batched sampling with a KV cache in plain PyTorch, on exitrl's weights.

The model is exitrl's GPT-2 (host/model/model.h): learned positions, pre-LayerNorm (eps 1e-5), GELU(tanh),
an embedding of Vp rows tied to the output, of which only the first V logits are sampled. The
generation loop does the same work as exitrl's rollout engine (host/rl/rollout.h): right-padded prompts
are prefilled together into a [layer][sequence][head][position][channel] cache, then each step feeds
one token per sequence at its own position and attends over the cache up to that position; tokens
are drawn from softmax(logits[:V] / temperature); a sequence stops at the EOS id or after
new_tokens tokens, stopped sequences stay in the batch (as in exitrl) and the loop ends early only
when all have stopped, looked at every 8 steps. Generated tokens are counted up to and including EOS.

With --hf DIR (an `exitrl export` of the same weights) it also times Hugging Face transformers'
GPT2LMHeadModel.generate with the same sampling (padding-row ids suppressed), when transformers is
importable; otherwise that peer reports why it was skipped.

Usage: python3 rollout_torch.py --n_layer 4 --n_head 4 --d_model 128 --max_seq 256 --vocab 265
           --vocab_padded 320 --weights W.f32 --prompts P.i32 --batch 16 --prompt_len 64
           --new_tokens 64 --eos 257 [--temperature 1] [--seed 1] [--threads 2] [--reps 3]
           [--warmup 1] [--device cpu|cuda] [--dtype fp32|bf16] [--hf DIR]
  W.f32: exitrl's flat fp32 parameters (layout of host/model/model.h), little-endian.
  P.i32: int32 prompt ids [batch, prompt_len], little-endian.
Prints one JSON line per peer: {"peer": ..., "tokens_per_s": ..., "gen_tokens": ..., "time_ms": ...}
(time_ms = median wall time of the timed runs) or {"peer": ..., "skipped": reason}.
"""
import argparse
import json
import math
import statistics
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

TOK_PAD = 258  # host/model/tokenizer.h: padding id, never sampled
DONE_CHECK_INTERVAL = 8  # as exitrl's rollout engine: steps between looks at the finished flags


def param_shapes(L, C, Vp, T):
    """(name, shape) of every tensor of exitrl's flat parameter vector, in order."""
    return [("wte", (Vp, C)), ("wpe", (T, C)), ("ln1w", (L, C)), ("ln1b", (L, C)),
            ("qkvw", (L, 3 * C, C)), ("qkvb", (L, 3 * C)), ("attprojw", (L, C, C)),
            ("attprojb", (L, C)), ("ln2w", (L, C)), ("ln2b", (L, C)), ("fcw", (L, 4 * C, C)),
            ("fcb", (L, 4 * C)), ("fcprojw", (L, C, 4 * C)), ("fcprojb", (L, C)),
            ("lnfw", (C,)), ("lnfb", (C,))]


class Block(nn.Module):
    def __init__(self, C, n_head):
        super().__init__()
        self.n_head = n_head
        self.ln1 = nn.LayerNorm(C, eps=1e-5)
        self.qkv = nn.Linear(C, 3 * C)
        self.attproj = nn.Linear(C, C)
        self.ln2 = nn.LayerNorm(C, eps=1e-5)
        self.fc = nn.Linear(C, 4 * C)
        self.fcproj = nn.Linear(4 * C, C)

    def heads(self, x):
        """[B, T, 3C] -> q, k, v as [B, NH, T, hs]."""
        B, T, C3 = x.shape
        hs = C3 // 3 // self.n_head
        return (t.view(B, T, self.n_head, hs).transpose(1, 2) for t in x.split(C3 // 3, dim=-1))

    def mlp_and_residual(self, x, y):
        B, T, C = x.shape
        x = x + self.attproj(y.transpose(1, 2).reshape(B, T, C))
        return x + self.fcproj(F.gelu(self.fc(self.ln2(x)), approximate="tanh"))

    def forward(self, x, causal_mask, cache=None):
        """Full causal attention over x [B, T, C]; with cache = (k, v) [B, NH, S, hs] also stores
        positions 0..T-1 there (prefill)."""
        q, k, v = self.heads(self.qkv(self.ln1(x)))
        T = x.shape[1]
        if cache is not None:
            cache[0][:, :, :T] = k
            cache[1][:, :, :T] = v
        att = (q @ k.transpose(-1, -2)) * (1.0 / math.sqrt(q.shape[-1]))
        att = att.masked_fill(causal_mask[:T, :T], float("-inf")).softmax(-1, dtype=torch.float32)
        return self.mlp_and_residual(x, att.to(v.dtype) @ v)

    def decode(self, x, cache, rows, pos, key_mask):
        """One step: x [B, 1, C] at positions pos [B]; stores k, v there and attends over cache
        positions where key_mask [B, 1, 1, S'] is False."""
        q, k, v = self.heads(self.qkv(self.ln1(x)))
        kc, vc = cache
        kc[rows, :, pos] = k[:, :, 0].to(kc.dtype)
        vc[rows, :, pos] = v[:, :, 0].to(vc.dtype)
        span = key_mask.shape[-1]
        att = (q @ kc[:, :, :span].transpose(-1, -2)) * (1.0 / math.sqrt(q.shape[-1]))
        att = att.masked_fill(key_mask, float("-inf")).softmax(-1, dtype=torch.float32)
        return self.mlp_and_residual(x, att.to(vc.dtype) @ vc[:, :, :span])


class GPT(nn.Module):
    def __init__(self, n_layer, n_head, d_model, max_seq, vocab, vocab_padded):
        super().__init__()
        self.vocab, self.n_head = vocab, n_head
        self.wte = nn.Parameter(torch.zeros(vocab_padded, d_model))
        self.wpe = nn.Parameter(torch.zeros(max_seq, d_model))
        self.blocks = nn.ModuleList(Block(d_model, n_head) for _ in range(n_layer))
        self.lnf = nn.LayerNorm(d_model, eps=1e-5)
        self.register_buffer("causal_mask",
                             torch.triu(torch.ones(max_seq, max_seq, dtype=torch.bool), 1))

    def load_exitrl_params(self, flat):
        """Copies exitrl's flat fp32 parameter vector (numpy) into the modules."""
        L, C = len(self.blocks), self.wte.shape[1]
        shapes = param_shapes(L, C, self.wte.shape[0], self.wpe.shape[0])
        need = sum(math.prod(s) for _, s in shapes)
        if flat.size != need:
            raise ValueError(f"weights file holds {flat.size} floats, the model needs {need}")
        p, off = {}, 0
        for name, shape in shapes:
            n = math.prod(shape)
            p[name] = torch.from_numpy(flat[off:off + n].reshape(shape).copy())
            off += n
        with torch.no_grad():
            self.wte.copy_(p["wte"])
            self.wpe.copy_(p["wpe"])
            for l, b in enumerate(self.blocks):
                for mod, w, bias in ((b.ln1, "ln1w", "ln1b"), (b.qkv, "qkvw", "qkvb"),
                                     (b.attproj, "attprojw", "attprojb"), (b.ln2, "ln2w", "ln2b"),
                                     (b.fc, "fcw", "fcb"), (b.fcproj, "fcprojw", "fcprojb")):
                    mod.weight.copy_(p[w][l])
                    mod.bias.copy_(p[bias][l])
            self.lnf.weight.copy_(p["lnfw"])
            self.lnf.bias.copy_(p["lnfb"])

    def forward(self, tokens):
        """Logits [B, T, Vp] of tokens [B, T] (all Vp columns, as exitrl computes them)."""
        x = F.embedding(tokens, self.wte) + self.wpe[:tokens.shape[1]]
        for b in self.blocks:
            x = b(x, self.causal_mask)
        return self.lnf(x) @ self.wte.T


class Rollouts:
    """Host copies of a generate() result: tokens/logprobs [B, S] (prompt, generated, TOK_PAD),
    prompt_len, gen_len, hit_eos [B], embed [B, C] (mean final hidden state of the emitting steps)."""

    def __init__(self, tokens, logprobs, prompt_len, gen_len, hit_eos, embed):
        self.tokens, self.logprobs, self.prompt_len = tokens, logprobs, prompt_len
        self.gen_len, self.hit_eos, self.embed = gen_len, hit_eos, embed


@torch.no_grad()
def generate(model, prompts, prompt_lens, S, new_tokens, temperature, eos, generator, cache_dtype):
    """Samples up to new_tokens tokens after each prompt (prompts [B, >= max len] int64 on the
    model's device, right-padded; prompt_lens [B]) with a KV cache of S positions. Returns Rollouts."""
    dev = prompts.device
    B = prompts.shape[0]
    C, NH, V = model.wte.shape[1], model.n_head, model.vocab
    lens = torch.as_tensor(prompt_lens, dtype=torch.long, device=dev)
    Tp = int(max(prompt_lens))
    rows = torch.arange(B, device=dev)
    tok_buf = torch.full((B, S), TOK_PAD, dtype=torch.long, device=dev)
    tok_buf[:, :Tp] = torch.where(torch.arange(Tp, device=dev) < lens[:, None], prompts[:, :Tp],
                                  TOK_PAD)
    logprob_buf = torch.zeros(B, S, device=dev)
    caches = [(torch.zeros(B, NH, S, C // NH, dtype=cache_dtype, device=dev),
               torch.zeros(B, NH, S, C // NH, dtype=cache_dtype, device=dev)) for _ in model.blocks]
    pos = lens - 1
    limit = torch.clamp(lens + new_tokens, max=S)
    done = torch.zeros(B, dtype=torch.bool, device=dev)
    emb = torch.zeros(B, C, device=dev)

    def emit(hidden):
        nonlocal pos, done
        logits = (hidden @ model.wte.T)[:, :V].float() / temperature
        emb.add_(hidden.float() * (~done)[:, None])
        logp = logits.log_softmax(-1)
        nxt = torch.multinomial(logp.exp(), 1, generator=generator).squeeze(1)
        lp = logp.gather(1, nxt[:, None]).squeeze(1)
        live = ~done
        new_pos = torch.where(live, pos + 1, pos)  # a stopped sequence rewrites its last cell
        tok_buf[rows, new_pos] = torch.where(live, nxt, tok_buf[rows, pos])
        logprob_buf[rows, new_pos] = torch.where(live, lp, logprob_buf[rows, pos])
        done = done | (live & ((nxt == eos) | (new_pos + 1 >= limit)))
        pos = new_pos

    x = F.embedding(tok_buf[:, :Tp], model.wte) + model.wpe[:Tp]
    for b, cache in zip(model.blocks, caches):
        x = b(x, model.causal_mask, cache)
    emit(model.lnf(x)[rows, pos])
    for step in range(1, new_tokens):
        if step % DONE_CHECK_INTERVAL == 0 and bool(done.all()):
            break
        span = min(Tp + step, S)  # no sequence is past position Tp - 1 + step
        key_mask = (torch.arange(span, device=dev) > pos[:, None])[:, None, None, :]
        x = (F.embedding(tok_buf[rows, pos], model.wte) + model.wpe[pos])[:, None, :]
        for b, cache in zip(model.blocks, caches):
            x = b.decode(x, cache, rows, pos, key_mask)
        emit(model.lnf(x)[:, 0])
    gen_len = pos + 1 - lens
    hit_eos = tok_buf[rows, pos] == eos
    cols = torch.arange(S, device=dev)
    tok_buf = torch.where(cols <= pos[:, None], tok_buf, TOK_PAD)
    logprob_buf = torch.where((cols <= pos[:, None]) & (cols >= lens[:, None]), logprob_buf, 0.0)
    return Rollouts(tok_buf.cpu(), logprob_buf.cpu(), lens.cpu(), gen_len.cpu(), hit_eos.cpu(),
                    (emb / gen_len[:, None]).cpu())


def sync(device):
    if device == "cuda":
        torch.cuda.synchronize()


def median_time(fn, reps, warmup, device):
    """(median seconds over reps timed calls after warmup untimed ones, the last call's result)."""
    for _ in range(warmup):
        fn()
    times, out = [], None
    for _ in range(reps):
        sync(device)
        t0 = time.perf_counter()
        out = fn()
        sync(device)
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def read_array(path, dtype, count, what):
    a = np.fromfile(path, dtype=dtype)
    if a.size != count:
        raise ValueError(f"{what} file {path} holds {a.size} values, expected {count}")
    return a


def hf_generate(a, prompts, device, dtype):
    """Times transformers' generate on the export in a.hf; returns the JSON record."""
    try:
        import transformers
    except ImportError as e:
        return {"peer": "hf.generate", "skipped": f"transformers not importable ({e})"}
    transformers.logging.set_verbosity_error()
    model = transformers.GPT2LMHeadModel.from_pretrained(a.hf, torch_dtype=dtype).to(device).eval()
    ids = prompts.to(device)
    mask = torch.ones_like(ids)
    padding_ids = list(range(a.vocab, a.vocab_padded))  # exitrl never samples padding rows

    def once():
        torch.manual_seed(a.seed)
        with torch.no_grad():
            out = model.generate(ids, attention_mask=mask, do_sample=True, temperature=a.temperature,
                                 top_k=0, top_p=1.0, max_new_tokens=a.new_tokens,
                                 eos_token_id=a.eos, pad_token_id=TOK_PAD,
                                 suppress_tokens=padding_ids)
        gen = out[:, ids.shape[1]:]
        is_eos = gen == a.eos
        lengths = torch.where(is_eos.any(1), is_eos.int().argmax(1) + 1, gen.shape[1])
        return int(lengths.sum())

    t, gen_tokens = median_time(once, a.reps, a.warmup, device)
    return {"peer": "hf.generate", "tokens_per_s": gen_tokens / t, "gen_tokens": gen_tokens,
            "time_ms": t * 1e3, "transformers": transformers.__version__}


def main():
    ap = argparse.ArgumentParser(description="PyTorch peer of exitrl's rollout engine")
    for name in ("n_layer", "n_head", "d_model", "max_seq", "vocab", "vocab_padded", "batch",
                 "prompt_len", "new_tokens", "eos"):
        ap.add_argument(f"--{name}", type=int, required=True)
    ap.add_argument("--weights", required=True)
    ap.add_argument("--prompts", required=True)
    ap.add_argument("--temperature", type=float, default=1.0)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    ap.add_argument("--dtype", choices=("fp32", "bf16"), default="fp32")
    ap.add_argument("--hf", help="exitrl export directory: also time transformers' generate")
    a = ap.parse_args()
    S = a.prompt_len + a.new_tokens
    if (a.d_model % a.n_head or min(a.n_layer, a.n_head, a.batch, a.prompt_len, a.new_tokens,
                                    a.threads, a.reps) < 1 or a.warmup < 0
            or a.vocab > a.vocab_padded or S > a.max_seq or not 0 <= a.eos < a.vocab
            or not a.temperature > 0):
        print("rollout_torch: inconsistent sizes or sampling parameters", file=sys.stderr)
        return 2
    if a.device == "cuda" and not torch.cuda.is_available():
        print("rollout_torch: --device cuda but torch sees no GPU", file=sys.stderr)
        return 2
    torch.set_num_threads(a.threads)
    dtype = torch.bfloat16 if a.dtype == "bf16" else torch.float32
    model = GPT(a.n_layer, a.n_head, a.d_model, a.max_seq, a.vocab, a.vocab_padded)
    try:
        n = sum(math.prod(s) for _, s in param_shapes(a.n_layer, a.d_model, a.vocab_padded,
                                                      a.max_seq))
        model.load_exitrl_params(read_array(a.weights, "<f4", n, "weights"))
        ids = read_array(a.prompts, "<i4", a.batch * a.prompt_len, "prompts")
    except (OSError, ValueError) as e:
        print(f"rollout_torch: {e}", file=sys.stderr)
        return 2
    if ids.min() < 0 or ids.max() >= a.vocab:
        print("rollout_torch: a prompt id is outside the vocabulary", file=sys.stderr)
        return 2
    prompts = torch.from_numpy(ids.astype(np.int64)).view(a.batch, a.prompt_len)
    model = model.to(device=a.device, dtype=dtype).eval()
    dev_prompts = prompts.to(a.device)
    lens = [a.prompt_len] * a.batch

    def once():
        g = torch.Generator(device=a.device)
        g.manual_seed(a.seed)
        return int(generate(model, dev_prompts, lens, S, a.new_tokens, a.temperature, a.eos, g,
                            dtype).gen_len.sum())

    t, gen_tokens = median_time(once, a.reps, a.warmup, a.device)
    print(json.dumps({"peer": "torch.cpu" if a.device == "cpu" else "torch.eager",
                      "tokens_per_s": gen_tokens / t, "gen_tokens": gen_tokens, "time_ms": t * 1e3,
                      "threads": torch.get_num_threads(), "torch": torch.__version__}), flush=True)
    if a.hf:
        del model
        print(json.dumps(hf_generate(a, prompts, a.device, dtype)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
