/**
 * decode: batch-1 generation in tinyseek against llama.cpp (node-llama-cpp 3.21.1's prebuilt CPU
 * build, llama.cpp v0.4.0) on the same model, exported with `tinyseek export gguf`, in one run:
 *
 *   decode_speed_vs_llamacpp        greedy decode tokens/s after an identical prompt, tinyseek over
 *                                   llama.cpp, on a wider V3-shaped model (≥ 100M parameters,
 *                                   random weights: MLA with query compression, a dense first
 *                                   layer, then sigmoid-routed MoE with groups); goal ≥ 1.0
 *   decode_speed_vs_llamacpp_small  the same on the shipped small-base
 *   prefill_speed_vs_llamacpp       time to first token of a 512-token prompt on the wider model,
 *                                   llama.cpp's over tinyseek's (> 1: tinyseek first)
 *   kv_bytes_per_token_*            memory per token of context, each side measured: tinyseek's
 *                                   libtorch bytes held by a cache of L positions over L, llama.cpp's
 *                                   context state size after L tokens over L
 *
 * Fairness: float32 weights and a float32 KV cache on both sides (llama.cpp's default f16 cache is
 * timed as well and reported, not used for the ratio); the same thread count (tinyseek's libtorch
 * intra-op threads, given to llama.cpp's context); the same token ids; the sides alternate round by
 * round and each ratio is the median of the per-round ratios. Decode tokens/s counts the tokens
 * after the first over the time after the first (the first comes with the prefill). tinyseek runs
 * its batch decoder (engine/generate.ts: MLA's absorbed latent cache), llama.cpp its context
 * through node-llama-cpp's evaluate(). Before timing, both sides' greedy continuations of the wide
 * model are compared and the number of equal leading tokens reported.
 *
 * Options: --rounds N (5), --prompt N (64 tokens before decoding), --new N (64 tokens decoded),
 * --ttft-prompt N (512), --profile (op counts and times of tinyseek's decode steps).
 */
import { copyFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type LlamaModel, LlamaLogLevel, type Token, getLlama } from 'node-llama-cpp';
import { exportGguf } from '../src/cli/export.ts';
import { getNumThreads, memoryStats, runtimeInfo } from '../src/core/index.ts';
import { disposeCache } from '../src/model/transformer.ts';
import { generate } from '../src/engine/index.ts';
import { loadCheckpoint, saveCheckpoint } from '../src/model/checkpoint.ts';
import { type ModelConfigInput, parseConfig } from '../src/model/config.ts';
import { DeepSeekV3 } from '../src/model/transformer.ts';
import { Tokenizer } from '../src/tokenizer/index.ts';
import { type OpStat, numArg, profileOps } from './common.ts';
import { median } from './peer.ts';

const here = dirname(fileURLToPath(import.meta.url));
const SMALL = join(here, '..', 'checkpoints', 'small-base');

/** The wider model: V3's shape at ~130M parameters (5 layers, 16 routed experts of 512, 4 active). */
const WIDE: Omit<ModelConfigInput, 'vocab_size'> = {
  architectures: ['DeepseekV3ForCausalLM'],
  model_type: 'deepseek_v3',
  hidden_size: 1024,
  intermediate_size: 2816,
  moe_intermediate_size: 512,
  num_hidden_layers: 5,
  num_nextn_predict_layers: 0,
  num_attention_heads: 16,
  num_key_value_heads: 16,
  q_lora_rank: 512,
  kv_lora_rank: 256,
  qk_nope_head_dim: 64,
  qk_rope_head_dim: 32,
  v_head_dim: 64,
  n_routed_experts: 16,
  n_shared_experts: 1,
  num_experts_per_tok: 4,
  n_group: 4,
  topk_group: 2,
  topk_method: 'noaux_tc',
  scoring_func: 'sigmoid',
  norm_topk_prob: true,
  routed_scaling_factor: 2.5,
  first_k_dense_replace: 1,
  moe_layer_freq: 1,
  max_position_embeddings: 1024,
  rope_theta: 10000,
  rope_scaling: null,
  rms_norm_eps: 1e-6,
  initializer_range: 0.02,
  bos_token_id: 0,
  eos_token_id: 1,
};

type KvType = 'F32' | 'F16';
const asToken = (id: number): Token => id as unknown as Token;
const asTokens = (ids: readonly number[]): Token[] => ids.map(asToken);

interface Timing {
  /** ms to the first generated token (prompt prefill + first sample). */
  ttft: number;
  /** Tokens per second after the first. */
  decode: number;
  tokens: number[];
}

function oursTimed(model: DeepSeekV3, ids: readonly number[], n: number): Timing {
  const t0 = performance.now();
  const r = generate(model, [ids], { maxNewTokens: n, temperature: 0, eosIds: [] });
  const total = performance.now() - t0;
  const s = r.stats;
  // prefillMs is the prompt's forward; the rest of the wall time is the n − 1 decode steps
  return { ttft: total - s.decodeMs, decode: (n - 1) / (s.decodeMs / 1000), tokens: r.tokens[0] };
}

async function llamaTimed(m: LlamaModel, ids: readonly number[], n: number, kv: KvType, threads: number): Promise<Timing> {
  const ctx = await m.createContext({
    contextSize: Math.max(1024, ids.length + n + 8),
    threads,
    experimentalKvCacheKeyType: kv,
    experimentalKvCacheValueType: kv,
  });
  try {
    const seq = ctx.getSequence();
    const tokens: number[] = [];
    const t0 = performance.now();
    let tFirst = 0;
    for await (const t of seq.evaluate(asTokens(ids), { temperature: 0 })) {
      if (tokens.length === 0) tFirst = performance.now();
      tokens.push(Number(t));
      if (tokens.length === n) break;
    }
    const tEnd = performance.now();
    return { ttft: tFirst - t0, decode: (n - 1) / ((tEnd - tFirst) / 1000), tokens };
  } finally {
    await ctx.dispose();
  }
}

/** tinyseek: libtorch bytes held by the batch decoder's cache for `len` positions, per position. */
function oursKvBytesPerToken(model: DeepSeekV3, len: number): number {
  const before = memoryStats().liveBytes;
  const cache = model.createCache(1, len);
  const bytes = memoryStats().liveBytes - before;
  disposeCache(cache);
  return bytes / len;
}

/** llama.cpp: the context's state size after `len` tokens, less the empty state's, per token. */
async function llamaKvBytesPerToken(m: LlamaModel, ids: readonly number[], kv: KvType, threads: number): Promise<number> {
  const ctx = await m.createContext({ contextSize: Math.max(1024, ids.length + 8), threads, experimentalKvCacheKeyType: kv, experimentalKvCacheValueType: kv });
  try {
    const empty = ctx.stateSize;
    await ctx.getSequence().evaluateWithoutGeneratingNewTokens(asTokens(ids));
    return (ctx.stateSize - empty) / ids.length;
  } finally {
    await ctx.dispose();
  }
}

/**
 * tinyseek's decode steps under the op profiler: the ops of a prompt + `steps` + 1 tokens less
 * those of the prompt + 1 token (the prefill), per step, the costliest first.
 */
function profileDecode(model: DeepSeekV3, ids: readonly number[], steps: number): { calls: number; ms: number; wallMs: number; top: [string, OpStat][] } {
  const run = (n: number) => {
    const t0 = performance.now();
    const p = profileOps(() => generate(model, [ids], { maxNewTokens: n, temperature: 0, eosIds: [] }));
    return { ...p, wall: performance.now() - t0 };
  };
  const prefill = run(1);
  const all = run(steps + 1);
  const per = new Map<string, OpStat>();
  for (const [name, e] of all.ops) {
    const b = prefill.ops.get(name);
    const count = (e.count - (b?.count ?? 0)) / steps;
    const us = (e.us - (b?.us ?? 0)) / steps;
    if (count > 0) per.set(name, { count, us });
  }
  const top = [...per].sort((a, b) => b[1].us - a[1].us);
  return {
    calls: (all.calls - prefill.calls) / steps,
    ms: top.reduce((a, [, e]) => a + e.us, 0) / 1e3,
    wallMs: (all.wall - prefill.wall) / steps,
    top: top.slice(0, 12),
  };
}

const leadingEqual = (a: readonly number[], b: readonly number[]): number => {
  let i = 0;
  while (i < a.length && i < b.length && a[i] === b[i]) i++;
  return i;
};
const r2 = (x: number): number => +x.toFixed(2);

export default async function main(args: string[]): Promise<Record<string, unknown>> {
  const rounds = numArg(args, '--rounds', 5);
  const promptLen = numArg(args, '--prompt', 64);
  const n = numArg(args, '--new', 64);
  const ttftLen = numArg(args, '--ttft-prompt', 512);
  const threads = getNumThreads();
  const info = runtimeInfo();
  const tok = Tokenizer.load(join(SMALL, 'tokenizer.json'));
  const root = mkdtempSync(join(tmpdir(), 'tinyseek-bench-decode-'));
  const llama = await getLlama({ gpu: false, build: 'never', logLevel: LlamaLogLevel.error });
  try {
    console.log(`tinyseek: libtorch ${info.torchVersion}, ${threads} intra-op threads, OpenBLAS core ${info.openblasCore}`);
    console.log(`llama.cpp: node-llama-cpp's prebuilt CPU build, ${threads} threads; both float32 weights and KV cache`);

    // the same prompt ids on both sides: Countdown text, repeated to the length asked for
    const text = 'User: Using the numbers [3, 7, 12], create an equation that equals 19. Assistant: <think> 3 + 7 = 10. 12 + 7 = 19. ';
    const textIds = tok.encode(text.repeat(Math.ceil((ttftLen * 2) / 40)), { allowSpecial: true });
    const promptOf = (len: number): number[] => [tok.special.bos, ...textIds.slice(0, len - 1)];

    const wideDir = join(root, 'wide');
    const wide = new DeepSeekV3(parseConfig({ ...WIDE, vocab_size: tok.vocabSize }), { seed: 0 }).eval();
    const params = wide.numParameters(false);
    await saveCheckpoint(wideDir, wide);
    copyFileSync(join(SMALL, 'tokenizer.json'), join(wideDir, 'tokenizer.json'));
    const small = loadCheckpoint(SMALL).eval();
    const smallParams = small.numParameters(false);
    exportGguf(wideDir, join(root, 'wide.gguf'), 'f32');
    exportGguf(SMALL, join(root, 'small.gguf'), 'f32');
    const wideLl = await llama.loadModel({ modelPath: join(root, 'wide.gguf') });
    const smallLl = await llama.loadModel({ modelPath: join(root, 'small.gguf') });
    console.log(
      `models: wide ${(params / 1e6).toFixed(1)}M parameters (${WIDE.num_hidden_layers} layers, hidden ${WIDE.hidden_size}), small-base ${(smallParams / 1e6).toFixed(2)}M`,
    );

    const prompt = promptOf(promptLen);
    const check = leadingEqual(oursTimed(wide, prompt, 16).tokens, (await llamaTimed(wideLl, prompt, 16, 'F32', threads)).tokens);
    console.log(`greedy check (wide, 16 tokens): ${check} leading tokens equal`);
    oursTimed(small, prompt, 8); // warm-up
    await llamaTimed(smallLl, prompt, 8, 'F32', threads);

    const ratios = { wide: [] as number[], small: [] as number[], prefill: [] as number[] };
    const tps = { oursWide: [] as number[], llWide: [] as number[], oursSmall: [] as number[], llSmall: [] as number[], llWideF16: [] as number[] };
    const ttft = { ours: [] as number[], ll: [] as number[] };
    const long = promptOf(ttftLen);
    for (let r = 0; r < rounds; r++) {
      const flip = r % 2 === 1; // AB BA AB …
      const pair = async <T>(a: () => T | Promise<T>, b: () => Promise<T>): Promise<[T, T]> => {
        if (!flip) {
          const x = await a();
          return [x, await b()];
        }
        const y = await b();
        return [await a(), y];
      };
      const [ow, lw] = await pair(
        () => oursTimed(wide, prompt, n),
        () => llamaTimed(wideLl, prompt, n, 'F32', threads),
      );
      const [os, ls] = await pair(
        () => oursTimed(small, prompt, n),
        () => llamaTimed(smallLl, prompt, n, 'F32', threads),
      );
      const [ot, lt] = await pair(
        () => oursTimed(wide, long, 1),
        () => llamaTimed(wideLl, long, 1, 'F32', threads),
      );
      const lf = await llamaTimed(wideLl, prompt, n, 'F16', threads);
      ratios.wide.push(ow.decode / lw.decode);
      ratios.small.push(os.decode / ls.decode);
      ratios.prefill.push(lt.ttft / ot.ttft);
      tps.oursWide.push(ow.decode);
      tps.llWide.push(lw.decode);
      tps.oursSmall.push(os.decode);
      tps.llSmall.push(ls.decode);
      tps.llWideF16.push(lf.decode);
      ttft.ours.push(ot.ttft);
      ttft.ll.push(lt.ttft);
      console.log(
        `round ${r + 1}/${rounds}: wide ${ow.decode.toFixed(1)} vs ${lw.decode.toFixed(1)} tok/s · small ${os.decode.toFixed(1)} vs ${ls.decode.toFixed(1)} tok/s · ` +
          `TTFT(${ttftLen}) ${ot.ttft.toFixed(0)} vs ${lt.ttft.toFixed(0)} ms · llama.cpp f16 cache ${lf.decode.toFixed(1)} tok/s`,
      );
    }
    const kvOursWide = oursKvBytesPerToken(wide, 1024);
    const kvLlWide = await llamaKvBytesPerToken(wideLl, promptOf(512), 'F32', threads);
    const kvLlWideF16 = await llamaKvBytesPerToken(wideLl, promptOf(512), 'F16', threads);
    const kvOursSmall = oursKvBytesPerToken(small, 512);
    const kvLlSmall = await llamaKvBytesPerToken(smallLl, promptOf(256), 'F32', threads);
    console.log(
      `memory per token of context: wide ${kvOursWide} B (tinyseek) vs ${kvLlWide.toFixed(0)} B (llama.cpp f32; ${kvLlWideF16.toFixed(0)} B f16); small ${kvOursSmall} vs ${kvLlSmall.toFixed(0)} B`,
    );
    await wideLl.dispose();
    await smallLl.dispose();
    const profiles: Record<string, unknown> = {};
    if (args.includes('--profile')) {
      for (const [name, m] of [
        ['wide', wide],
        ['small', small],
      ] as const) {
        const p = profileDecode(m, prompt, 32);
        console.log(
          `profile, ${name} model: a decode step is ${p.calls.toFixed(0)} libtorch calls, ${p.ms.toFixed(2)} ms inside them, ${p.wallMs.toFixed(2)} ms in all (profiled)`,
        );
        for (const [op, e] of p.top) console.log(`  ${op.padEnd(28)} ${e.count.toFixed(1).padStart(7)} calls ${(e.us / 1e3).toFixed(3).padStart(8)} ms`);
        profiles[name] = { calls_per_step: +p.calls.toFixed(1), op_ms_per_step: +p.ms.toFixed(3), wall_ms_per_step: +p.wallMs.toFixed(3) };
      }
    }
    return {
      ...(Object.keys(profiles).length ? { profile: profiles } : {}),
      decode_speed_vs_llamacpp: r2(median(ratios.wide)),
      decode_speed_vs_llamacpp_small: r2(median(ratios.small)),
      prefill_speed_vs_llamacpp: r2(median(ratios.prefill)),
      tinyseek_decode_tok_s: r2(median(tps.oursWide)),
      llamacpp_decode_tok_s: r2(median(tps.llWide)),
      llamacpp_f16_cache_decode_tok_s: r2(median(tps.llWideF16)),
      tinyseek_decode_tok_s_small: r2(median(tps.oursSmall)),
      llamacpp_decode_tok_s_small: r2(median(tps.llSmall)),
      tinyseek_ttft_ms: r2(median(ttft.ours)),
      llamacpp_ttft_ms: r2(median(ttft.ll)),
      ttft_prompt_tokens: ttftLen,
      kv_bytes_per_token_tinyseek: kvOursWide,
      kv_bytes_per_token_llamacpp: r2(kvLlWide),
      kv_bytes_per_token_llamacpp_f16: r2(kvLlWideF16),
      kv_bytes_per_token_tinyseek_small: kvOursSmall,
      kv_bytes_per_token_llamacpp_small: r2(kvLlSmall),
      greedy_equal_tokens: check,
      wide_params: params,
      small_params: smallParams,
      prompt_tokens: promptLen,
      new_tokens: n,
      rounds,
      threads,
      dtype: 'f32',
    };
  } finally {
    await llama.dispose();
    rmSync(root, { recursive: true, force: true });
  }
}
