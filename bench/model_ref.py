"""DeepSeek-V3 in plain PyTorch: the reference that bench/model.ts times tinyseek against.

The same architecture as src/model (MLA in its naive form, DeepSeekMoE with sigmoid scores, a
selection-only bias and group-limited top-k, a dense leading layer, MTP), written as a PyTorch user
would write it (nn.Module, nn.Linear, nn.Embedding), and mirroring the TypeScript model's math op
for op wherever there is a choice, so that a timing comparison measures the runtime and not two
different algorithms:

  RMSNorm       float32: x * rsqrt(mean(x^2) + eps), back to the input dtype, times the weight
                (src/nn/layers.ts rmsNorm)
  RoPE          interleaved pairs (x[2i], x[2i+1]) in real arithmetic: reshape (..., d/2, 2),
                select, mul/sub/add, stack (src/model/rope.ts applyRotary); tables computed in
                float64 and stored as float32, YaRN when configured
  attention     MLA naive: kv_b_proj expands the latent into per-head k_nope and v, the rotary
                key is shared by all heads (src/model/attention.ts MLA.naive); softmax(scores *
                scale + causal mask) in float32
  gate          scores = sigmoid(x W^T); under no_grad: + bias (selection only), groups scored by
                the sum of their top-2 (bias) or their max, top `topk_group` groups kept, top-k
                experts among them; weights = unbiased scores gathered, renormalised, * route scale
  MoE           assignments sorted by expert (stable), bincount, index_select, split,
                per-expert SwiGLU, index_add; plus the shared experts
  loss          CE(main) + (lambda / D) * sum_k CE(MTP depth k) + the sequence-wise balance loss
                (alpha > 0, training), as DeepSeekV3.loss (src/model/transformer.ts)

Config: the same config.json (Hugging Face keys, defaults as src/model/config.ts). Tensor names:
Hugging Face's, as tinyseek's stateDict(); `load_safetensors` reads a file written by tinyseek's
saveSafetensors (no `safetensors` package needed).

Command line (an equivalence check without the bench):
    /usr/bin/python3 bench/model_ref.py CONFIG.json WEIGHTS.safetensors BATCH.json
where BATCH.json is {"ids": [[...]], "targets": [[...]]}; prints the loss components as JSON.
"""
import json
import math
import struct
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

# ---- config -------------------------------------------------------------------------------------

DEFAULTS = {
    "attention_type": "mla",
    "q_lora_rank": None,
    "kv_lora_rank": None,
    "qk_nope_head_dim": 0,
    "qk_rope_head_dim": 0,
    "v_head_dim": 0,
    "n_routed_experts": None,
    "n_shared_experts": None,
    "num_experts_per_tok": None,
    "moe_layer_freq": 1,
    "first_k_dense_replace": 0,
    "routed_scaling_factor": 1.0,
    "scoring_func": "softmax",
    "topk_method": "greedy",
    "n_group": 1,
    "topk_group": 1,
    "norm_topk_prob": False,
    "aux_loss_alpha": 0.0,
    "seq_aux": True,
    "num_nextn_predict_layers": 0,
    "rope_theta": 10000.0,
    "rope_scaling": None,
    "rms_norm_eps": 1e-6,
    "initializer_range": 0.02,
    "tie_word_embeddings": False,
}


class Config:
    def __init__(self, raw):
        merged = dict(DEFAULTS)
        merged.update({k: v for k, v in raw.items()})
        for k, v in merged.items():
            setattr(self, k, v)
        if self.attention_type != "mla":
            raise ValueError("model_ref implements MLA only (attention_type %r)" % self.attention_type)
        if self.rope_scaling is not None:
            y = dict(beta_fast=32, beta_slow=1, mscale=1, mscale_all_dim=0)
            y.update(self.rope_scaling)
            self.rope_scaling = y

    @staticmethod
    def load(path):
        with open(path) as f:
            return Config(json.load(f))


def is_moe_layer(c, i):
    return bool(c.n_routed_experts) and i >= c.first_k_dense_replace and i % c.moe_layer_freq == 0


def yarn_mscale(scale, m):
    return 1.0 if scale <= 1 else 0.1 * m * math.log(scale) + 1.0


def softmax_scale(c):
    s = (c.qk_nope_head_dim + c.qk_rope_head_dim) ** -0.5
    if c.rope_scaling and c.rope_scaling["mscale_all_dim"]:
        m = yarn_mscale(c.rope_scaling["factor"], c.rope_scaling["mscale_all_dim"])
        s *= m * m
    return s


# ---- rotary embedding ---------------------------------------------------------------------------


def inverse_frequencies(c, dim):
    base = c.rope_theta
    inv = [1.0 / base ** ((2 * i) / dim) for i in range(dim // 2)]
    y = c.rope_scaling
    if not y:
        return inv

    def correction_dim(rot, max_pos):
        return (dim * math.log(max_pos / (rot * 2 * math.pi))) / (2 * math.log(base))

    orig = y["original_max_position_embeddings"]
    low = max(math.floor(correction_dim(y["beta_fast"], orig)), 0)
    high = min(math.ceil(correction_dim(y["beta_slow"], orig)), dim - 1)
    if low == high:
        high += 0.001
    out = []
    for i, f in enumerate(inv):
        keep = 1 - min(1.0, max(0.0, (i - low) / (high - low)))
        out.append((f / y["factor"]) * (1 - keep) + f * keep)
    return out


def rope_tables(c, dim, max_pos):
    """cos/sin (max_pos, dim/2), float64 arithmetic stored as float32 (as rope.ts ropeTables)."""
    inv = torch.tensor(inverse_frequencies(c, dim), dtype=torch.float64)
    y = c.rope_scaling
    m = yarn_mscale(y["factor"], y["mscale"]) / yarn_mscale(y["factor"], y["mscale_all_dim"]) if y else 1.0
    angles = torch.arange(max_pos, dtype=torch.float64)[:, None] * inv[None, :]
    return (angles.cos() * m).float(), (angles.sin() * m).float()


def apply_rotary(x, cos, sin):
    """x (B, S, H, dim) over interleaved pairs; cos/sin (S, 1, dim/2)."""
    shape = x.shape
    pairs = x.reshape(*shape[:-1], shape[-1] // 2, 2)
    re = pairs.select(-1, 0)
    im = pairs.select(-1, 1)
    out_re = re.mul(cos).sub(im.mul(sin))
    out_im = re.mul(sin).add(im.mul(cos))
    return torch.stack([out_re, out_im], -1).reshape(shape)


# ---- layers -------------------------------------------------------------------------------------


class RMSNorm(nn.Module):
    def __init__(self, dim, eps):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x):
        dtype = x.dtype
        xf = x if dtype in (torch.float32, torch.float64) else x.float()
        inv = xf.square().mean(-1, keepdim=True).add(self.eps).rsqrt()
        y = xf.mul(inv)
        return (y if y.dtype == dtype else y.to(dtype)).mul(self.weight)


def linear(i, o):
    return nn.Linear(i, o, bias=False)


class MLA(nn.Module):
    def __init__(self, c):
        super().__init__()
        D = c.hidden_size
        self.heads = c.num_attention_heads
        self.nope = c.qk_nope_head_dim
        self.rope = c.qk_rope_head_dim
        self.v_dim = c.v_head_dim
        self.rank = c.kv_lora_rank
        self.scale = softmax_scale(c)
        qk = self.nope + self.rope
        if c.q_lora_rank:
            self.q_a_proj = linear(D, c.q_lora_rank)
            self.q_a_layernorm = RMSNorm(c.q_lora_rank, c.rms_norm_eps)
            self.q_b_proj = linear(c.q_lora_rank, self.heads * qk)
        else:
            self.q_proj = linear(D, self.heads * qk)
        self.kv_a_proj_with_mqa = linear(D, self.rank + self.rope)
        self.kv_a_layernorm = RMSNorm(self.rank, c.rms_norm_eps)
        self.kv_b_proj = linear(self.rank, self.heads * (self.nope + self.v_dim))
        self.o_proj = linear(self.heads * self.v_dim, D)
        self.lora = bool(c.q_lora_rank)

    def forward(self, x, cos, sin, mask):
        B, S, _ = x.shape
        H = self.heads
        q = self.q_b_proj(self.q_a_layernorm(self.q_a_proj(x))) if self.lora else self.q_proj(x)
        q = q.view(B, S, H, self.nope + self.rope)
        q_nope = q.narrow(-1, 0, self.nope)
        q_pe = apply_rotary(q.narrow(-1, self.nope, self.rope), cos, sin)
        kv = self.kv_a_proj_with_mqa(x)
        latent = self.kv_a_layernorm(kv.narrow(-1, 0, self.rank))
        k_pe = apply_rotary(kv.narrow(-1, self.rank, self.rope).unsqueeze(2), cos, sin)
        # naive form: expand per-head keys and values
        kvb = self.kv_b_proj(latent).view(B, S, H, self.nope + self.v_dim)
        k = torch.cat([kvb.narrow(-1, 0, self.nope), k_pe.expand(B, S, H, self.rope)], -1)
        v = kvb.narrow(-1, self.nope, self.v_dim)
        qh = torch.cat([q_nope, q_pe], -1).transpose(1, 2)  # (B, H, S, qk)
        scores = qh.matmul(k.permute(0, 2, 3, 1))  # (B, H, S, T)
        s = scores.mul(self.scale)
        if mask is not None:
            s = s.add(mask)
        probs = s.softmax(-1)
        o = probs.matmul(v.transpose(1, 2))  # (B, H, S, v)
        return self.o_proj(o.transpose(1, 2).reshape(B, S, H * self.v_dim))


class Mlp(nn.Module):
    """SwiGLU: down(silu(gate(x)) * up(x))."""

    def __init__(self, dim, inter):
        super().__init__()
        self.gate_proj = linear(dim, inter)
        self.up_proj = linear(dim, inter)
        self.down_proj = linear(inter, dim)

    def forward(self, x):
        return self.down_proj(F.silu(self.gate_proj(x)).mul(self.up_proj(x)))


class Gate(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.n_experts = c.n_routed_experts
        self.topk = c.num_experts_per_tok
        self.method = c.topk_method
        self.n_groups = 1 if self.method == "greedy" else (c.n_group or 1)
        self.topk_groups = 1 if self.method == "greedy" else (c.topk_group or 1)
        self.scoring = c.scoring_func
        self.norm_topk = c.norm_topk_prob and self.topk > 1
        self.route_scale = c.routed_scaling_factor
        self.weight = nn.Parameter(torch.empty(self.n_experts, c.hidden_size))
        nn.init.uniform_(self.weight, -(c.hidden_size ** -0.5), c.hidden_size ** -0.5)
        if self.method == "noaux_tc":
            self.register_buffer("e_score_correction_bias", torch.zeros(self.n_experts))
        else:
            self.e_score_correction_bias = None

    def forward(self, x):
        """x (T, D) -> weights (T, k), indices (T, k), scores (T, E)."""
        logits = x.matmul(self.weight.mT).float()
        scores = logits.sigmoid() if self.scoring == "sigmoid" else logits.softmax(-1)
        with torch.no_grad():
            sel = scores.detach()
            if self.e_score_correction_bias is not None:
                sel = sel.add(self.e_score_correction_bias)
            if self.n_groups > 1:
                T = sel.shape[0]
                grouped = sel.view(T, self.n_groups, self.n_experts // self.n_groups)
                if self.e_score_correction_bias is not None:
                    group_score = grouped.topk(2, -1).values.sum(-1)
                else:
                    group_score = grouped.amax(-1)
                kept = group_score.topk(self.topk_groups, -1).indices
                dropped = torch.ones(T, self.n_groups, dtype=torch.bool).scatter(1, kept, False)
                sel = grouped.masked_fill(dropped.unsqueeze(-1), float("-inf")).flatten(1)
            indices = sel.topk(self.topk, -1).indices
        weights = scores.gather(1, indices)
        if self.norm_topk:
            weights = weights.div(weights.sum(-1, keepdim=True).add(1e-20))
        if self.route_scale != 1:
            weights = weights.mul(self.route_scale)
        return weights, indices, scores


class MoE(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.gate = Gate(c)
        self.experts = nn.ModuleList([Mlp(c.hidden_size, c.moe_intermediate_size) for _ in range(c.n_routed_experts)])
        self.shared_experts = Mlp(c.hidden_size, c.moe_intermediate_size * c.n_shared_experts) if c.n_shared_experts else None
        self.alpha = c.aux_loss_alpha
        self.seq_aux = c.seq_aux

    def forward(self, x):
        shape = x.shape
        D = shape[-1]
        flat = x.reshape(-1, D)
        T = flat.shape[0]
        weights, indices, scores = self.gate(flat)
        k = self.gate.topk
        E = self.gate.n_experts

        assign = indices.flatten()
        sorted_experts, order = assign.sort(dim=-1, stable=True)
        counts = sorted_experts.bincount(minlength=E).tolist()
        token_of = order.div(k, rounding_mode="floor")
        xs = flat.index_select(0, token_of)
        ws = weights.flatten().index_select(0, order).unsqueeze(1).to(x.dtype)
        pieces = xs.split(counts, 0)
        outs = [self.experts[e](pieces[e]) for e in range(E) if counts[e] > 0]
        routed = torch.cat(outs, 0).mul(ws)
        y = torch.zeros(T, D, dtype=x.dtype).index_add(0, token_of, routed)
        if self.shared_experts is not None:
            y = y.add(self.shared_experts(flat))
        aux = self.balance_loss(scores, indices, shape[0], T) if self.training and self.alpha > 0 else None
        return y.reshape(shape), aux

    def balance_loss(self, scores, indices, batch, T):
        E = self.gate.n_experts
        k = self.gate.topk
        B = batch if self.seq_aux else 1
        S = T // B
        normalised = scores.div(scores.sum(-1, keepdim=True))
        P = normalised.view(B, S, E).mean(1)
        with torch.no_grad():
            f = torch.zeros(B, E).scatter_add(1, indices.view(B, S * k), torch.ones(B, S * k)).mul(E / (k * S))
        return f.mul(P).sum(1).mean().mul(self.alpha)


class DecoderLayer(nn.Module):
    def __init__(self, c, index):
        super().__init__()
        self.input_layernorm = RMSNorm(c.hidden_size, c.rms_norm_eps)
        self.self_attn = MLA(c)
        self.post_attention_layernorm = RMSNorm(c.hidden_size, c.rms_norm_eps)
        self.mlp = MoE(c) if is_moe_layer(c, index) else Mlp(c.hidden_size, c.intermediate_size)

    def forward(self, x, cos, sin, mask):
        h = x.add(self.self_attn(self.input_layernorm(x), cos, sin, mask))
        normed = self.post_attention_layernorm(h)
        if isinstance(self.mlp, MoE):
            out, aux = self.mlp(normed)
            return h.add(out), aux
        return h.add(self.mlp(normed)), None


class SharedHead(nn.Module):
    def __init__(self, dim, eps):
        super().__init__()
        self.norm = RMSNorm(dim, eps)


class MtpLayer(DecoderLayer):
    def __init__(self, c, index):
        super().__init__(c, index)
        D = c.hidden_size
        self.enorm = RMSNorm(D, c.rms_norm_eps)
        self.hnorm = RMSNorm(D, c.rms_norm_eps)
        self.eh_proj = linear(2 * D, D)
        self.shared_head = SharedHead(D, c.rms_norm_eps)

    def predict(self, hidden, embedded, cos, sin, mask):
        x = self.eh_proj(torch.cat([self.enorm(embedded), self.hnorm(hidden)], -1))
        return self(x, cos, sin, mask)


class Backbone(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.embed_tokens = nn.Embedding(c.vocab_size, c.hidden_size)
        layers = [DecoderLayer(c, i) for i in range(c.num_hidden_layers)]
        layers += [MtpLayer(c, c.num_hidden_layers + k) for k in range(c.num_nextn_predict_layers)]
        self.layers = nn.ModuleList(layers)
        self.norm = RMSNorm(c.hidden_size, c.rms_norm_eps)


class DeepSeekV3(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.config = c
        self.model = Backbone(c)
        self.lm_head = None if c.tie_word_embeddings else linear(c.hidden_size, c.vocab_size)
        self.n_main = c.num_hidden_layers
        cos, sin = rope_tables(c, c.qk_rope_head_dim, c.max_position_embeddings)
        self.register_buffer("rope_cos", cos, persistent=False)
        self.register_buffer("rope_sin", sin, persistent=False)
        std = c.initializer_range
        for name, p in self.named_parameters():
            if name.endswith("norm.weight") or name.endswith("gate.weight"):
                continue
            nn.init.normal_(p, 0.0, std)

    def head_weight(self):
        return self.lm_head.weight if self.lm_head is not None else self.model.embed_tokens.weight

    def context(self, S, start=0):
        """cos/sin (S, 1, R/2) and the causal mask (S, S), made once per forward as transformer.ts does."""
        cos = self.rope_cos.narrow(0, start, S).unsqueeze(1)
        sin = self.rope_sin.narrow(0, start, S).unsqueeze(1)
        mask = None if S == 1 else torch.full((S, start + S), float("-inf")).triu(start + 1)
        return cos, sin, mask

    def forward(self, ids):
        S = ids.shape[1]
        x = self.model.embed_tokens(ids)
        aux = None
        ctx = self.context(S)
        for layer in self.model.layers[: self.n_main]:
            x, a = layer(x, *ctx)
            if a is not None:
                aux = a if aux is None else aux.add(a)
        hidden = self.model.norm(x)
        return hidden.matmul(self.head_weight().mT), hidden, aux

    def loss(self, ids, targets, ignore_index=-100, mtp_weight=0.3):
        V = self.config.vocab_size
        logits, hidden, aux = self(ids)
        lm_loss = F.cross_entropy(logits.reshape(-1, V), targets.reshape(-1), ignore_index=ignore_index)
        mtp_losses = []
        S = ids.shape[1]
        prev = hidden
        mtp = list(self.model.layers[self.n_main:])
        for j, m in enumerate(mtp):
            k = j + 1
            n = S - k
            if n <= 0:
                break
            emb = self.model.embed_tokens(ids.narrow(1, k, n))
            out, a = m.predict(prev.narrow(1, 0, n), emb, *self.context(n))
            if a is not None:
                aux = a if aux is None else aux.add(a)
            logits_k = m.shared_head.norm(out).matmul(self.head_weight().mT)
            mtp_losses.append(F.cross_entropy(logits_k.reshape(-1, V), targets.narrow(1, k, n).reshape(-1), ignore_index=ignore_index))
            prev = out
        loss = lm_loss
        if mtp_losses:
            total = mtp_losses[0]
            for l in mtp_losses[1:]:
                total = total.add(l)
            loss = loss.add(total.mul(mtp_weight / len(mtp)))
        if aux is not None:
            loss = loss.add(aux)
        return {"loss": loss, "lm_loss": lm_loss, "mtp_losses": mtp_losses, "aux_loss": aux}


# ---- safetensors --------------------------------------------------------------------------------

ST_DTYPES = {
    "F32": torch.float32,
    "F64": torch.float64,
    "F16": torch.float16,
    "BF16": torch.bfloat16,
    "I64": torch.int64,
    "I32": torch.int32,
    "I16": torch.int16,
    "I8": torch.int8,
    "U8": torch.uint8,
    "BOOL": torch.bool,
}


def load_safetensors(path):
    """name -> tensor from a safetensors file: 8-byte LE header length, JSON header, raw LE data."""
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n])
    base = 8 + n
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        begin, end = info["data_offsets"]
        dtype = ST_DTYPES[info["dtype"]]
        raw = bytearray(data[base + begin : base + end])
        t = torch.frombuffer(raw, dtype=dtype) if raw else torch.empty(0, dtype=dtype)
        out[name] = t.reshape(info["shape"])
    return out


def build(config_path, weights_path=None):
    model = DeepSeekV3(Config.load(config_path))
    if weights_path:
        model.load_state_dict(load_safetensors(weights_path), strict=True)
    return model


# ---- pretraining-step pieces (bench/train.ts) ---------------------------------------------------


def weight_decay_groups(model, weight_decay):
    """Two AdamW groups as tinyseek's weightDecayGroups: matrices (ndim >= 2: linear and embedding
    weights) decay, vectors (norm scales) do not; in named_parameters order."""
    decay, no_decay = [], []
    for _, p in model.named_parameters():
        if not p.requires_grad:
            continue
        (decay if p.ndim >= 2 else no_decay).append(p)
    groups = [{"params": decay, "weight_decay": weight_decay}]
    if no_decay:
        groups.append({"params": no_decay, "weight_decay": 0.0})
    return groups


class ExpertLoad:
    """Tokens per routed expert of each MoE gate since the last bias update, counted in training
    forwards only (as src/model/moe.ts), by a forward hook on each gate."""

    def __init__(self, model):
        self.gates = [m.gate for m in model.modules() if isinstance(m, MoE)]
        self.counts = [torch.zeros(g.n_experts, dtype=torch.int64) for g in self.gates]
        for i, g in enumerate(self.gates):
            g.register_forward_hook(self._hook(i))

    def _hook(self, i):
        def hook(gate, inputs, output):
            if gate.training:
                self.counts[i].add_(output[1].flatten().bincount(minlength=gate.n_experts))

        return hook

    def reset(self):
        for c in self.counts:
            c.zero_()

    @torch.no_grad()
    def update_bias(self, gamma):
        """DeepSeek-V3's aux-loss-free update (as MoE.updateBias): b_i -= gamma if expert i was above
        the mean load since the last update, b_i += gamma if below; then the counts restart."""
        for g, c in zip(self.gates, self.counts):
            if g.e_score_correction_bias is not None and gamma != 0:
                n = c.double()
                delta = n.mean().sub(n).sign().mul(gamma)  # above the mean: -gamma, below: +gamma
                g.e_score_correction_bias.add_(delta.to(g.e_score_correction_bias.dtype))
            c.zero_()


def main(argv):
    config_path, weights_path, batch_path = argv
    model = build(config_path, weights_path)
    with open(batch_path) as f:
        batch = json.load(f)
    ids = torch.tensor(batch["ids"], dtype=torch.int64)
    targets = torch.tensor(batch["targets"], dtype=torch.int64)
    r = model.loss(ids, targets)
    print(
        json.dumps(
            {
                "loss": r["loss"].item(),
                "lm_loss": r["lm_loss"].item(),
                "mtp_losses": [l.item() for l in r["mtp_losses"]],
                "aux_loss": None if r["aux_loss"] is None else r["aux_loss"].item(),
            }
        )
    )


if __name__ == "__main__":
    main(sys.argv[1:])
