"""PyTorch peer for bench/model.ts: holds the reference DeepSeek-V3 (bench/model_ref.py) and runs
the same measurements as the TypeScript side on request, so that both are timed in one run,
interleaved. Protocol: one JSON object per line on stdin, one JSON reply per line on stdout.
Run with Debian's python3-torch (/usr/bin/python3).

Commands
  setup   {threads}                       set intra-op threads (inter-op 1, as tinyseek)
  load    {config, weights, batch}        build the model, load the safetensors weights and the
                                          token batch ({"ids": [[..]], "targets": [[..]]} file)
  check   {}                              loss components and the gradient norm, one step
  time    {warmup, steps}                 per-step seconds of forward + loss and of backward
  ops     {}                              one step under torch.profiler: top-level aten calls of
                                          the forward, self times of forward and backward
"""
import json
import sys
import time

import torch

from model_ref import build
from peer_torch import blas_core


def blas_threads():
    """OpenBLAS's own thread count (its pool is separate from torch's intra-op threads), or None."""
    import ctypes
    import os

    for name in ("libblas.so.3", "libopenblas.so.0"):
        try:
            lib = ctypes.CDLL(name, mode=getattr(os, "RTLD_NOLOAD", 4) | ctypes.RTLD_GLOBAL)
            return lib.openblas_get_num_threads()
        except (OSError, AttributeError):
            continue
    return None


state = {}


def zero_grads(model):
    for p in model.parameters():
        p.grad = None


def train_step(model, ids, targets):
    zero_grads(model)
    r = model.loss(ids, targets)
    r["loss"].backward()
    return r


def check():
    model, ids, targets = state["model"], state["ids"], state["targets"]
    r = train_step(model, ids, targets)
    sq = 0.0
    for p in model.parameters():
        if p.grad is not None:
            sq += p.grad.double().square().sum().item()
    n_grads = sum(1 for p in model.parameters() if p.grad is not None)
    zero_grads(model)
    return {
        "loss": r["loss"].item(),
        "lm_loss": r["lm_loss"].item(),
        "mtp_losses": [l.item() for l in r["mtp_losses"]],
        "aux_loss": None if r["aux_loss"] is None else r["aux_loss"].item(),
        "grad_norm": sq ** 0.5,
        "grads": n_grads,
    }


def timed(warmup, steps):
    """Per-step seconds of [grads set to none +] forward + loss, and of backward [+ freeing the
    step's tensors], as bench/model.ts trainStep."""
    model, ids, targets = state["model"], state["ids"], state["targets"]
    for _ in range(warmup):
        train_step(model, ids, targets)
    fwd, bwd = [], []
    for _ in range(steps):
        t0 = time.perf_counter()
        zero_grads(model)
        r = model.loss(ids, targets)
        t1 = time.perf_counter()
        r["loss"].backward()
        del r  # the step's remaining tensors (logits, hidden states) go now, as at the end of tidy()
        t2 = time.perf_counter()
        fwd.append(t1 - t0)
        bwd.append(t2 - t1)
    zero_grads(model)
    return {"fwd": fwd, "bwd": bwd}


def op_counts():
    """Forward + loss and backward profiled separately: the top-level aten calls of the forward
    (what the Python frontend dispatches; nested calls such as linear -> t, mm are not counted)
    with their counts and inclusive times, and the self times of both phases."""
    from torch.profiler import ProfilerActivity, profile

    model, ids, targets = state["model"], state["ids"], state["targets"]
    train_step(model, ids, targets)
    zero_grads(model)
    with profile(activities=[ProfilerActivity.CPU]) as fwd:
        t = time.perf_counter()
        r = model.loss(ids, targets)
        forward_ms = (time.perf_counter() - t) * 1e3
    with profile(activities=[ProfilerActivity.CPU]) as bwd:
        t = time.perf_counter()
        r["loss"].backward()
        backward_ms = (time.perf_counter() - t) * 1e3
    zero_grads(model)

    def is_aten(e):
        return e is not None and e.name.startswith("aten::")

    calls = {}
    for e in fwd.events():
        if is_aten(e) and not is_aten(e.cpu_parent):
            c = calls.setdefault(e.name, {"count": 0, "us": 0.0})
            c["count"] += 1
            c["us"] += e.cpu_time_total

    def table(prof):
        rows = [
            {"op": e.key, "count": e.count, "self_us": e.self_cpu_time_total, "total_us": e.cpu_time_total}
            for e in prof.key_averages()
        ]
        rows.sort(key=lambda r: -r["self_us"])
        return rows[:40]

    return {
        "forward_calls": calls,
        "forward": table(fwd),
        "backward": table(bwd),
        "forward_ms": forward_ms,
        "backward_ms": backward_ms,
    }


def main():
    for line in sys.stdin:
        req = json.loads(line)
        cmd = req["cmd"]
        try:
            if cmd == "setup":
                torch.set_num_threads(req["threads"])
                try:
                    torch.set_num_interop_threads(1)
                except RuntimeError:
                    pass
                out = {
                    "torch": torch.__version__,
                    "threads": torch.get_num_threads(),
                    "interop_threads": torch.get_num_interop_threads(),
                    "blas_core": blas_core(),
                    "blas_threads": blas_threads(),
                }
            elif cmd == "load":
                model = build(req["config"], req["weights"])
                model.train()
                with open(req["batch"]) as f:
                    batch = json.load(f)
                state["model"] = model
                state["ids"] = torch.tensor(batch["ids"], dtype=torch.int64)
                state["targets"] = torch.tensor(batch["targets"], dtype=torch.int64)
                out = {"parameters": sum(p.numel() for p in model.parameters())}
            elif cmd == "check":
                out = check()
            elif cmd == "time":
                out = timed(req.get("warmup", 1), req["steps"])
            elif cmd == "ops":
                out = op_counts()
            elif cmd == "quit":
                break
            else:
                out = {"error": "unknown command " + cmd}
        except Exception as e:  # report, keep serving
            out = {"error": "%s: %s" % (type(e).__name__, e)}
        sys.stdout.write(json.dumps(out) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
