/**
 * serve: the serving engine behind `tinyseek serve`, measured through its HTTP API on 127.0.0.1
 * (streaming chat completions, the way a client sees it). Each figure is a ratio of two
 * configurations measured in the same run, on the same server and model:
 *
 *   prefix_cache_ttft_speedup  time to first token of a request whose prompt (≥ 2,000 tokens) is
 *                              already in the prefix cache, against the same request the first time
 *                              (median over rounds, a fresh prompt each round; goal ≥ 5);
 *   batching_speedup           aggregate generated tokens/s of 16 concurrent requests against the
 *                              same 16 sent one at a time (goal ≥ 4);
 *   ttft_p50_ms, ttft_p99_ms   time to first token of the 16 concurrent requests.
 *   spec_decode_speedup        tokens/s of greedy decoding with the MTP module's drafts against the
 *                              same engine without them, one request at a time (where drafting pays:
 *                              a step's cost hardly depends on its second token), on a trained model
 *                              — the shipped base with a draft head from `tinyseek train-mtp`
 *                              (--mtp-checkpoint, default runs/mtp-head-small/final) — and 8 held-out
 *                              Countdown prompts, rounds interleaved; the outputs must be identical;
 *   mtp_acceptance             the share of drafts the main model kept in that run.
 *
 * The model: the `small` preset (random weights, seed 0) with max_position_embeddings 4096 so a
 * 2,000-token prompt fits, the shipped tokenizer, the R1 chat template; the engine in its worker
 * with torch's default intra-op threads (stated in the output), block size 64.
 *
 * Options: --rounds N (3), --concurrent N (16), --new N (64 tokens per request in the batching test),
 * --mtp-checkpoint DIR.
 */
import { copyFileSync, existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { getNumThreads } from '../src/core/index.ts';
import { encodeProblemPrompt, generateProblems } from '../src/data/index.ts';
import { Engine } from '../src/engine/scheduler.ts';
import { loadCheckpoint, saveCheckpoint } from '../src/model/checkpoint.ts';
import { Tokenizer } from '../src/tokenizer/index.ts';
import { loadPreset, parseConfig } from '../src/model/config.ts';
import { DeepSeekV3 } from '../src/model/transformer.ts';
import { startServer } from '../src/server/app.ts';
import { numArg } from './common.ts';

const here = dirname(fileURLToPath(import.meta.url));
const shippedTokenizer = join(here, '..', 'checkpoints', 'small-base', 'tokenizer.json');

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const quantile = (xs: number[], q: number): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil(q * s.length) - 1)];
};

/** One streaming request: time to the first token chunk, total time, tokens generated. */
async function stream(
  url: string,
  content: string,
  maxTokens: number,
  user: string,
): Promise<{ ttft: number; total: number; tokens: number; prompt: number; hit: number }> {
  const t0 = performance.now();
  const r = await fetch(`${url}/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({
      model: 'bench',
      messages: [{ role: 'user', content }],
      max_tokens: maxTokens,
      temperature: 1,
      seed: 1,
      stream: true,
      stream_options: { include_usage: true },
      user_id: user,
    }),
  });
  if (r.status !== 200) throw new Error(`status ${r.status}: ${await r.text()}`);
  const reader = r.body!.getReader();
  const dec = new TextDecoder();
  let buf = '';
  let ttft = -1;
  type Usage = { completion_tokens: number; prompt_tokens: number; prompt_cache_hit_tokens: number };
  let usage = null as Usage | null;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    buf += dec.decode(value, { stream: true });
    let i = buf.indexOf('\n\n');
    while (i >= 0) {
      const ev = buf.slice(0, i);
      buf = buf.slice(i + 2);
      i = buf.indexOf('\n\n');
      if (!ev.startsWith('data: ') || ev === 'data: [DONE]') continue;
      const j = JSON.parse(ev.slice(6)) as { choices: { delta?: { content?: string; reasoning_content?: string } }[]; usage?: Usage };
      if (ttft < 0 && j.choices[0]?.delta && (j.choices[0].delta.content !== undefined || j.choices[0].delta.reasoning_content !== undefined))
        ttft = performance.now() - t0;
      if (j.usage) usage = j.usage;
    }
  }
  return {
    ttft,
    total: performance.now() - t0,
    tokens: usage?.completion_tokens ?? 0,
    prompt: usage?.prompt_tokens ?? 0,
    hit: usage?.prompt_cache_hit_tokens ?? 0,
  };
}

/** Greedy decoding of held-out Countdown prompts with and without drafts (see the header). */
function speculative(args: string[], rounds: number): { speedup: number | null; acceptance: number | null; withDrafts: number | null; without: number | null } {
  const i = args.indexOf('--mtp-checkpoint');
  const dir = i >= 0 ? args[i + 1] : join(here, '..', 'runs', 'mtp-head-small', 'final');
  if (!existsSync(join(dir, 'config.json'))) {
    console.log(`speculative decoding: no model with a trained MTP head at ${dir} (make one with \`npx tinyseek train-mtp\`); spec figures are null`);
    return { speedup: null, acceptance: null, withDrafts: null, without: null };
  }
  const model = loadCheckpoint(dir);
  const tok = Tokenizer.load(join(dir, 'tokenizer.json'));
  const problems = generateProblems('countdown', {
    seed: 0,
    split: 'heldout',
    n: 8,
    config: { minCount: 3, maxCount: 3, maxNumber: 20, promptFrame: 'compact' },
  });
  const prompts = problems.map((p) => Array.from(encodeProblemPrompt(tok, p)));
  const greedy = { temperature: 0, topP: 1, topK: 0, presencePenalty: 0, frequencyPenalty: 0, topLogprobs: 0 };
  const run = (speculative: boolean): { seconds: number; tokens: number; outputs: number[][]; proposed: number; accepted: number } => {
    const engine = new Engine(model, { blockSize: 64, speculative, prefixCaching: false });
    const outputs: number[][] = [];
    const t0 = performance.now();
    for (const [k, p] of prompts.entries()) {
      engine.add({ id: String(k), prompt: p, maxTokens: 160, sampling: greedy, namespace: '', stopSequences: [[tok.special.answerClose]] });
      const out: number[] = [];
      while (engine.busy) for (const e of engine.step()) out.push(...e.tokens.map((t) => t.token));
      outputs.push(out);
    }
    const seconds = (performance.now() - t0) / 1000;
    const s = engine.stats;
    engine.dispose();
    return { seconds, tokens: outputs.reduce((a, o) => a + o.length, 0), outputs, proposed: s.draftsProposed, accepted: s.draftsAccepted };
  };
  run(true); // warm-up
  const ratios: number[] = [];
  let last = { withDrafts: 0, without: 0, acceptance: 0 };
  for (let r = 0; r < rounds; r++) {
    const order = r % 2 === 0 ? [true, false] : [false, true];
    const res = new Map(order.map((sp) => [sp, run(sp)] as const));
    const a = res.get(true)!;
    const b = res.get(false)!;
    if (JSON.stringify(a.outputs) !== JSON.stringify(b.outputs)) throw new Error('greedy outputs differ with and without drafts');
    ratios.push(a.tokens / a.seconds / (b.tokens / b.seconds));
    last = { withDrafts: a.tokens / a.seconds, without: b.tokens / b.seconds, acceptance: a.accepted / Math.max(a.proposed, 1) };
    console.log(
      `speculative round ${r + 1}: with drafts ${(a.tokens / a.seconds).toFixed(1)} tok/s (${a.accepted}/${a.proposed} kept), without ${(b.tokens / b.seconds).toFixed(1)} tok/s, identical outputs`,
    );
  }
  return {
    speedup: +median(ratios).toFixed(3),
    acceptance: +last.acceptance.toFixed(3),
    withDrafts: +last.withDrafts.toFixed(1),
    without: +last.without.toFixed(1),
  };
}

/** Text of about `n` tokens that no earlier round used. */
function filler(n: number, round: number): string {
  const words: string[] = [];
  for (let i = 0; words.length < n; i++) words.push(String((i * 7919 + round * 104729) % 1000));
  return words.join(' ');
}

export default async function main(args: string[]): Promise<Record<string, unknown>> {
  const rounds = numArg(args, '--rounds', 3);
  const concurrent = numArg(args, '--concurrent', 16);
  const newTokens = numArg(args, '--new', 64);
  const dir = mkdtempSync(join(tmpdir(), 'tinyseek-bench-serve-'));
  const ckpt = join(dir, 'bench');
  try {
    copyFileSync(shippedTokenizer, join(dir, 'tokenizer.json'));
    const config = parseConfig({ ...loadPreset('small'), vocab_size: 388, max_position_embeddings: 4096, num_nextn_predict_layers: 0 });
    await saveCheckpoint(ckpt, new DeepSeekV3(config, { seed: 0 }));
    copyFileSync(shippedTokenizer, join(ckpt, 'tokenizer.json'));
    writeFileSync(join(ckpt, 'chat.json'), JSON.stringify({ template: 'r1' }));
    const server = await startServer({
      checkpoint: ckpt,
      modelId: 'bench',
      accounts: null,
      engine: { blockSize: 64, maxBatch: concurrent, prefillChunk: 512 },
      maxQueue: 64,
    });
    await server.engine.ready;
    try {
      // warm-up
      await stream(server.url, 'hello', 4, 'warm');
      // prefix cache: the same long prompt twice, a fresh one each round
      const cold: number[] = [];
      const warm: number[] = [];
      let promptTokens = 0;
      let hitTokens = 0;
      for (let r = 0; r < rounds; r++) {
        const text = filler(550, r);
        const a = await stream(server.url, text, 4, `prefix-${r}`);
        const b = await stream(server.url, text, 4, `prefix-${r}`);
        cold.push(a.ttft);
        warm.push(b.ttft);
        promptTokens = a.prompt;
        hitTokens = b.hit;
        console.log(`prefix round ${r + 1}: ${a.prompt} prompt tokens, first ${a.ttft.toFixed(0)} ms, cached (${b.hit} hit) ${b.ttft.toFixed(0)} ms`);
      }
      if (promptTokens < 2000) throw new Error(`the long prompt is ${promptTokens} tokens; it must be at least 2,000`);
      // batching: the same requests one at a time, then all at once
      const prompts = Array.from({ length: concurrent }, (_, i) => `question ${i}: ${filler(40, 100 + i)}`);
      const t1 = performance.now();
      let seqTokens = 0;
      for (const [i, p] of prompts.entries()) seqTokens += (await stream(server.url, p, newTokens, `seq-${i}`)).tokens;
      const seqSeconds = (performance.now() - t1) / 1000;
      const t2 = performance.now();
      const par = await Promise.all(prompts.map((p, i) => stream(server.url, p, newTokens, `par-${i}`)));
      const parSeconds = (performance.now() - t2) / 1000;
      const parTokens = par.reduce((a, r) => a + r.tokens, 0);
      const ttfts = par.map((r) => r.ttft);
      console.log(
        `batching: one at a time ${seqTokens} tokens in ${seqSeconds.toFixed(1)} s (${(seqTokens / seqSeconds).toFixed(1)} tok/s); ${concurrent} at once ${parTokens} tokens in ${parSeconds.toFixed(1)} s (${(parTokens / parSeconds).toFixed(1)} tok/s)`,
      );
      console.log(
        `setup: preset small, max_position_embeddings 4096, block size 64, torch threads ${getNumThreads()} (engine worker: the same default), ${rounds} prefix rounds`,
      );
      const spec = speculative(args, rounds);
      return {
        bench: 'serve',
        prompt_tokens: promptTokens,
        cached_tokens: hitTokens,
        ttft_uncached_ms: +median(cold).toFixed(1),
        ttft_cached_ms: +median(warm).toFixed(1),
        prefix_cache_ttft_speedup: +(median(cold) / median(warm)).toFixed(2),
        sequential_tokens_per_s: +(seqTokens / seqSeconds).toFixed(1),
        concurrent_tokens_per_s: +(parTokens / parSeconds).toFixed(1),
        batching_speedup: +(parTokens / parSeconds / (seqTokens / seqSeconds)).toFixed(2),
        concurrent: concurrent,
        ttft_p50_ms: +quantile(ttfts, 0.5).toFixed(1),
        ttft_p99_ms: +quantile(ttfts, 0.99).toFixed(1),
        spec_decode_speedup: spec.speedup,
        mtp_acceptance: spec.acceptance,
        spec_tokens_per_s: spec.withDrafts,
        plain_tokens_per_s: spec.without,
      };
    } finally {
      await server.close();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
