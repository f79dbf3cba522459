"""Peer for bench_exit_iteration: the work of one exitrl ExIt iteration (host/rl/trainer.c) in PyTorch, on
the same prompts and starting weights.

Per iteration, for P prompts given by exitrl (already planned and rendered; its buffer is not
re-implemented):
  rollout  G completions per prompt with a KV cache (rollout_torch.generate: sampling at the given
           temperature, stop at EOS or after max_new_tokens; mean final hidden state per completion)
  reward   the domain's verifier in Python (--task): the completion is well formed when it ends with
           EOS and holds only byte tokens before it (else reward 0); its bytes are then scored as
           exitrl's verifier does (host/tasks/): arith: [ws] ['-'] digits [ws] (at most 18 digits)
           equal to the answer: 1, else 0; countdown: an expression over + - * / ( ) and the given
           numbers (read from the prompt's request), 1 at the target, 0.1 + 0.4 * closeness for
           another value, 0.05 for numbers not given, inexact division or overflow, 0 not an
           expression; knapsack: distinct item indices (from the request's items) separated by
           whitespace, value / optimum within the capacity, 0 over it or malformed
  score    group advantages (r - mean) / (Bessel std + adv_eps), scaled by the diversity of each
           completion's embedding within its group (distance to the group mean over the group's
           range of distances; 1 for the whole group when the range <= 1e-4 * max); group
           learnability scores 4 * population variance
  update   one GRPO step over all P*G rows: each row is prompt + completion minus its last token,
           targets are the completion tokens, weight 1 / (rows * completion length) (grpo
           aggregation); token loss -min(rho A, clip(rho, 1-eps_low, 1+eps_high) A) + beta * k3 with
           k3 = exp(lp_ref - lp) - (lp_ref - lp) - 1 against a frozen copy of the starting weights;
           global-norm clip, AdamW with weight decay on matrices and embeddings only.

Usage: python3 exit_iteration_torch.py --n_layer 4 --n_head 4 --d_model 128 --max_seq 256
           --vocab 265 --vocab_padded 320 --weights W.f32 --prompts PROMPTS.txt --warmup 1
           --max_new_tokens 16 --eos 257 [--temperature 1 --clip_eps_low 0.2 --clip_eps_high 0.2
           --kl_beta 0.001 --adv_eps 1e-4 --lr 1e-3 --beta1 0.9 --beta2 0.95 --adam_eps 1e-8
           --weight_decay 0.1 --grad_clip 1] [--seed 1] [--threads 2] [--device cpu|cuda]
           [--dtype fp32|bf16] [--task arith|countdown|knapsack]
  W.f32: exitrl's flat fp32 parameters (layout of host/model/model.h), little-endian.
  PROMPTS.txt: first line "P G ITERATIONS", then ITERATIONS blocks of P lines
               "KEY LEN id_0 ... id_{LEN-1}": the prompt's tokens and the number its verifier needs
               (arith: the answer; countdown: the target; knapsack: the optimal value).
The first --warmup iterations are run untimed. Prints one JSON line with the median over the timed
iterations of each phase (t_rollout, t_reward, t_score, t_update) and of the total, in seconds.
"""
import argparse
import copy
import json
import math
import re
import statistics
import sys
import time
from contextlib import nullcontext
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from rollout_torch import GPT, TOK_PAD, generate, param_shapes, read_array, sync  # noqa: E402

WHITESPACE = b" \t\n\r"  # the verifier's scan_is_space
TOK_REQUEST = 259         # model/tokenizer.h: the request's bytes follow it, up to the next special
INT64_MAX = 2**63 - 1


def read_prompts(path):
    """(P, G, [iterations of [(answer, [ids])] * P])."""
    with open(path) as f:
        head = f.readline().split()
        if len(head) != 3:
            raise ValueError(f"{path}: first line must be 'P G ITERATIONS'")
        P, G, iters = (int(x) for x in head)
        out = []
        for _ in range(iters):
            block = []
            for _ in range(P):
                fields = [int(x) for x in f.readline().split()]
                if len(fields) < 3 or fields[1] != len(fields) - 2:
                    raise ValueError(f"{path}: a prompt line does not match its length field")
                block.append((fields[0], fields[2:]))
            out.append(block)
    return P, G, out


def answer_bytes(gen, hit_eos):
    """The completion's answer bytes, or None when it is malformed (no EOS, a special token)."""
    if not hit_eos or len(gen) < 1 or any(t < 0 or t > 255 for t in gen[:-1]):
        return None
    return bytes(gen[:-1])


def request_text(ids):
    """The request bytes of a prompt: after REQUEST, up to the next special token."""
    start = ids.index(TOK_REQUEST) + 1
    end = start
    while end < len(ids) and ids[end] < 256:
        end += 1
    return bytes(ids[start:end]).decode("ascii")


def arith_reward(text, answer, ids):
    text = text.strip(WHITESPACE)
    digits = text[1:] if text[:1] == b"-" else text
    if not digits or len(digits) > 18 or not digits.isdigit():
        return 0.0
    return 1.0 if int(text) == answer else 0.0


class _Expr:
    """countdown's expression parser (host/tasks/expr.c): + - * / over integers and parentheses;
    status "ok", "syntax", "division" (by zero or inexact) or "overflow" (int64, or > 9 digits)."""

    def __init__(self, s):
        self.s, self.pos, self.depth, self.status, self.numbers = s, 0, 0, "ok", []

    def note(self, st):
        if st == "syntax" or self.status == "ok":
            self.status = st

    def peek(self):
        while self.pos < len(self.s) and self.s[self.pos] in WHITESPACE:
            self.pos += 1
        return self.s[self.pos] if self.pos < len(self.s) else -1

    def factor(self):
        c = self.peek()
        if c == ord("("):
            self.depth += 1
            if self.depth > 32:
                self.note("syntax")
                return 0
            self.pos += 1
            v = self.expr()
            if self.status == "syntax":
                return 0
            if self.peek() != ord(")"):
                self.note("syntax")
                return 0
            self.pos += 1
            self.depth -= 1
            return v
        if not (ord("0") <= c <= ord("9")):
            self.note("syntax")
            return 0
        start = self.pos
        while self.pos < len(self.s) and ord("0") <= self.s[self.pos] <= ord("9"):
            self.pos += 1
        digits = self.s[start:self.pos]
        if len(digits) > 9:
            self.note("overflow")
        v = int(digits[:9])
        self.numbers.append(v)
        return v

    def level(self, ops, operand):
        acc = operand()
        while True:
            if self.status == "syntax":
                return 0
            c = self.peek()
            if c not in ops:
                return acc
            self.pos += 1
            rhs = operand()
            if self.status != "ok":
                continue
            if c == ord("/"):
                if rhs == 0 or acc % rhs:
                    self.note("division")
                    continue
                r = abs(acc) // abs(rhs) * (1 if (acc < 0) == (rhs < 0) else -1)
            else:
                r = acc + rhs if c == ord("+") else acc - rhs if c == ord("-") else acc * rhs
            if not -INT64_MAX - 1 <= r <= INT64_MAX:
                self.note("overflow")
                continue
            acc = r

    def term(self):
        return self.level((ord("*"), ord("/")), self.factor)

    def expr(self):
        return self.level((ord("+"), ord("-")), self.term)


def countdown_reward(text, target, ids):
    words = request_text(ids).split()  # "nums 3 7 25 target 175"
    given = [int(w) for w in words[1:words.index("target")]]
    e = _Expr(text)
    v = e.expr()
    if e.status != "syntax" and e.peek() != -1:
        e.note("syntax")
    if e.status == "syntax":
        return 0.0
    pool = list(given)
    for x in e.numbers:
        if x not in pool:
            return 0.05
        pool.remove(x)
    if e.status != "ok":
        return 0.05
    if v == target:
        return 1.0
    closeness = 1.0 - abs(v - target) / max(float(target), 1.0)
    return 0.1 + 0.4 * max(closeness, 0.0)


def knapsack_reward(text, optimum, ids):
    words = request_text(ids).split()  # "cap 20 items 3:5 4:6 ..."
    cap = int(words[1])
    items = [tuple(int(x) for x in w.split(":")) for w in words[3:]]
    take = set()
    for w in re.split(rb"[ \t\n\r]+", text.strip(WHITESPACE)) if text.strip(WHITESPACE) else []:
        # whitespace-separated indices of at most 3 digits, distinct, in range
        if not w.isdigit() or len(w) > 3 or int(w) >= len(items) or int(w) in take:
            return 0.0
        take.add(int(w))
    weight = sum(items[i][0] for i in take)
    value = sum(items[i][1] for i in take)
    return 0.0 if weight > cap else value / optimum


REWARDS = {"arith": arith_reward, "countdown": countdown_reward, "knapsack": knapsack_reward}


def reward(task, gen, hit_eos, key, ids):
    text = answer_bytes(gen, hit_eos)
    return 0.0 if text is None else REWARDS[task](text, key, ids)


def score_and_advantage(rewards, embed, P, G, eps):
    """Diversity-scaled group advantages [P*G] and group scores [P], as exitrl's RL kernels."""
    r = rewards.view(P, G)
    adv = (r - r.mean(1, keepdim=True)) / (r.std(1, unbiased=True, keepdim=True) + eps)
    e = embed.view(P, G, -1)
    dist = (e - e.mean(1, keepdim=True)).norm(dim=-1)
    dmax, dmin = dist.max(1, keepdim=True).values, dist.min(1, keepdim=True).values
    scale = torch.where(dmax - dmin <= 1e-4 * dmax, torch.ones_like(dist), dist / (dmax - dmin))
    scores = 4.0 * r.var(1, unbiased=False)
    return (adv * scale).flatten(), scores


def grpo_batch(ro, adv, n, device):
    """Row tensors of the GRPO step: tokens, targets (-1 = none), weights, lp_old, per-token adv."""
    lens, gen = ro.prompt_len[:n], ro.gen_len[:n]
    T = int((lens + gen - 1).max())
    t = torch.arange(T)
    seq = ro.tokens[:n]
    end = (lens + gen - 1)[:, None]
    is_target = (t >= lens[:, None] - 1) & (t < end)
    tok = torch.where(t < end, seq[:, :T], TOK_PAD)
    tgt = torch.where(is_target, seq[:, 1:T + 1], -1)
    w = is_target / (n * gen[:, None].float())
    lp_old = torch.where(is_target, ro.logprobs[:n, 1:T + 1], 0.0)
    a = torch.where(is_target, adv[:, None], 0.0)
    return [x.to(device) for x in (tok, tgt, w, lp_old, a)]


def target_logprobs(model, tok, tgt, inv_temp, V):
    logp = (model(tok)[..., :V].float() * inv_temp).log_softmax(-1)
    return logp.gather(-1, tgt.clamp(min=0)[..., None]).squeeze(-1)


def grpo_step(model, ref, opt, batch, a):
    tok, tgt, w, lp_old, adv = batch
    inv_temp = 1.0 / a.temperature
    with torch.no_grad():
        lp_ref = target_logprobs(ref, tok, tgt, inv_temp, a.vocab)
    lp = target_logprobs(model, tok, tgt, inv_temp, a.vocab)
    rho = torch.exp(lp - lp_old)
    clipped = rho.clamp(1.0 - a.clip_eps_low, 1.0 + a.clip_eps_high)
    k3 = torch.exp(lp_ref - lp) - (lp_ref - lp) - 1.0
    loss_tok = -torch.minimum(rho * adv, clipped * adv) + a.kl_beta * k3
    loss = (w * torch.where(tgt >= 0, loss_tok, 0.0)).sum()
    opt.zero_grad(set_to_none=False)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), a.grad_clip)
    opt.step()
    return float(loss)


def iteration(model, ref, opt, block, G, a, generator, autocast):
    """Runs one iteration on block = [(answer, ids)] * P; returns its phase times and tokens."""
    P = len(block)
    n = P * G
    width = max(len(ids) for _, ids in block)
    prompts = torch.full((n, width), TOK_PAD, dtype=torch.long)
    lens = []
    for s, (_, ids) in enumerate(block):
        prompts[s * G:(s + 1) * G, :len(ids)] = torch.tensor(ids)
        lens += [len(ids)] * G
    sync(a.device)
    t0 = time.perf_counter()
    with autocast():
        ro = generate(model, prompts.to(a.device), lens, a.max_seq, a.max_new_tokens,
                      a.temperature, a.eos, generator, a.cache_dtype)
    t1 = time.perf_counter()
    rewards = []
    for i in range(n):
        start, g = int(ro.prompt_len[i]), int(ro.gen_len[i])
        rewards.append(reward(a.task, ro.tokens[i, start:start + g].tolist(), bool(ro.hit_eos[i]),
                              block[i // G][0], block[i // G][1]))
    t2 = time.perf_counter()
    adv, scores = score_and_advantage(torch.tensor(rewards, device=a.device),
                                      ro.embed.to(a.device), P, G, a.adv_eps)
    adv, scores = adv.cpu(), scores.cpu()
    t3 = time.perf_counter()
    batch = grpo_batch(ro, adv, n, a.device)
    with autocast():
        grpo_step(model, ref, opt, batch, a)
    sync(a.device)
    t4 = time.perf_counter()
    return {"t_rollout": t1 - t0, "t_reward": t2 - t1, "t_score": t3 - t2, "t_update": t4 - t3,
            "t_total": t4 - t0, "gen_tokens": int(ro.gen_len.sum()),
            "reward_mean": sum(rewards) / n}


def main():
    ap = argparse.ArgumentParser(description="PyTorch peer of one exitrl ExIt iteration")
    for name in ("n_layer", "n_head", "d_model", "max_seq", "vocab", "vocab_padded",
                 "max_new_tokens", "eos"):
        ap.add_argument(f"--{name}", type=int, required=True)
    ap.add_argument("--weights", required=True)
    ap.add_argument("--prompts", required=True)
    ap.add_argument("--warmup", type=int, default=1)
    for name, default in (("temperature", 1.0), ("clip_eps_low", 0.2), ("clip_eps_high", 0.2),
                          ("kl_beta", 0.001), ("adv_eps", 1e-4), ("lr", 1e-3), ("beta1", 0.9),
                          ("beta2", 0.95), ("adam_eps", 1e-8), ("weight_decay", 0.1),
                          ("grad_clip", 1.0)):
        ap.add_argument(f"--{name}", type=float, default=default)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    ap.add_argument("--task", choices=tuple(REWARDS), default="arith")
    ap.add_argument("--dtype", choices=("fp32", "bf16"), default="fp32",
                    help="bf16: autocast forward passes and a bf16 KV cache (CUDA only)")
    a = ap.parse_args()
    if (a.d_model % a.n_head or min(a.n_layer, a.n_head, a.max_new_tokens, a.threads) < 1
            or a.warmup < 0 or a.vocab > a.vocab_padded or not 0 <= a.eos < a.vocab
            or not a.temperature > 0 or a.kl_beta <= 0):
        print("exit_iteration_torch: inconsistent sizes or parameters (kl_beta must be > 0: the "
              "peer always keeps a reference policy)", file=sys.stderr)
        return 2
    if a.device == "cuda" and not torch.cuda.is_available():
        print("exit_iteration_torch: --device cuda but torch sees no GPU", file=sys.stderr)
        return 2
    if a.dtype == "bf16" and a.device != "cuda":
        print("exit_iteration_torch: --dtype bf16 needs --device cuda", file=sys.stderr)
        return 2
    torch.set_num_threads(a.threads)
    model = GPT(a.n_layer, a.n_head, a.d_model, a.max_seq, a.vocab, a.vocab_padded)
    try:
        n = sum(math.prod(s) for _, s in param_shapes(a.n_layer, a.d_model, a.vocab_padded,
                                                      a.max_seq))
        model.load_exitrl_params(read_array(a.weights, "<f4", n, "weights"))
        P, G, blocks = read_prompts(a.prompts)
    except (OSError, ValueError) as e:
        print(f"exit_iteration_torch: {e}", file=sys.stderr)
        return 2
    if G < 2 or len(blocks) <= a.warmup:
        print("exit_iteration_torch: need G >= 2 and more iterations than --warmup", file=sys.stderr)
        return 2
    if any(len(ids) + 1 >= a.max_seq or min(ids) < 0 or max(ids) >= a.vocab
           for block in blocks for _, ids in block):
        print("exit_iteration_torch: a prompt is too long or holds an id outside the vocabulary",
              file=sys.stderr)
        return 2
    model = model.to(a.device)
    ref = copy.deepcopy(model).requires_grad_(False)
    decay = [p for p in model.parameters() if p.dim() == 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": a.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}],
                            lr=a.lr, betas=(a.beta1, a.beta2), eps=a.adam_eps,
                            **({"fused": True} if a.device == "cuda" else {}))  # as fast as torch gets
    a.cache_dtype = torch.bfloat16 if a.dtype == "bf16" else torch.float32

    def autocast():
        if a.dtype == "bf16":
            return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
        return nullcontext()

    generator = torch.Generator(device=a.device)
    generator.manual_seed(a.seed)
    runs = [iteration(model, ref, opt, block, G, a, generator, autocast) for block in blocks]
    timed = runs[a.warmup:]
    out = {k: statistics.median(r[k] for r in timed)
           for k in ("t_rollout", "t_reward", "t_score", "t_update", "t_total")}
    out.update({"peer": "torch.cpu" if a.device == "cpu" else "torch.eager",
                "iterations": len(timed), "gen_tokens": statistics.median(r["gen_tokens"] for r in timed),
                "reward_mean": statistics.mean(r["reward_mean"] for r in timed),
                "threads": torch.get_num_threads(), "torch": torch.__version__})
    print(json.dumps(out), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
