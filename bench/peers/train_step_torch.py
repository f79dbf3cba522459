"""Peer for bench_train: one GPT-2 training step (forward, backward, grad-norm clip, AdamW) in
PyTorch, the same model and work as exitrl's gpt_forward_backward + gpt_update: learned positions,
pre-LayerNorm (eps 1e-5), GELU(tanh), tied embedding with Vp rows of which the first V enter the
loss, mean loss over target tokens, global-norm clip 1.0, AdamW with weight decay on matrices and
embeddings only.

Modes:
  --device cpu                      float32 eager on the CPU ("torch.cpu")
  --device cuda --dtype bf16        fp32 weights under bf16 autocast, fused AdamW ("torch.eager"),
                                    the mixed precision exitrl's CUDA backend uses (bf16 compute,
                                    fp32 master weights and optimizer state)
  ... --compile                     the model wrapped in torch.compile (default mode); the
                                    optimizer step stays eager (fused AdamW is one kernel family
                                    already). Compilation happens in the warmup steps.
Attention is F.scaled_dot_product_attention(is_causal=True) where this torch has it (the fused
kernels a PyTorch user gets), else the explicit masked softmax.

Usage: python3 train_step_torch.py --n_layer 4 --n_head 4 --d_model 128 --seq 128 --batch 8
           --vocab_padded 320 [--vocab 265] [--max_seq 256] --threads 2 --steps 5 --warmup 2
           [--device cpu|cuda] [--dtype fp32|bf16] [--compile]
Prints one JSON line: {"tokens_per_s": ..., "step_ms": ..., "compile_s": ..., "peer": ..., ...}
(step_ms = median wall time of the timed steps, each ended by a device synchronisation;
tokens = batch * seq; compile_s = wall time of the warmup steps, which hold the compilation.)
"""
import argparse
import json
import math
import statistics
import sys
import time
from contextlib import nullcontext

import torch
import torch.nn.functional as F
from torch import nn

HAVE_SDPA = hasattr(F, "scaled_dot_product_attention")


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

    def forward(self, x, causal_mask):
        B, T, C = x.shape
        hs = C // self.n_head
        q, k, v = self.qkv(self.ln1(x)).split(C, dim=-1)
        q, k, v = (t.view(B, T, self.n_head, hs).transpose(1, 2) for t in (q, k, v))
        if HAVE_SDPA:
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        else:
            att = (q @ k.transpose(-1, -2)) * (1.0 / math.sqrt(hs))
            att = att.masked_fill(causal_mask[:T, :T], float("-inf")).softmax(dim=-1)
            y = att @ v
        y = y.transpose(1, 2).reshape(B, T, C)
        x = x + self.attproj(y)
        return x + self.fcproj(F.gelu(self.fc(self.ln2(x)), approximate="tanh"))


class GPT(nn.Module):
    def __init__(self, n_layer, n_head, C, max_seq, vocab, vocab_padded):
        super().__init__()
        self.vocab = vocab
        self.wte = nn.Embedding(vocab_padded, C)
        self.wpe = nn.Embedding(max_seq, C)
        self.blocks = nn.ModuleList(Block(C, n_head) for _ in range(n_layer))
        self.lnf = nn.LayerNorm(C, eps=1e-5)
        self.register_buffer("causal_mask",
                             torch.triu(torch.ones(max_seq, max_seq, dtype=torch.bool), 1))
        for p in self.parameters():
            if p.dim() == 2:
                nn.init.normal_(p, std=0.02)

    def forward(self, tokens, targets):
        T = tokens.shape[1]
        x = self.wte(tokens) + self.wpe(torch.arange(T, device=tokens.device))
        for block in self.blocks:
            x = block(x, self.causal_mask)
        logits = self.lnf(x) @ self.wte.weight.T  # all Vp columns, as exitrl computes them
        live = logits[..., :self.vocab]
        return F.cross_entropy(live.reshape(-1, self.vocab), targets.reshape(-1), ignore_index=-1)


def main():
    ap = argparse.ArgumentParser(description="PyTorch peer of exitrl's training step")
    for name in ("n_layer", "n_head", "d_model", "seq", "batch", "vocab_padded", "threads"):
        ap.add_argument(f"--{name}", type=int, required=True)
    ap.add_argument("--vocab", type=int, default=0, help="real vocab V (default: vocab_padded)")
    ap.add_argument("--max_seq", type=int, default=0, help="wpe rows (default: seq)")
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    ap.add_argument("--dtype", choices=("fp32", "bf16"), default="fp32",
                    help="bf16: autocast to bf16 (CUDA only)")
    ap.add_argument("--compile", action="store_true", help="wrap the model in torch.compile")
    a = ap.parse_args()
    vocab = a.vocab or a.vocab_padded
    max_seq = a.max_seq or a.seq
    if (a.d_model % a.n_head or min(a.n_layer, a.n_head, a.seq, a.batch, a.threads, a.steps) < 1
            or vocab > a.vocab_padded or a.seq > max_seq or a.warmup < 0):
        print("train_step_torch: inconsistent sizes", file=sys.stderr)
        return 2
    if a.device == "cuda" and not torch.cuda.is_available():
        print("train_step_torch: --device cuda but torch sees no GPU", file=sys.stderr)
        return 2
    if a.dtype == "bf16" and a.device != "cuda":
        print("train_step_torch: --dtype bf16 needs --device cuda", file=sys.stderr)
        return 2
    if a.compile and not hasattr(torch, "compile"):
        print(f"train_step_torch: torch {torch.__version__} has no torch.compile", file=sys.stderr)
        return 2
    if a.compile and a.warmup < 1:
        print("train_step_torch: --compile needs --warmup >= 1 (compilation happens there)",
              file=sys.stderr)
        return 2
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    cuda = a.device == "cuda"
    model = GPT(a.n_layer, a.n_head, a.d_model, max_seq, vocab, a.vocab_padded).to(a.device)
    decay = [p for p in model.parameters() if p.dim() == 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1},
                             {"params": no_decay, "weight_decay": 0.0}],
                            lr=3e-4, betas=(0.9, 0.95), eps=1e-8, **({"fused": True} if cuda else {}))
    forward = torch.compile(model) if a.compile else model
    tokens = torch.randint(0, vocab, (a.batch, a.seq), device=a.device)
    targets = torch.randint(0, vocab, (a.batch, a.seq), device=a.device)

    def autocast():
        if a.dtype == "bf16":
            return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
        return nullcontext()

    def sync():
        if cuda:
            torch.cuda.synchronize()

    def step():
        opt.zero_grad(set_to_none=True)
        with autocast():
            loss = forward(tokens, targets)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()

    sync()
    t0 = time.perf_counter()
    for _ in range(a.warmup):
        step()
    sync()
    warmup_s = time.perf_counter() - t0
    times = []
    for _ in range(a.steps):
        t0 = time.perf_counter()
        step()
        sync()
        times.append(time.perf_counter() - t0)
    step_s = statistics.median(times)
    peer = "torch.cpu" if not cuda else "torch.compile" if a.compile else "torch.eager"
    print(json.dumps({"peer": peer, "tokens_per_s": a.batch * a.seq / step_s, "step_ms": step_s * 1e3,
                      "compile_s": warmup_s if a.compile else -1,
                      "attention": "sdpa" if HAVE_SDPA else "explicit",
                      "threads": torch.get_num_threads(), "torch": torch.__version__,
                      "device_name": torch.cuda.get_device_name() if cuda else "cpu"}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
