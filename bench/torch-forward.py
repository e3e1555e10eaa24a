#!/usr/bin/env python3
"""torch-forward.py - the PyTorch side of bench-forward.sh: the same Llama-shaped forward as
sf-forward --hook blocks.{L-1}.hook_resid_post (embedding, L blocks of RMSNorm, q/k/v/o
projections, half-split RoPE, causal softmax attention, SiLU-GLU MLP; no final norm, no
unembedding), written the way Hugging Face's eager LlamaModel computes it, in float32 on the
CPU with random weights (speed does not depend on them).

  torch-forward.py D_MODEL LAYERS HEADS KV_HEADS D_FF ROWS CTX FRAMES THREADS

Prints one line: tokens=N seconds=S tokens_per_s=R torch=VERSION threads=T blas=KERNEL (forward
time of FRAMES frames of ROWS x CTX tokens, weight creation excluded, like sf-forward's -v
figure; KERNEL: the OpenBLAS kernel this process's OpenBLAS picked, "unknown" without one).
"""
import ctypes
import math
import sys
import time

import torch


def rope_tables(ctx, hd, theta=10000.0):
    inv = theta ** (-torch.arange(0, hd, 2, dtype=torch.float64) / hd)           # (hd/2)
    ang = torch.arange(ctx, dtype=torch.float64)[:, None] * inv[None, :]          # (ctx, hd/2)
    ang = torch.cat([ang, ang], dim=-1)                                           # (ctx, hd)
    return ang.cos().float(), ang.sin().float()


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat([-x[..., h:], x[..., :h]], dim=-1)


def rmsnorm(x, w, eps=1e-5):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w


def block(x, p, cos, sin, H, KV, mask):
    B, T, D = x.shape
    hd = D // H
    h = rmsnorm(x, p["ln1"])
    q = (h @ p["q"].T).view(B, T, H, hd).transpose(1, 2)                          # (B, H, T, hd)
    k = (h @ p["k"].T).view(B, T, KV, hd).transpose(1, 2)                         # (B, KV, T, hd)
    v = (h @ p["v"].T).view(B, T, KV, hd).transpose(1, 2)
    q = q * cos + rotate_half(q) * sin
    k = k * cos + rotate_half(k) * sin
    if KV != H:
        k = k.repeat_interleave(H // KV, dim=1)
        v = v.repeat_interleave(H // KV, dim=1)
    s = (q @ k.transpose(-1, -2)) / math.sqrt(hd) + mask                          # (B, H, T, T)
    a = torch.softmax(s, dim=-1) @ v                                              # (B, H, T, hd)
    x = x + a.transpose(1, 2).reshape(B, T, D) @ p["o"].T
    h = rmsnorm(x, p["ln2"])
    return x + (torch.nn.functional.silu(h @ p["gate"].T) * (h @ p["up"].T)) @ p["down"].T


def blas_kernel():
    """The kernel OpenBLAS picked in this process (Debian's torch calls sgemm_ through libblas.so.3,
    the same OpenBLAS build, which detects the CPU the same way and reads the same OPENBLAS_CORETYPE)."""
    try:
        lib = ctypes.CDLL("libopenblas.so.0")
        lib.openblas_get_corename.restype = ctypes.c_char_p
        return lib.openblas_get_corename().decode()
    except (OSError, AttributeError):
        return "unknown"


def main():
    D, L, H, KV, FF, R, C, NF, THR = (int(a) for a in sys.argv[1:10])
    torch.set_num_threads(THR)
    g = torch.Generator().manual_seed(0)
    hd = D // H

    def w(o, i):
        return torch.randn(o, i, generator=g) / math.sqrt(i)

    layers = [{"ln1": torch.ones(D), "ln2": torch.ones(D), "q": w(H * hd, D), "k": w(KV * hd, D), "v": w(KV * hd, D),
               "o": w(D, H * hd), "gate": w(FF, D), "up": w(FF, D), "down": w(D, FF)} for _ in range(L)]
    emb = torch.randn(355, D, generator=g)
    cos, sin = rope_tables(C, hd)
    mask = torch.full((C, C), float("-inf")).triu(1)
    tok = torch.randint(0, 355, (NF, R, C), generator=g)
    with torch.no_grad():
        t0 = time.perf_counter()
        for f in range(NF):
            x = emb[tok[f]]
            for p in layers:
                x = block(x, p, cos, sin, H, KV, mask)
        sec = time.perf_counter() - t0
    n = NF * R * C
    print(f"tokens={n} seconds={sec:.3f} tokens_per_s={n / sec:.1f} torch={torch.__version__} threads={THR} blas={blas_kernel()}")


if __name__ == "__main__":
    main()
