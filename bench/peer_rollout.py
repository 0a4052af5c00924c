"""PyTorch peer for bench/rollout.ts: a GRPO group rollout (P prompts x G sampled completions each)
on the reference DeepSeek-V3 of bench/model_ref.py, with a KV cache, timed on request so that the
TypeScript side can interleave its own rollouts with these in one run.

What it knows: model_ref's modules and weights (it reuses them as they are, layer by layer) and
the rollout below; it does not know tokenizers, stop criteria or rewards (no early stop: every row
generates exactly `new_tokens` ids, as the bench asks both sides to).

The rollout, written as a PyTorch user would write a cached sampler, in torch.inference_mode():
  prefill   the P distinct prompts (equal lengths, no padding) go through the model once, filling a
            preallocated cache of L + new_tokens positions; only the last column's logits are
            projected on the vocabulary;
  group     the cache and the last logits are expanded to the P*G rows with index_select (row
            p*G + g is completion g of prompt p), so each prompt is prefilled once for its group;
  decode    one id per row per step: its embedding goes through the layers at position L + step - 1,
            each layer appending one column to its cache and attending over the filled columns;
  sample    log_softmax of the raw logits (the logprob a GRPO update needs), then torch.multinomial
            from softmax(logits / temperature) (temperature 1: exp of the log_softmax already made;
            temperature 0: argmax), from a torch.Generator seeded by the request; the ids and
            logprobs of every step are kept as tensors and read back once at the end.

MLA cache forms (`mla` in the requests), the same two as src/model/attention.ts:
  naive     kv_b_proj expands the latent into per-head keys and values; the cache holds K
            (B, T, H, nope+rope) and V (B, T, H, v), as Hugging Face's DeepSeek-V3 does;
  absorbed  kv_b_proj's key half is folded into the query and its value half into the output
            (DeepSeek's inference/model.py "absorb"); the cache holds the normalised latent
            (B, T, C) and the shared rotary key (B, T, R).
The ops mirror the TypeScript model's op for op (einsum strings, mask construction, the order of
adds), so that greedy decoding from the same weights can be compared id for id.

Protocol: one JSON object per line on stdin, one JSON reply per line on stdout.
Run with Debian's python3-torch (/usr/bin/python3).

Commands
  setup   {threads}                     intra-op threads (inter-op 1, as tinyseek)
  load    {config, weights, batch}      build model_ref.DeepSeekV3, load the safetensors weights,
                                        eval mode; the prompts are batch["ids"] (P rows of L ids)
  rollout {group, new_tokens, temperature, seed, mla, timed_only?}
                                        one rollout; replies the seconds of prefill (with the first
                                        sampled ids) and of decode, the generated-id count, and the
                                        ids and logprobs per row unless timed_only
"""
import json
import sys
import time

import torch

from model_ref import MoE, apply_rotary, build
from peer_model import setup

state = {}


# ---- the cached forward -------------------------------------------------------------------------


def alloc_cache(model, batch, max_len, mla):
    """One dict of preallocated buffers per main layer."""
    c = model.config
    rank, rope, H = c.kv_lora_rank, c.qk_rope_head_dim, c.num_attention_heads
    out = []
    for _ in range(model.n_main):
        if mla == "absorbed":
            out.append(
                {
                    "latent": torch.empty(batch, max_len, rank),  # (B, maxT, C)
                    "kpe": torch.empty(batch, max_len, rope),  # (B, maxT, R)
                }
            )
        else:
            out.append(
                {
                    "k": torch.empty(batch, max_len, H, c.qk_nope_head_dim + rope),  # (B, maxT, H, nope+R)
                    "v": torch.empty(batch, max_len, H, c.v_head_dim),  # (B, maxT, H, v)
                }
            )
    return out


def write_cache(buf, x, start):
    """Writes x (B, S, ...) into columns start..start+S-1 of buf; returns columns 0..start+S-1."""
    S = x.shape[1]
    buf.narrow(1, start, S).copy_(x)
    return buf.narrow(1, 0, start + S)  # (B, T, ...)


def probs_of(scores, scale, mask):
    s = scores.mul(scale)
    if mask is not None:
        s = s.add(mask)
    return s.softmax(-1)


def mla_cached(attn, x, cos, sin, mask, cache, start, mla):
    """model_ref.MLA with a cache: x (B, S, D) -> (B, S, D)."""
    B, S, _ = x.shape
    H = attn.heads
    q = attn.q_b_proj(attn.q_a_layernorm(attn.q_a_proj(x))) if attn.lora else attn.q_proj(x)
    q = q.view(B, S, H, attn.nope + attn.rope)  # (B, S, H, nope+R)
    q_nope = q.narrow(-1, 0, attn.nope)  # (B, S, H, nope)
    q_pe = apply_rotary(q.narrow(-1, attn.nope, attn.rope), cos, sin)  # (B, S, H, R)
    kv = attn.kv_a_proj_with_mqa(x)  # (B, S, C+R)
    latent = attn.kv_a_layernorm(kv.narrow(-1, 0, attn.rank))  # (B, S, C)
    k_pe = apply_rotary(kv.narrow(-1, attn.rank, attn.rope).unsqueeze(2), cos, sin)  # (B, S, 1, R)
    if mla == "naive":
        kvb = attn.kv_b_proj(latent).view(B, S, H, attn.nope + attn.v_dim)  # (B, S, H, nope+v)
        k = torch.cat([kvb.narrow(-1, 0, attn.nope), k_pe.expand(B, S, H, attn.rope)], -1)  # (B, S, H, nope+R)
        v = kvb.narrow(-1, attn.nope, attn.v_dim)  # (B, S, H, v)
        k = write_cache(cache["k"], k, start)  # (B, T, H, nope+R)
        v = write_cache(cache["v"], v, start)  # (B, T, H, v)
        qh = torch.cat([q_nope, q_pe], -1).transpose(1, 2)  # (B, H, S, nope+R)
        scores = qh.matmul(k.permute(0, 2, 3, 1))  # (B, H, S, T)
        probs = probs_of(scores, attn.scale, mask)  # (B, H, S, T)
        o = probs.matmul(v.transpose(1, 2))  # (B, H, S, v)
        out = o.transpose(1, 2).reshape(B, S, H * attn.v_dim)  # (B, S, H*v)
    else:
        w = attn.kv_b_proj.weight.view(H, attn.nope + attn.v_dim, attn.rank)  # (H, nope+v, C)
        q_lat = torch.einsum("bshd,hdc->bshc", q_nope, w.narrow(1, 0, attn.nope))  # (B, S, H, C)
        lat = write_cache(cache["latent"], latent, start)  # (B, T, C)
        pe = write_cache(cache["kpe"], k_pe.squeeze(2), start)  # (B, T, R)
        scores = torch.einsum("bshc,btc->bsht", q_lat, lat).add(torch.einsum("bshr,btr->bsht", q_pe, pe))  # (B, S, H, T)
        probs = probs_of(scores, attn.scale, None if mask is None else mask.unsqueeze(1))  # (B, S, H, T)
        o_lat = torch.einsum("bsht,btc->bshc", probs, lat)  # (B, S, H, C)
        o = torch.einsum("bshc,hdc->bshd", o_lat, w.narrow(1, attn.nope, attn.v_dim))  # (B, S, H, v)
        out = o.reshape(B, S, H * attn.v_dim)  # (B, S, H*v)
    return attn.o_proj(out)  # (B, S, D)


def layer_cached(layer, x, cos, sin, mask, cache, start, mla):
    """model_ref.DecoderLayer with a cache: x (B, S, D) -> (B, S, D)."""
    h = x.add(mla_cached(layer.self_attn, layer.input_layernorm(x), cos, sin, mask, cache, start, mla))  # (B, S, D)
    normed = layer.post_attention_layernorm(h)  # (B, S, D)
    if isinstance(layer.mlp, MoE):
        out, _aux = layer.mlp(normed)  # (B, S, D); no balance loss in eval mode
        return h.add(out)
    return h.add(layer.mlp(normed))


def forward_cached(model, ids, cache, start, mla, last_only):
    """ids (B, S) at positions start..start+S-1 -> logits (B, 1, V) if last_only else (B, S, V)."""
    S = ids.shape[1]
    x = model.model.embed_tokens(ids)  # (B, S, D)
    cos, sin, mask = model.context(S, start)  # (S, 1, R/2) x2, (S, start+S) or None when S = 1
    for i, layer in enumerate(model.model.layers[: model.n_main]):
        x = layer_cached(layer, x, cos, sin, mask, cache[i], start, mla)
    hidden = model.model.norm(x)  # (B, S, D)
    if last_only:
        hidden = hidden.narrow(1, S - 1, 1)  # (B, 1, D)
    return hidden.matmul(model.head_weight().mT)  # (B, 1 or S, V)


# ---- the rollout --------------------------------------------------------------------------------


def sample(logits, temperature, generator):
    """logits (B, V) -> ids (B, 1) int64, log pi(ids) (B, 1) at temperature 1."""
    logp = logits.log_softmax(-1)  # (B, V)
    if temperature == 0:
        ids = logits.argmax(-1, keepdim=True)  # (B, 1)
    else:
        probs = logp.exp() if temperature == 1 else logits.div(temperature).softmax(-1)  # (B, V)
        ids = torch.multinomial(probs, 1, generator=generator)  # (B, 1)
    return ids, logp.gather(1, ids)  # (B, 1), (B, 1)


def rollout(model, prompts, group, new_tokens, temperature, seed, mla):
    """prompts (P, L) int64 -> ids (P*G, N) and logprobs (P*G, N) as lists, and the timings."""
    with torch.inference_mode():
        t0 = time.perf_counter()
        P, L = prompts.shape
        generator = torch.Generator().manual_seed(seed)
        cache = alloc_cache(model, P, L + new_tokens, mla)
        logits = forward_cached(model, prompts, cache, 0, mla, True).select(1, 0)  # (P, V)
        if group > 1:
            rows = torch.arange(P).repeat_interleave(group)  # (P*G) row p*G + g <- prompt p
            cache = [{name: buf.index_select(0, rows) for name, buf in c.items()} for c in cache]
            logits = logits.index_select(0, rows)  # (P*G, V)
        B = logits.shape[0]
        ids, lp = sample(logits, temperature, generator)  # (B, 1), (B, 1)
        out_ids, out_lp = [ids], [lp]
        t1 = time.perf_counter()
        for step in range(1, new_tokens):
            logits = forward_cached(model, ids, cache, L + step - 1, mla, False).select(1, 0)  # (B, V)
            ids, lp = sample(logits, temperature, generator)  # (B, 1), (B, 1)
            out_ids.append(ids)
            out_lp.append(lp)
        tokens = torch.cat(out_ids, 1).tolist()  # (B, N)
        logprobs = torch.cat(out_lp, 1).tolist()  # (B, N)
        t2 = time.perf_counter()
    return {
        "prefill_s": t1 - t0,
        "decode_s": t2 - t1,
        "seconds": t2 - t0,
        "generated": B * new_tokens,
        "tokens": tokens,
        "logprobs": logprobs,
    }


def main():
    for line in sys.stdin:
        req = json.loads(line)
        cmd = req["cmd"]
        try:
            if cmd == "setup":
                out = setup(req["threads"])
            elif cmd == "load":
                model = build(req["config"], req["weights"])
                model.eval()
                with open(req["batch"]) as f:
                    batch = json.load(f)
                state["model"] = model
                state["prompts"] = torch.tensor(batch["ids"], dtype=torch.int64)  # (P, L)
                out = {"parameters": sum(p.numel() for p in model.parameters())}
            elif cmd == "rollout":
                out = rollout(
                    state["model"],
                    state["prompts"],
                    req["group"],
                    req["new_tokens"],
                    req["temperature"],
                    req["seed"],
                    req["mla"],
                )
                if req.get("timed_only"):
                    del out["tokens"], out["logprobs"]
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
