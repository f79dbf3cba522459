"""Checks an `exitrl export` directory against exitrl's own logits, independently of exitrl's code.

Usage:
  /usr/bin/python3 tests/ref/check_hf_export.py EXPORT_DIR [--check FILE] [--atol 1e-4]
        [--rtol 1e-4] [--require-hf]

Two independent readers load the export and recompute the logits for exitrl's tokens:
  1. Hugging Face transformers' GPT2LMHeadModel.from_pretrained(EXPORT_DIR) (when transformers is
     installed; --require-hf makes its absence an error), the check docs/DESIGN.md §3 asks for;
  2. tests/ref/gpt_ref.py fed from a small safetensors reader in this file, which checks the same
     naming and transposes without transformers.
Each must match exitrl's logits on the first V columns: |got - want| <= atol + rtol*|want|.
Exit status: 0 all comparisons that ran passed, 1 a mismatch, 2 bad input or a missing requirement.

What this script reads (written by `exitrl export`, host/cli/cmd_export.c):
  EXPORT_DIR/config.json   GPT-2 config: model_type "gpt2", n_layer, n_head, n_embd, n_positions,
                           vocab_size = Vp (wte keeps all padded rows), activation_function
                           "gelu_new" (tanh GELU), layer_norm_epsilon 1e-5, tie_word_embeddings
                           true, n_inner null or 4*n_embd, and "exitrl_real_vocab_size": V
                           (logit columns >= V belong to padding rows and are not compared).
  EXPORT_DIR/model.safetensors   F32 (F16/BF16 also read), GPT-2 names, with or without the
                           "transformer." prefix: wte.weight [Vp,C], wpe.weight [maxT,C],
                           h.{l}.ln_1.weight/bias [C], h.{l}.attn.c_attn.weight [C,3C],
                           h.{l}.attn.c_attn.bias [3C], h.{l}.attn.c_proj.weight [C,C],
                           h.{l}.attn.c_proj.bias [C], h.{l}.ln_2.weight/bias [C],
                           h.{l}.mlp.c_fc.weight [C,4C], h.{l}.mlp.c_fc.bias [4C],
                           h.{l}.mlp.c_proj.weight [4C,C], h.{l}.mlp.c_proj.bias [C],
                           ln_f.weight/bias [C]; no lm_head.weight (tied to wte).
                           HF's Conv1D stores weights [in, out]: the transpose of exitrl's [out, in].
  EXPORT_DIR/check.bin     (or --check FILE) little-endian: int32 T, int32 V, int32 tokens[T],
                           float32 logits[T*V]: exitrl's logits (first V columns) for one sequence.
"""
import argparse
import importlib.util
import json
import struct
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import gpt_ref  # noqa: E402


class InputError(Exception):
    pass


def read_check(path):
    """(tokens [1,T] int64, logits [1,T,V] float64, V) from exitrl's check.bin."""
    raw = Path(path).read_bytes()
    if len(raw) < 8:
        raise InputError(f"{path}: {len(raw)} bytes, too short for the T, V header")
    T, V = struct.unpack_from("<2i", raw)
    if T < 1 or V < 1 or len(raw) != 8 + 4 * T + 4 * T * V:
        raise InputError(f"{path}: header says T={T} V={V}, file has {len(raw)} bytes "
                         f"(expected {8 + 4 * max(T, 0) * (1 + max(V, 0))})")
    tokens = np.frombuffer(raw, dtype="<i4", count=T, offset=8).astype(np.int64)
    logits = np.frombuffer(raw, dtype="<f4", offset=8 + 4 * T).astype(np.float64)
    return torch.from_numpy(tokens).view(1, T), torch.from_numpy(logits).view(1, T, V), V


def read_safetensors(path):
    """name -> float64 tensor. Format: u64 header length, JSON header, raw little-endian data."""
    raw = Path(path).read_bytes()
    if len(raw) < 8:
        raise InputError(f"{path}: too short for a safetensors header")
    (n,) = struct.unpack_from("<Q", raw)
    if n > len(raw) - 8:
        raise InputError(f"{path}: header length {n} exceeds the file")
    header = json.loads(raw[8:8 + n])
    base = 8 + n
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        dtype, shape, (begin, end) = info["dtype"], info["shape"], info["data_offsets"]
        if not 0 <= begin <= end <= len(raw) - base:
            raise InputError(f"{path}: {name}: data offsets {begin}..{end} outside the file")
        buf = raw[base + begin:base + end]
        if dtype == "F32":
            arr = np.frombuffer(buf, dtype="<f4").astype(np.float64)
        elif dtype == "F16":
            arr = np.frombuffer(buf, dtype="<f2").astype(np.float64)
        elif dtype == "BF16":  # bf16 is the top half of an fp32
            arr = (np.frombuffer(buf, dtype="<u2").astype(np.uint32) << 16).view("<f4")
            arr = arr.astype(np.float64)
        else:
            raise InputError(f"{path}: {name}: dtype {dtype} not supported")
        if arr.size != int(np.prod(shape)):
            raise InputError(f"{path}: {name}: {arr.size} values for shape {shape}")
        out[name] = torch.from_numpy(arr.copy()).view(*shape)
    return out


def config_from_json(path):
    cfg = json.loads(Path(path).read_text())
    if cfg.get("model_type") != "gpt2":
        raise InputError(f"{path}: model_type {cfg.get('model_type')!r}, expected 'gpt2'")
    for key, want in (("activation_function", "gelu_new"), ("tie_word_embeddings", True)):
        if cfg.get(key, want) != want:
            raise InputError(f"{path}: {key} = {cfg.get(key)!r}, the exitrl model needs {want!r}")
    eps = cfg.get("layer_norm_epsilon", 1e-5)
    if abs(eps - gpt_ref.LN_EPS) > 1e-12:
        raise InputError(f"{path}: layer_norm_epsilon = {eps}, the exitrl model uses 1e-5")
    C = cfg["n_embd"]
    if cfg.get("n_inner") not in (None, 4 * C):
        raise InputError(f"{path}: n_inner = {cfg['n_inner']}, the exitrl model uses 4*n_embd")
    Vp = cfg["vocab_size"]
    V = cfg.get("exitrl_real_vocab_size", Vp)
    if not 1 <= V <= Vp:
        raise InputError(f"{path}: real vocab {V} not in [1, vocab_size={Vp}]")
    return gpt_ref.Config(n_layer=cfg["n_layer"], n_head=cfg["n_head"], d_model=C,
                          max_seq=cfg["n_positions"], vocab=V, vocab_padded=Vp)


def params_from_hf_names(cfg, tensors):
    """HF GPT-2 state dict (any "transformer." prefix) -> exitrl's named parameters."""
    t = {k[len("transformer."):] if k.startswith("transformer.") else k: v
         for k, v in tensors.items()}

    def get(name, shape):
        if name not in t:
            raise InputError(f"model.safetensors has no tensor '{name}'")
        if tuple(t[name].shape) != shape:
            raise InputError(f"model.safetensors: {name} has shape {tuple(t[name].shape)}, "
                             f"expected {shape}")
        return t[name]

    L, C, Vp, T = cfg.n_layer, cfg.d_model, cfg.vocab_padded, cfg.max_seq
    per_layer = lambda fmt, shape, transpose=False: torch.stack(  # noqa: E731
        [get(fmt.format(l), shape).T if transpose else get(fmt.format(l), shape)
         for l in range(L)])
    return {
        "wte": get("wte.weight", (Vp, C)), "wpe": get("wpe.weight", (T, C)),
        "ln1w": per_layer("h.{}.ln_1.weight", (C,)), "ln1b": per_layer("h.{}.ln_1.bias", (C,)),
        "qkvw": per_layer("h.{}.attn.c_attn.weight", (C, 3 * C), True),
        "qkvb": per_layer("h.{}.attn.c_attn.bias", (3 * C,)),
        "attprojw": per_layer("h.{}.attn.c_proj.weight", (C, C), True),
        "attprojb": per_layer("h.{}.attn.c_proj.bias", (C,)),
        "ln2w": per_layer("h.{}.ln_2.weight", (C,)), "ln2b": per_layer("h.{}.ln_2.bias", (C,)),
        "fcw": per_layer("h.{}.mlp.c_fc.weight", (C, 4 * C), True),
        "fcb": per_layer("h.{}.mlp.c_fc.bias", (4 * C,)),
        "fcprojw": per_layer("h.{}.mlp.c_proj.weight", (4 * C, C), True),
        "fcprojb": per_layer("h.{}.mlp.c_proj.bias", (C,)),
        "lnfw": get("ln_f.weight", (C,)), "lnfb": get("ln_f.bias", (C,)),
    }


def compare(label, got, want, V, atol, rtol):
    got, want = got[..., :V], want[..., :V]
    err = (got - want).abs()
    ratio = (err / (atol + rtol * want.abs())).max().item()
    ok = ratio <= 1.0
    print(f"{label}: max abs err {err.max().item():.3e}, error ratio {ratio:.4f} -> "
          f"{'ok' if ok else 'MISMATCH'}")
    return ok


def hf_logits(export_dir, tokens):
    from transformers import GPT2LMHeadModel
    model = GPT2LMHeadModel.from_pretrained(export_dir, local_files_only=True,
                                            torch_dtype=torch.float32)
    model.eval()
    with torch.no_grad():
        return model(input_ids=tokens).logits.double()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("export_dir")
    ap.add_argument("--check", help="exitrl's logits file (default EXPORT_DIR/check.bin)")
    ap.add_argument("--atol", type=float, default=1e-4)
    ap.add_argument("--rtol", type=float, default=1e-4)
    ap.add_argument("--require-hf", action="store_true",
                    help="fail (exit 2) when transformers is not installed")
    args = ap.parse_args()
    have_hf = importlib.util.find_spec("transformers") is not None
    if args.require_hf and not have_hf:
        print("check_hf_export: transformers is not installed (--require-hf)", file=sys.stderr)
        return 2
    export = Path(args.export_dir)
    try:
        cfg = config_from_json(export / "config.json")
        tokens, want, V = read_check(args.check or export / "check.bin")
        if V != cfg.vocab:
            raise InputError(f"check file has {V} logit columns, config.json's real vocab is "
                             f"{cfg.vocab}")
        if tokens.shape[1] > cfg.max_seq:
            raise InputError(f"T={tokens.shape[1]} exceeds n_positions={cfg.max_seq}")
        if tokens.min() < 0 or tokens.max() >= cfg.vocab_padded:
            raise InputError(f"token ids must lie in [0, {cfg.vocab_padded})")
        params = params_from_hf_names(cfg, read_safetensors(export / "model.safetensors"))
    except (InputError, OSError, KeyError, ValueError) as e:
        print(f"check_hf_export: {e}", file=sys.stderr)
        return 2

    print(f"export: L={cfg.n_layer} NH={cfg.n_head} C={cfg.d_model} maxT={cfg.max_seq} "
          f"V={cfg.vocab} Vp={cfg.vocab_padded}; {tokens.shape[1]} tokens; comparing the first "
          f"{cfg.vocab} logit columns, |got-want| <= {args.atol} + {args.rtol}*|want|")
    with torch.no_grad():
        ref = gpt_ref.forward(cfg, params, tokens)
    ok = compare("gpt_ref (float64) vs exitrl", ref, want, cfg.vocab, args.atol, args.rtol)
    if not have_hf:
        print("transformers is not installed: the GPT2LMHeadModel check was NOT run")
        return 0 if ok else 1
    ok = compare("transformers GPT2LMHeadModel vs exitrl", hf_logits(export, tokens), want,
                 cfg.vocab, args.atol, args.rtol) and ok
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
