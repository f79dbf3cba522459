"""Peer for bench_train_cpu: one GPT-2 training step (forward, backward, grad-norm clip, AdamW) in
PyTorch eager on the CPU, float32, the same model and work as exitrl's gpt_forward_backward +
gpt_update: learned positions, pre-LayerNorm (eps 1e-5), GELU(tanh), tied embedding with Vp rows of
which the first V enter the loss, mean loss over target tokens, global-norm clip 1.0, AdamW with
weight decay on matrices and embeddings only.

Usage: python3 train_step_torch.py --n_layer 4 --n_head 4 --d_model 128 --seq 128 --batch 8
           --vocab_padded 320 [--vocab 265] [--max_seq 256] --threads 2 --steps 5 --warmup 2
Prints one JSON line: {"tokens_per_s": ..., "step_ms": ..., "threads": ..., "torch": ...}
(step_ms = median wall time of the timed steps, robust to a busy machine; tokens = batch * seq.)
"""
import argparse
import json
import math
import statistics
import sys
import time

import torch
import torch.nn.functional as F
from torch import nn


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
        att = (q @ k.transpose(-1, -2)) * (1.0 / math.sqrt(hs))
        att = att.masked_fill(causal_mask[:T, :T], float("-inf")).softmax(dim=-1)
        y = (att @ v).transpose(1, 2).reshape(B, T, C)
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
        x = self.wte(tokens) + self.wpe(torch.arange(T))
        for block in self.blocks:
            x = block(x, self.causal_mask)
        logits = self.lnf(x) @ self.wte.weight.T  # all Vp columns, as exitrl computes them
        live = logits[..., :self.vocab]
        return F.cross_entropy(live.reshape(-1, self.vocab), targets.reshape(-1), ignore_index=-1)


def main():
    ap = argparse.ArgumentParser(description="PyTorch CPU peer of exitrl's training step")
    for name in ("n_layer", "n_head", "d_model", "seq", "batch", "vocab_padded", "threads"):
        ap.add_argument(f"--{name}", type=int, required=True)
    ap.add_argument("--vocab", type=int, default=0, help="real vocab V (default: vocab_padded)")
    ap.add_argument("--max_seq", type=int, default=0, help="wpe rows (default: seq)")
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=2)
    a = ap.parse_args()
    vocab = a.vocab or a.vocab_padded
    max_seq = a.max_seq or a.seq
    if (a.d_model % a.n_head or min(a.n_layer, a.n_head, a.seq, a.batch, a.threads, a.steps) < 1
            or vocab > a.vocab_padded or a.seq > max_seq or a.warmup < 0):
        print("train_step_torch: inconsistent sizes", file=sys.stderr)
        return 2
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    model = GPT(a.n_layer, a.n_head, a.d_model, max_seq, vocab, a.vocab_padded)
    decay = [p for p in model.parameters() if p.dim() == 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1},
                             {"params": no_decay, "weight_decay": 0.0}],
                            lr=3e-4, betas=(0.9, 0.95), eps=1e-8)
    tokens = torch.randint(0, vocab, (a.batch, a.seq))
    targets = torch.randint(0, vocab, (a.batch, a.seq))

    def step():
        opt.zero_grad(set_to_none=False)
        model(tokens, targets).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()

    for _ in range(a.warmup):
        step()
    times = []
    for _ in range(a.steps):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    step_s = statistics.median(times)
    print(json.dumps({"tokens_per_s": a.batch * a.seq / step_s, "step_ms": step_s * 1e3,
                      "threads": torch.get_num_threads(), "torch": torch.__version__}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
