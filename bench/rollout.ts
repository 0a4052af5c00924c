/**
 * rollout: generated tokens per second of a GRPO group rollout — P prompts × G sampled completions
 * each — in tinyseek's generation engine (src/engine generate()) against PyTorch sampling the same
 * architecture with a KV cache (bench/peer_rollout.py on bench/model_ref.py, Debian's
 * python3-torch), the same weights, the same prompts, interleaved in one run.
 *
 * What both sides do (defaults in brackets): the `small` preset with the weights of bench/common.ts
 * sharedModel (seed 0, a random nonzero selection bias), written once as safetensors and loaded by
 * the peer; P [8] random prompts of L [64] ids each (equal lengths: no padding on either side); each
 * prompt prefilled once and its cache expanded to its G [8] rows; then N [128] ids per row, one
 * decoding step at a time with a preallocated KV cache; sampling at temperature T [1.0] with no
 * top-k / top-p, from a generator seeded identically on both sides; the temperature-1 logprob of
 * every sampled id kept (what GRPO's ratio needs); no early stop — EOS and stop sequences are
 * disabled, so every row generates exactly N ids and both sides generate P·G·N ids per rollout.
 * Both sides run in inference mode with the model in eval mode; both read every id and logprob
 * back into host lists (tinyseek after each step, as its stop criteria need; PyTorch once at the
 * end). Same libtorch build, same intra-op threads (inter-op 1), same OPENBLAS_CORETYPE and
 * OMP/OpenBLAS environment (the peer inherits this process's); the output states them.
 *
 * MLA cache form: both sides implement both forms of src/model/attention.ts — 'absorbed' (the
 * engine's default: cache the normalised latent + the shared rotary key, fold kv_b_proj into the
 * query and the output) and 'naive' (cache per-head K and V, as Hugging Face's DeepSeek-V3 does).
 * Each is timed against its own kind; speed_vs_pytorch (the headline) compares absorbed with
 * absorbed (naive with naive when only --mla naive runs), and the cross figure (tinyseek's default
 * against a PyTorch naive-K/V sampler) is printed beside it.
 *
 * Same computation first: one greedy rollout (temperature 0, P prompts × min(G, 2) rows × N ids: the
 * rows of a greedy group are all alike) per form on both sides; the bench prints how many rows agree
 * id for id, the shortest common prefix and the largest logprob difference on it, and stops
 * if any row differs in its first id (the prefill would not be the same computation). The sampled
 * warm-up rollouts are compared the same way, for information (identical draws need bitwise
 * identical probabilities and the same generator stream).
 *
 * Timing: `warmup` rollouts per side and form, then `rounds` rounds; in each, for each form, one
 * rollout per side, who goes first alternating by round. A rollout's time is the wall time of the
 * whole call (allocation, prefill, decode, reading back); tokens/s = P·G·N / median time;
 * speed_vs_pytorch is the median of the per-round ratios (> 1: tinyseek faster). Prefill and decode
 * are reported separately as well (medians).
 *
 * It knows the engine's public generate() and the peer's protocol; it does not know text,
 * tokenizers, rewards or the GRPO update.
 *
 * Options: --quick (2 rounds, smaller rollout: P 4, G 4, N 32), --rounds N (5), --warmup N (1),
 * --prompts P (8), --group G (8), --prompt-len L (64), --new N (128), --temperature T (1.0),
 * --seed S (1), --mla absorbed|naive|both (both).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { generate } from '../src/engine/index.ts';
import type { MlaImpl } from '../src/model/attention.ts';
import type { DeepSeekV3 } from '../src/model/transformer.ts';
import { PRESET, ms, numArg, setUpPeer, settingsFigures, sharedModel } from './common.ts';
import { Peer, median } from './peer.ts';

interface RolloutTimes {
  seconds: number;
  prefill_s: number;
  decode_s: number;
  generated: number;
}

interface RolloutOut extends RolloutTimes {
  tokens: number[][];
  logprobs: number[][];
}

interface Settings {
  P: number;
  G: number;
  L: number;
  N: number;
  temperature: number;
}

/** How far two sets of rows agree, id for id. */
interface Agreement {
  rows: number;
  identical_rows: number;
  /** Shortest common prefix over the rows (ids). */
  min_common_prefix: number;
  /** Mean common prefix over the rows (ids). */
  mean_common_prefix: number;
  identical_ids: number;
  ids: number;
  /** Largest |logprob difference| over the common prefixes. */
  max_logprob_diff: number;
}

function floatArg(args: string[], name: string, dflt: number): number {
  const i = args.indexOf(name);
  if (i < 0) return dflt;
  const v = Number(args[i + 1]);
  if (!Number.isFinite(v) || v < 0) throw new Error(`${name} needs a finite number ≥ 0, got ${args[i + 1]}`);
  return v;
}

function formsArg(args: string[]): MlaImpl[] {
  const i = args.indexOf('--mla');
  const v = i < 0 ? 'both' : args[i + 1];
  if (v === 'both') return ['absorbed', 'naive'];
  if (v === 'absorbed' || v === 'naive') return [v];
  throw new Error(`--mla takes absorbed, naive or both; got ${v}`);
}

/** One tinyseek rollout through the engine's public generate(). */
function ourRollout(model: DeepSeekV3, prompts: number[][], s: Settings, seed: number, mla: MlaImpl): RolloutOut {
  const t0 = process.hrtime.bigint();
  const r = generate(model, prompts, {
    maxNewTokens: s.N,
    groupSize: s.G,
    temperature: s.temperature,
    seed,
    eosIds: [],
    stopSequences: [],
    mla,
  });
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  const expected = s.P * s.G * s.N;
  if (r.stats.generatedTokens !== expected) throw new Error(`tinyseek generated ${r.stats.generatedTokens} ids, expected ${expected}`);
  return {
    seconds,
    prefill_s: r.stats.prefillMs / 1e3,
    decode_s: r.stats.decodeMs / 1e3,
    generated: r.stats.generatedTokens,
    tokens: r.tokens,
    logprobs: r.logprobs,
  };
}

async function theirRollout(peer: Peer, s: Settings, seed: number, mla: MlaImpl, timedOnly: boolean): Promise<RolloutOut> {
  const r = await peer.request<RolloutOut>({ cmd: 'rollout', group: s.G, new_tokens: s.N, temperature: s.temperature, seed, mla, timed_only: timedOnly });
  const expected = s.P * s.G * s.N;
  if (r.generated !== expected) throw new Error(`PyTorch generated ${r.generated} ids, expected ${expected}`);
  return r;
}

function agreement(a: RolloutOut, b: RolloutOut): Agreement {
  const prefixes: number[] = [];
  let identicalIds = 0;
  let ids = 0;
  let maxLp = 0;
  a.tokens.forEach((row, r) => {
    const other = b.tokens[r] ?? [];
    let k = 0;
    while (k < row.length && k < other.length && row[k] === other[k]) {
      maxLp = Math.max(maxLp, Math.abs(a.logprobs[r][k] - b.logprobs[r][k]));
      k++;
    }
    prefixes.push(k);
    for (let i = 0; i < row.length; i++) if (row[i] === other[i]) identicalIds++;
    ids += row.length;
  });
  const full = a.tokens.filter((row, r) => row.length === (b.tokens[r] ?? []).length && prefixes[r] === row.length).length;
  return {
    rows: a.tokens.length,
    identical_rows: full,
    min_common_prefix: Math.min(...prefixes),
    mean_common_prefix: +(prefixes.reduce((x, y) => x + y, 0) / Math.max(prefixes.length, 1)).toFixed(1),
    identical_ids: identicalIds,
    ids,
    max_logprob_diff: +maxLp.toExponential(2),
  };
}

function describe(g: Agreement): string {
  return (
    `${g.identical_rows}/${g.rows} rows identical, ${g.identical_ids}/${g.ids} ids equal at their index, ` +
    `common prefix min ${g.min_common_prefix} / mean ${g.mean_common_prefix} ids, max |Δ logprob| on it ${g.max_logprob_diff.toExponential(2)}`
  );
}

interface FormTimes {
  ours: RolloutTimes[];
  theirs: RolloutTimes[];
  ratios: number[];
}

export default async function rolloutBench(args: string[]): Promise<Record<string, unknown>> {
  const quick = args.includes('--quick');
  const rounds = numArg(args, '--rounds', quick ? 2 : 5);
  const warmup = numArg(args, '--warmup', 1);
  const s: Settings = {
    P: numArg(args, '--prompts', quick ? 4 : 8),
    G: numArg(args, '--group', quick ? 4 : 8),
    L: numArg(args, '--prompt-len', 64),
    N: numArg(args, '--new', quick ? 32 : 128),
    temperature: floatArg(args, '--temperature', 1.0),
  };
  const seed = numArg(args, '--seed', 1);
  const forms = formsArg(args);
  const perRollout = s.P * s.G * s.N;

  const root = join(dirname(fileURLToPath(import.meta.url)), '..');
  const peer = new Peer('/usr/bin/python3', [join(root, 'bench', 'peer_rollout.py')], { ...process.env, PYTHONUNBUFFERED: '1' });
  const dir = mkdtempSync(join(tmpdir(), 'tinyseek-bench-rollout-'));
  try {
    const { setup, info, threads, waitPolicy } = await setUpPeer(peer);
    const { cfg, model, ids, params } = await sharedModel(peer, root, dir, s.P, s.L, 'prompt tokens');
    if (s.L + s.N > cfg.max_position_embeddings)
      throw new Error(`prompt length + new tokens (${s.L + s.N}) exceed max_position_embeddings ${cfg.max_position_embeddings}`);
    const prompts = ids.tolist() as number[][];
    ids.dispose();
    model.eval(); // as the peer's model: the engine would otherwise switch modes around every step
    console.log(
      `rollout: ${s.P} prompts × ${s.G} completions = ${s.P * s.G} rows, ${s.L} prompt ids each, ${s.N} new ids per row ` +
        `(${perRollout} generated ids per rollout), temperature ${s.temperature}, no top-k / top-p, EOS and stop sequences disabled`,
    );
    console.log(`MLA cache forms timed: ${forms.join(', ')} (each side against the same form)`);

    // ---- same computation: one greedy rollout per form on both sides ----
    const parity: Record<string, Agreement> = {};
    // Greedy rows of one group are all alike: two per prompt exercise the cache expansion at a third
    // of the cost of G.
    const greedy: Settings = { ...s, G: Math.min(s.G, 2), temperature: 0 };
    const greedyOurs = new Map<MlaImpl, RolloutOut>();
    for (const mla of forms) {
      const a = ourRollout(model, prompts, greedy, seed, mla);
      const b = await theirRollout(peer, greedy, seed, mla, false);
      const g = agreement(a, b);
      parity[mla] = g;
      greedyOurs.set(mla, a);
      console.log(`greedy, ${mla.padEnd(8)} tinyseek vs PyTorch: ${describe(g)}`);
      if (a.tokens.some((row, r) => row[0] !== b.tokens[r]?.[0]))
        throw new Error(`the two sides disagree on a first greedy id (${mla}): not the same computation; not timing`);
    }
    const ga = greedyOurs.get('absorbed');
    const gn = greedyOurs.get('naive');
    let formsAgree: Agreement | null = null;
    if (ga && gn) {
      formsAgree = agreement(ga, gn);
      console.log(`greedy, tinyseek absorbed vs tinyseek naive: ${describe(formsAgree)}`);
    }

    // ---- warm-up (also: do the sampled rollouts coincide?) ----
    const sampledParity: Record<string, Agreement> = {};
    for (const mla of forms) {
      for (let i = 0; i < warmup; i++) {
        const a = ourRollout(model, prompts, s, seed, mla);
        const b = await theirRollout(peer, s, seed, mla, false);
        if (i === 0) {
          sampledParity[mla] = agreement(a, b);
          console.log(`sampled (seed ${seed}), ${mla.padEnd(8)} tinyseek vs PyTorch: ${describe(sampledParity[mla])}`);
        }
      }
    }

    // ---- timing ----
    console.log(`timing: ${warmup} warm-up rollout(s) per side and form done; ${rounds} rounds, one rollout per side and form each, who starts alternating`);
    const times = new Map<MlaImpl, FormTimes>(forms.map((f) => [f, { ours: [], theirs: [], ratios: [] }]));
    for (let r = 0; r < rounds; r++) {
      const line: string[] = [];
      for (const mla of forms) {
        const t = times.get(mla)!;
        const roundSeed = seed + 1 + r;
        let a: RolloutTimes | null = null;
        if (r % 2 === 0) a = ourRollout(model, prompts, s, roundSeed, mla);
        const b = await theirRollout(peer, s, roundSeed, mla, true);
        if (r % 2 === 1) a = ourRollout(model, prompts, s, roundSeed, mla);
        t.ours.push(a!);
        t.theirs.push(b);
        t.ratios.push(b.seconds / a!.seconds);
        line.push(
          `${mla} tinyseek ${(perRollout / a!.seconds).toFixed(0)} / pytorch ${(perRollout / b.seconds).toFixed(0)} tok/s (${(b.seconds / a!.seconds).toFixed(3)})`,
        );
      }
      console.log(`round ${String(r + 1).padStart(2)}: ${line.join(';  ')}`);
    }

    // ---- results ----
    const summary = (t: RolloutTimes[]): { tps: number; seconds: number; prefill: number; decode: number; decodeTps: number } => {
      const sec = median(t.map((x) => x.seconds));
      const dec = median(t.map((x) => x.decode_s));
      return {
        tps: perRollout / sec,
        seconds: sec,
        prefill: median(t.map((x) => x.prefill_s)),
        decode: dec,
        decodeTps: (perRollout - s.P * s.G) / dec, // ids made by the decoding steps (the prefill samples the first)
      };
    };
    const perForm: Record<string, Record<string, number | number[]>> = {};
    console.log('');
    console.log(
      `${'MLA form'.padEnd(10)}${'side'.padEnd(10)}${'tokens/s'.padStart(10)}${'rollout ms'.padStart(12)}${'prefill ms'.padStart(12)}${'decode ms'.padStart(11)}${'decode tok/s'.padStart(14)}${'ratio'.padStart(8)}`,
    );
    for (const mla of forms) {
      const t = times.get(mla)!;
      const o = summary(t.ours);
      const p = summary(t.theirs);
      const ratio = median(t.ratios);
      const row = (side: string, x: ReturnType<typeof summary>, rt: string): string =>
        `${(side === 'tinyseek' ? mla : '').padEnd(10)}${side.padEnd(10)}${x.tps.toFixed(1).padStart(10)}${ms(x.seconds).toFixed(1).padStart(12)}${ms(x.prefill).toFixed(1).padStart(12)}` +
        `${ms(x.decode).toFixed(1).padStart(11)}${x.decodeTps.toFixed(1).padStart(14)}${rt.padStart(8)}`;
      console.log(row('tinyseek', o, `${ratio.toFixed(3)}x`));
      console.log(row('pytorch', p, ''));
      perForm[mla] = {
        tinyseek_tokens_per_s: +o.tps.toFixed(1),
        pytorch_tokens_per_s: +p.tps.toFixed(1),
        speed_vs_pytorch: +ratio.toFixed(3),
        tinyseek_rollout_ms: ms(o.seconds),
        pytorch_rollout_ms: ms(p.seconds),
        tinyseek_prefill_ms: ms(o.prefill),
        pytorch_prefill_ms: ms(p.prefill),
        tinyseek_decode_ms: ms(o.decode),
        pytorch_decode_ms: ms(p.decode),
        tinyseek_decode_tokens_per_s: +o.decodeTps.toFixed(1),
        pytorch_decode_tokens_per_s: +p.decodeTps.toFixed(1),
        decode_vs_pytorch: +(p.decode / o.decode).toFixed(3),
        round_ratios: t.ratios.map((x) => +x.toFixed(3)),
      };
    }
    const head: MlaImpl = forms.includes('absorbed') ? 'absorbed' : 'naive';
    const h = perForm[head];
    let cross: number | null = null;
    if (times.has('absorbed') && times.has('naive')) {
      // tinyseek's default form against a PyTorch sampler that caches naive K/V, round by round
      const oa = times.get('absorbed')!.ours;
      const pn = times.get('naive')!.theirs;
      cross = +median(oa.map((x, i) => pn[i].seconds / x.seconds)).toFixed(3);
    }
    console.log('');
    console.log(
      `headline (${head} vs ${head}): tinyseek ${h.tinyseek_tokens_per_s} tok/s, PyTorch ${h.pytorch_tokens_per_s} tok/s → ${h.speed_vs_pytorch}x PyTorch (median of round ratios)`,
    );
    if (forms.length > 1)
      console.log(`naive vs naive: ${perForm.naive.speed_vs_pytorch}x; tinyseek absorbed (its default) vs PyTorch naive K/V cache: ${cross}x`);

    return {
      bench: 'rollout',
      preset: PRESET,
      parameters: params,
      prompts: s.P,
      group_size: s.G,
      prompt_len: s.L,
      new_tokens: s.N,
      rows: s.P * s.G,
      tokens_per_rollout: perRollout,
      temperature: s.temperature,
      top_k: 0,
      top_p: 1,
      eos: 'disabled',
      seed,
      mla_forms: forms,
      mla_tinyseek: head,
      mla_pytorch: head,
      ...settingsFigures({ setup, info, threads, waitPolicy }),
      rounds,
      warmup,
      greedy_parity: parity,
      greedy_absorbed_vs_naive_tinyseek: formsAgree,
      sampled_parity: sampledParity,
      per_form: perForm,
      absorbed_vs_pytorch_naive: cross,
      tinyseek_tokens_per_s: h.tinyseek_tokens_per_s,
      pytorch_tokens_per_s: h.pytorch_tokens_per_s,
      speed_vs_pytorch: h.speed_vs_pytorch,
    };
  } finally {
    peer.close();
    rmSync(dir, { recursive: true, force: true });
  }
}
