"""Peer for bench_kernels: the PyTorch (eager, bf16, CUDA) equivalent of each exitrl training op
that has no cuBLAS peer, at the same shapes, timed like bench_kernels: CUDA events around each call,
the L2 cache flushed before it, the median of --reps calls after --warmup.

  encoder_forward              F.embedding(tokens, wte) + wpe[:T]
  encoder_backward             aten.embedding_dense_backward (dwte) + sum over the batch (dwpe)
  layernorm_forward            aten.native_layer_norm (eps 1e-5; saves mean and rstd)
  residual_layernorm_forward   a + b, then aten.native_layer_norm
  layernorm_backward           aten.native_layer_norm_backward, added into the residual gradient
                               (exitrl's dinp accumulates)
  attention_forward            F.scaled_dot_product_attention(is_causal=True) on q, k, v viewed in
  attention_backward           the packed [B, T, 3C] qkv, with the flash and the cuDNN backends
                               (peers torch.sdpa.flash, torch.sdpa.cudnn); the backward is the
                               autograd backward to the packed qkv
  classifier_forward_backward  F.cross_entropy over the V real columns in fp32, forward and
                               backward to the bf16 logits (what autocast runs)
  adamw_update                 torch.optim.AdamW(fused=True).step() on one fp32 tensor of --params
                               values (exitrl also writes the bf16 copy of the weights)
  grad_norm_clip               torch.linalg.vector_norm(grads) and the clip scale, left on the
                               device like exitrl's (the scale is applied inside AdamW, not here)

Usage: python3 kernels_torch.py --B 16 --T 1024 --C 768 --NH 12 --V 265 --Vp 320 --params N
           [--reps 30] [--warmup 3] [--device cpu]   (cpu: a smoke test of the script only)
Prints one JSON line per (op, peer): {"op": ..., "peer": ..., "peer_op": ..., "ms": ...}, or
{"op": ..., "peer": ..., "skipped": reason} when this torch cannot run that peer.
"""
import argparse
import json
import statistics
import sys
import time

import torch
import torch.nn.functional as F

FLUSH_BYTES = 256 << 20


def timer(reps, warmup, dev):
    flush = torch.empty(FLUSH_BYTES if dev == "cuda" else 1, dtype=torch.uint8, device=dev)

    def time_ms(fn):
        for _ in range(warmup):
            fn()
        times = []
        for r in range(reps):
            flush.fill_(r & 0xFF)
            if dev != "cuda":  # the smoke test of this script's logic
                t0 = time.perf_counter()
                fn()
                times.append((time.perf_counter() - t0) * 1e3)
                continue
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end))
        return statistics.median(times)

    return time_ms


def emit(op, peer, peer_op, ms=None, skipped=None):
    out = {"op": op, "peer": peer, "peer_op": peer_op}
    if skipped is None:
        out["ms"] = ms
    else:
        out["skipped"] = skipped
    print(json.dumps(out), flush=True)


def main():
    ap = argparse.ArgumentParser(description="PyTorch peers of exitrl's training kernels")
    for name in ("B", "T", "C", "NH", "V", "Vp", "params"):
        ap.add_argument(f"--{name}", type=int, required=True)
    ap.add_argument("--reps", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--device", choices=("cuda", "cpu"), default="cuda",
                    help="cpu: a smoke test of this script on tiny shapes, not a measurement")
    a = ap.parse_args()
    if (min(a.B, a.T, a.C, a.NH, a.V, a.params, a.reps) < 1 or a.C % a.NH or a.V > a.Vp
            or a.warmup < 0):
        print("kernels_torch: inconsistent sizes", file=sys.stderr)
        return 2
    if a.device == "cuda" and not torch.cuda.is_available():
        print("kernels_torch: torch sees no GPU", file=sys.stderr)
        return 2
    dev, bf = a.device, torch.bfloat16
    B, T, C, NH, V, Vp = a.B, a.T, a.C, a.NH, a.V, a.Vp
    N, hs = B * T, a.C // a.NH
    time_ms = timer(a.reps, a.warmup, dev)
    torch.manual_seed(0)

    def randn(*shape, scale=1.0, dtype=bf):
        return (torch.randn(*shape, device=dev) * scale).to(dtype)

    # ---- encoder ----
    tokens = torch.randint(0, V, (B, T), device=dev)
    wte, wpe = randn(Vp, C, scale=0.02), randn(T, C, scale=0.02)
    emit("encoder_forward", "torch.eager", "F.embedding(tokens, wte) + wpe",
         time_ms(lambda: F.embedding(tokens, wte) + wpe))
    dout = randn(B, T, C, scale=0.01)

    def encoder_backward():
        torch.ops.aten.embedding_dense_backward(dout, tokens, Vp, -1, False)
        dout.sum(0)

    emit("encoder_backward", "torch.eager", "aten.embedding_dense_backward + sum over batch",
         time_ms(encoder_backward))

    # ---- LayerNorm ----
    x, y = randn(N, C), randn(N, C)
    w, b = (1 + randn(C, scale=0.1, dtype=torch.float32)).to(bf), randn(C, scale=0.1)
    ln = torch.ops.aten.native_layer_norm
    emit("layernorm_forward", "torch.eager", "aten.native_layer_norm", time_ms(lambda: ln(x, [C], w, b, 1e-5)))
    emit("residual_layernorm_forward", "torch.eager", "a + b, aten.native_layer_norm",
         time_ms(lambda: ln(x + y, [C], w, b, 1e-5)))
    _, mean, rstd = ln(x, [C], w, b, 1e-5)
    dln, dres = randn(N, C, scale=0.01), randn(N, C, scale=0.01)

    def layernorm_backward():
        dx, _, _ = torch.ops.aten.native_layer_norm_backward(dln, x, [C], mean, rstd, w, b,
                                                             [True, True, True])
        dres.add_(dx)

    emit("layernorm_backward", "torch.eager", "aten.native_layer_norm_backward + add into residual grad",
         time_ms(layernorm_backward))
    del x, y, dln, dres

    # ---- attention ----
    qkv = randn(B, T, 3 * C).requires_grad_(True)
    datt = randn(B, NH, T, hs, scale=0.01)

    def split(t):
        q, k, v = t.view(B, T, 3, NH, hs).permute(2, 0, 3, 1, 4).unbind(0)  # each [B, NH, T, hs]
        return q, k, v

    try:
        from torch.nn.attention import SDPBackend, sdpa_kernel
        backends = (("torch.sdpa.flash", SDPBackend.FLASH_ATTENTION),
                    ("torch.sdpa.cudnn", getattr(SDPBackend, "CUDNN_ATTENTION", None)))
    except ImportError:
        backends = ()
        for op in ("attention_forward", "attention_backward"):
            emit(op, "torch.sdpa", "F.scaled_dot_product_attention",
                 skipped=f"torch {torch.__version__} has no torch.nn.attention.sdpa_kernel")
    for peer, backend in backends:
        text = f"F.scaled_dot_product_attention(is_causal=True), {peer.split('.')[-1]} backend"
        if backend is None:
            for op in ("attention_forward", "attention_backward"):
                emit(op, peer, text, skipped=f"torch {torch.__version__} has no such SDPA backend")
            continue
        try:
            with sdpa_kernel(backend):
                with torch.no_grad():
                    fwd_ms = time_ms(lambda: F.scaled_dot_product_attention(*split(qkv), is_causal=True))
                out = F.scaled_dot_product_attention(*split(qkv), is_causal=True)
                bwd_ms = time_ms(lambda: torch.autograd.grad(out, qkv, datt, retain_graph=True))
        except RuntimeError as e:  # this backend refuses the shape or the GPU
            reason = str(e).splitlines()[0][:200].replace('"', "'")
            for op in ("attention_forward", "attention_backward"):
                emit(op, peer, text, skipped=reason)
            continue
        emit("attention_forward", peer, text, fwd_ms)
        emit("attention_backward", peer, text + ", autograd to the packed qkv", bwd_ms)
        del out
    del qkv, datt

    # ---- classifier ----
    logits = randn(N, Vp, scale=4.0).requires_grad_(True)
    targets = torch.randint(0, V, (N,), device=dev)

    def classifier():
        loss = F.cross_entropy(logits[:, :V].float(), targets)
        torch.autograd.grad(loss, logits)

    emit("classifier_forward_backward", "torch.eager",
         "F.cross_entropy(logits[:, :V].float()) forward + backward to bf16 logits", time_ms(classifier))
    del logits

    # ---- optimizer ----
    p = torch.nn.Parameter(torch.randn(a.params, device=dev) * 0.02)
    p.grad = torch.randn(a.params, device=dev) * 0.001
    fused = {"fused": True} if dev == "cuda" else {}
    opt = torch.optim.AdamW([p], lr=3e-4, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.1, **fused)
    emit("adamw_update", "torch.eager", "torch.optim.AdamW(fused=True).step(), one fp32 tensor",
         time_ms(opt.step))
    def norm_and_scale():
        norm = torch.linalg.vector_norm(p.grad)
        return (1.0 / (norm + 1e-6)).clamp(max=1.0)

    emit("grad_norm_clip", "torch.eager", "torch.linalg.vector_norm(grads) and the clip scale, on the device",
         time_ms(norm_and_scale))
    return 0


if __name__ == "__main__":
    sys.exit(main())
