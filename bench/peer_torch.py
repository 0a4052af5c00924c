"""PyTorch peer for tinyseek's benchmarks: runs the same measurement as the TypeScript side, on
request, so that both are timed in the same run, interleaved. Protocol: one JSON object per line
on stdin, one JSON reply per line on stdout. Run with Debian's python3-torch (/usr/bin/python3).
"""
import ctypes
import json
import os
import sys
import time

import torch


def blas_core():
    for name in ("libblas.so.3", "libopenblas.so.0"):
        try:
            lib = ctypes.CDLL(name, mode=getattr(os, "RTLD_NOLOAD", 4) | ctypes.RTLD_GLOBAL)
        except OSError:
            continue
        try:
            f = lib.openblas_get_corename
        except AttributeError:
            return None
        f.restype = ctypes.c_char_p
        return f().decode()
    return None


def matmul(n, reps):
    g = torch.Generator().manual_seed(0)
    a = torch.randn(n, n, generator=g)
    b = torch.randn(n, n, generator=g)
    a @ b  # warm up
    t = time.perf_counter()
    for _ in range(reps):
        a @ b
    dt = time.perf_counter() - t
    return {"gflops": 2 * n ** 3 * reps / dt / 1e9, "seconds": dt}


def add_overhead(numel, reps):
    a = torch.randn(numel)
    b = torch.randn(numel)
    for _ in range(1000):
        a.add(b)
    t = time.perf_counter()
    for _ in range(reps):
        a.add(b)
    dt = time.perf_counter() - t
    return {"us": dt / reps * 1e6}


def main():
    for line in sys.stdin:
        req = json.loads(line)
        cmd = req["cmd"]
        if cmd == "setup":
            torch.set_num_threads(req["threads"])
            out = {
                "torch": torch.__version__,
                "threads": torch.get_num_threads(),
                "blas_core": blas_core(),
            }
        elif cmd == "matmul":
            out = matmul(req["n"], req["reps"])
        elif cmd == "add":
            out = add_overhead(req["numel"], req["reps"])
        elif cmd == "quit":
            break
        else:
            out = {"error": "unknown command " + cmd}
        sys.stdout.write(json.dumps(out) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
