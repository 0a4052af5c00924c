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

For bench/train.ts (a whole pretraining step: forward + loss + backward + clip + AdamW + bias):
  train_setup {lr, betas, eps, weight_decay, clip, gamma}
                                          torch.optim.AdamW(foreach=True) over the two weight-decay
                                          groups (model_ref.weight_decay_groups), the expert-load
                                          counters (model_ref.ExpertLoad)
  train_check {steps}                     `steps` optimizer steps; per step the loss and the
                                          gradient norm before clipping; then the loss after them
                                          (training mode, no grad), the selection biases and the
                                          parameters' global L2 norm
  train_time  {warmup, steps}             per-step seconds of forward + loss, of backward, and of
                                          clip + AdamW step + bias update (+ reading loss and norm)
"""
import json
import sys
import time

import torch

from model_ref import ExpertLoad, build, weight_decay_groups
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


def setup(threads):
    """Sets the intra-op threads (inter-op 1) and reports torch's version, threads and BLAS."""
    torch.set_num_threads(threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:
        pass  # already set once in this process
    return {
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "interop_threads": torch.get_num_interop_threads(),
        "blas_core": blas_core(),
        "blas_threads": blas_threads(),
    }


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


def train_setup(req):
    model = state["model"]
    state["opt"] = torch.optim.AdamW(
        weight_decay_groups(model, req["weight_decay"]),
        lr=req["lr"],
        betas=tuple(req["betas"]),
        eps=req["eps"],
        foreach=True,
    )
    state["load"] = ExpertLoad(model)
    state["params"] = [p for p in model.parameters() if p.requires_grad]
    state["clip"] = req["clip"]
    state["gamma"] = req["gamma"]
    groups = state["opt"].param_groups
    return {"groups": [len(g["params"]) for g in groups], "weight_decay": [g["weight_decay"] for g in groups]}


def optimizer_step():
    """One pretraining step as bench/train.ts trainStep: grads set to none, forward + loss,
    backward, clip to the max norm, AdamW step, the bias update, and the loss and the gradient norm
    read as numbers (what a training loop logs). Returns (loss, norm, [t_fwd, t_bwd, t_opt])."""
    model, ids, targets, opt = state["model"], state["ids"], state["targets"], state["opt"]
    t0 = time.perf_counter()
    zero_grads(model)
    r = model.loss(ids, targets)
    t1 = time.perf_counter()
    r["loss"].backward()
    t2 = time.perf_counter()
    norm = torch.nn.utils.clip_grad_norm_(state["params"], state["clip"])
    opt.step()
    state["load"].update_bias(state["gamma"])
    loss = r["loss"].item()
    norm = norm.item()
    del r  # the step's remaining tensors go now, as at the end of the TypeScript step's tidy()
    t3 = time.perf_counter()
    return loss, norm, [t1 - t0, t2 - t1, t3 - t2]


def train_check(steps):
    model, ids, targets = state["model"], state["ids"], state["targets"]
    state["load"].reset()
    losses, norms = [], []
    for _ in range(steps):
        loss, norm, _t = optimizer_step()
        losses.append(loss)
        norms.append(norm)
    zero_grads(model)
    with torch.no_grad():
        r = model.loss(ids, targets)
    state["load"].reset()  # that forward's routing must not move the bias
    with torch.no_grad():
        sq = sum(p.double().square().sum().item() for p in model.parameters())
    return {
        "losses": losses,
        "grad_norms": norms,
        "loss_after": r["loss"].item(),
        "lm_loss_after": r["lm_loss"].item(),
        "biases": [g.e_score_correction_bias.tolist() for g in state["load"].gates],
        "param_norm": sq ** 0.5,
    }


def train_timed(warmup, steps):
    for _ in range(warmup):
        optimizer_step()
    fwd, bwd, opt = [], [], []
    for _ in range(steps):
        _loss, _norm, t = optimizer_step()
        fwd.append(t[0])
        bwd.append(t[1])
        opt.append(t[2])
    zero_grads(state["model"])
    return {"fwd": fwd, "bwd": bwd, "opt": opt}


def main():
    for line in sys.stdin:
        req = json.loads(line)
        cmd = req["cmd"]
        try:
            if cmd == "setup":
                out = setup(req["threads"])
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
            elif cmd == "train_setup":
                out = train_setup(req)
            elif cmd == "train_check":
                out = train_check(req["steps"])
            elif cmd == "train_time":
                out = train_timed(req.get("warmup", 0), req["steps"])
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
