/**
 * tokenizer: tinyseek's BPE tokenizer against Hugging Face's tokenizers.js
 * (@huggingface/tokenizers, pure JS), on this machine, interleaved in one run:
 *   (a) train a tinyseek tokenizer (vocab 4096) on a few MB of generated mixed text (English-like
 *       prose from a seeded word list, numbers, arithmetic, some CJK and emoji) and save it;
 *   (b) load that same tokenizer.json into both and assert identical ids on every document (this
 *       also checks that the file is a valid Hugging Face tokenizer.json);
 *   (c) encode throughput (MB of UTF-8 per second) of both on the same documents, single-threaded
 *       both (both are JavaScript on this thread), rounds alternating which goes first; the ratio is
 *       the median of per-round ratios.
 *
 * Options: --rounds N (default 5), --mb N (text size, default 4), --vocab N (default 4096), --quick.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Tokenizer as PeerTokenizer } from '@huggingface/tokenizers';
import { Tokenizer } from '../src/tokenizer/index.ts';
import { median } from './peer.ts';

function option(args: string[], name: string, fallback: number): number {
  const i = args.indexOf(name);
  if (i < 0) return fallback;
  const v = Number(args[i + 1]);
  if (!Number.isFinite(v) || v <= 0) throw new Error(`${name} expects a positive number, got ${args[i + 1]}`);
  return v;
}

/** mulberry32: a small seeded generator, so the text is the same on every run. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const WORDS = (
  'the of and to in is was that for it with as his on be at by had are but from or have an they which one you were her all ' +
  'she there would their we him been has when who will more no if out so said what up its about into than them can only other ' +
  'new some could time these two may then do first any my now such like our over man me even most made after also did many ' +
  'before must through back years where much your way well down should because each just those people how too little state ' +
  'good very make world still own see men work long get here between both life being under never day same another know while ' +
  'last might us great old year off come since against go came right used take three small number always large school ' +
  'model token train reason answer think learn expert attention layer vector matrix gradient loss batch sample reward policy ' +
  'question problem solution proof theorem equation function value result method system data memory cache server request'
).split(' ');
const CONTRACTIONS = ["don't", "it's", "we're", "they've", "I'm", "you'll", "he'd", "can't", "won't", "isn't"];
const CJK =
  '的一是在不了有和人这中大为上个国我以要他时来用们生到作地于出就分对成会可主发年动同工也能下过子说产种面而方后多定行学法所民得经十三之进着等部度家电力里如水化高自二理起小物现实加量都两体制机当使点从业本去把性好应开它合还因由其些然前外天政四日那社义事平形相全表间样与关各重新线内数正心反你明看原又么利比或但质气第向道命此变条只没结解问意建月公无系军很情者最立代想已通并提直题党程展五果料象员革位入常文总次品式活设及管特件长求老头基资边流路级少图山统接知较将组见计别她手角期根论运农指几九区强放决西被干做必战先回则任取据处理世车阿苏';
const EMOJI = ['😀', '🚀', '🤔', '👍🏽', '🇯🇵', '❤️', '👨‍👩‍👧', '✨', '🧮', '📚'];

/** One document: a few paragraphs of prose, numbers, arithmetic, sometimes CJK and emoji. */
function makeDocument(r: () => number): string {
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)];
  const int = (n: number): number => Math.floor(r() * n);
  const paragraphs: string[] = [];
  const nPar = 1 + int(4);
  for (let p = 0; p < nPar; p++) {
    const sentences: string[] = [];
    const nSent = 2 + int(6);
    for (let s = 0; s < nSent; s++) {
      const kind = r();
      if (kind < 0.08) {
        const a = int(100);
        const b = 1 + int(50);
        const c = int(20);
        sentences.push(`Compute (${a} + ${b}) * ${c} - ${a} / ${b} = ${((a + b) * c - a / b).toFixed(3)}.`);
        continue;
      }
      if (kind < 0.12) {
        let t = '';
        const n = 8 + int(30);
        for (let i = 0; i < n; i++) t += CJK[int(CJK.length)];
        sentences.push(`${t}。`);
        continue;
      }
      const words: string[] = [];
      const n = 4 + int(16);
      for (let i = 0; i < n; i++) {
        const x = r();
        if (x < 0.04) words.push(String(int(10000)));
        else if (x < 0.06) words.push(`${int(1000)}.${int(100)}`);
        else if (x < 0.08) words.push(pick(CONTRACTIONS));
        else if (x < 0.09) words.push(pick(EMOJI));
        else words.push(pick(WORDS));
        if (i < n - 1 && r() < 0.08) words[words.length - 1] += ',';
      }
      words[0] = words[0][0].toUpperCase() + words[0].slice(1);
      sentences.push(words.join(' ') + pick(['.', '.', '.', '?', '!', ':']));
    }
    paragraphs.push(sentences.join(r() < 0.1 ? '  ' : ' '));
  }
  return paragraphs.join(r() < 0.2 ? '\n\n\t' : '\n\n');
}

const EDGE_CASES = [
  '',
  ' ',
  '   leading and trailing   ',
  'tabs\tand\r\nCRLF\r\n\r\n  mixed \n\n\n',
  "I'M SHOUTING, DON'T YOU'LL WE'VE",
  '<｜begin▁of▁sentence｜>You are helpful.<｜User｜>2+2?<｜Assistant｜><think>\nfour\n</think>\n\n4<｜end▁of▁sentence｜>',
  '<think><think></think></answer><answer>x</answer>',
  'emoji 👨‍👩‍👧 flags 🇯🇵🇫🇷 and e\u0301 combining, \u00a0nbsp, \u3000ideographic',
  '1234567890 3.14159 1,000,000 (12+7)*3=57',
  '日本語のテキストと中文混合 text',
];

function encodeAllOurs(tok: Tokenizer, docs: readonly string[]): number {
  let n = 0;
  for (const d of docs) n += tok.encode(d, { allowSpecial: true }).length;
  return n;
}

function encodeAllPeer(tok: PeerTokenizer, docs: readonly string[]): number {
  let n = 0;
  for (const d of docs) n += tok.encode(d, { add_special_tokens: false }).ids.length;
  return n;
}

export default async function tokenizerBench(args: string[]): Promise<Record<string, unknown>> {
  const quick = args.includes('--quick');
  const rounds = option(args, '--rounds', quick ? 3 : 5);
  const mb = option(args, '--mb', quick ? 1 : 4);
  const vocabSize = option(args, '--vocab', 4096);

  const r = rng(20261128);
  const docs: string[] = [];
  let bytes = 0;
  while (bytes < mb * 1e6) {
    const d = makeDocument(r);
    docs.push(d);
    bytes += Buffer.byteLength(d);
  }
  const textMb = bytes / 1e6;
  console.log(`text: ${docs.length} documents, ${textMb.toFixed(2)} MB of UTF-8`);

  let t0 = performance.now();
  const trained = Tokenizer.train(docs, { vocabSize });
  const trainS = (performance.now() - t0) / 1000;
  console.log(`trained a ${trained.vocabSize}-token vocabulary in ${trainS.toFixed(2)} s`);

  const dir = mkdtempSync(join(tmpdir(), 'tinyseek-bench-tokenizer-'));
  try {
    const file = join(dir, 'tokenizer.json');
    trained.save(file);
    const ours = Tokenizer.load(file);
    t0 = performance.now();
    const peer = new PeerTokenizer(JSON.parse(readFileSync(file, 'utf8')) as object, {});
    console.log(`peer loaded the same tokenizer.json in ${(performance.now() - t0).toFixed(0)} ms`);

    // Identical ids, document by document, plus edge cases.
    let tokens = 0;
    for (const [i, d] of [...EDGE_CASES, ...docs].entries()) {
      const a = ours.encode(d, { allowSpecial: true });
      const b = peer.encode(d, { add_special_tokens: false }).ids;
      tokens += a.length;
      const at = a.findIndex((x, k) => x !== b[k]);
      if (at >= 0 || a.length !== b.length) {
        const k = at >= 0 ? at : Math.min(a.length, b.length);
        throw new Error(
          `ids differ on text ${i} (${JSON.stringify(d.slice(0, 80))}…) at token ${k}: tinyseek ${JSON.stringify(a.slice(k, k + 8))}, ` +
            `peer ${JSON.stringify(b.slice(k, k + 8))}`,
        );
      }
      if (ours.decode(a) !== d) throw new Error(`tinyseek does not round-trip text ${i}: ${JSON.stringify(d.slice(0, 80))}`);
    }
    console.log(`identical ids on ${EDGE_CASES.length + docs.length} texts (${tokens} tokens, ${(bytes / tokens).toFixed(2)} bytes per token)`);

    // Warm both (JIT and caches), then interleaved timed rounds.
    encodeAllOurs(ours, docs);
    encodeAllPeer(peer, docs);
    const oursMbs: number[] = [];
    const peerMbs: number[] = [];
    const ratios: number[] = [];
    for (let round = 0; round < rounds; round++) {
      const timeOurs = (): number => {
        const s = performance.now();
        encodeAllOurs(ours, docs);
        return textMb / ((performance.now() - s) / 1000);
      };
      const timePeer = (): number => {
        const s = performance.now();
        encodeAllPeer(peer, docs);
        return textMb / ((performance.now() - s) / 1000);
      };
      let o: number;
      let p: number;
      if (round % 2 === 0) {
        o = timeOurs();
        p = timePeer();
      } else {
        p = timePeer();
        o = timeOurs();
      }
      oursMbs.push(o);
      peerMbs.push(p);
      ratios.push(o / p);
      console.log(`round ${round + 1}: tinyseek ${o.toFixed(2)} MB/s, peer ${p.toFixed(2)} MB/s, ratio ${(o / p).toFixed(2)}x`);
    }
    const ratio = median(ratios);
    console.log(`encode speed vs @huggingface/tokenizers: ${ratio.toFixed(2)}x (median of ${rounds} rounds; >1: tinyseek faster)`);
    return {
      encode_speed_vs_peer: Number(ratio.toFixed(3)),
      tinyseek_mb_per_s: Number(median(oursMbs).toFixed(3)),
      peer_mb_per_s: Number(median(peerMbs).toFixed(3)),
      vocab_size: ours.vocabSize,
      text_mb: Number(textMb.toFixed(3)),
      tokens: tokens,
      train_seconds: Number(trainS.toFixed(3)),
      rounds,
      identical_ids: true,
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
