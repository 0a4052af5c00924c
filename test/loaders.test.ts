// Loaders: user task files (JSONL and parquet, bad rows in stop and skip modes), packing for
// pretraining, SFT batches with assistant-token masks, RL prompt batches, deterministic shuffling
// and resuming from a cursor — with the real tokenizer.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { parquetWriteFile } from 'hyparquet-writer';
import { Tokenizer } from '../src/tokenizer/index.ts';
import {
  BadRowError,
  EpochIterator,
  IGNORE_INDEX,
  PretrainLoader,
  PromptLoader,
  SftLoader,
  conversationFromCompletion,
  countdown,
  decodeCompletion,
  encodeDocument,
  encodePrompt,
  encodeSftExample,
  encodeText,
  epochPermutation,
  generateCorpus,
  generateProblems,
  loadCountdownFile,
  packDocuments,
  packedBatch,
  promptBatch,
  promptOf,
  readLines,
  rewardOf,
  sftBatch,
  toTensor,
  type CorpusDocument,
  type Problem,
} from '../src/data/index.ts';

let dir: string;
let tok: Tokenizer;
let docs: CorpusDocument[];
before(() => {
  dir = mkdtempSync(join(tmpdir(), 'tinyseek-data-'));
  docs = generateCorpus(400, { seed: 3 });
  tok = Tokenizer.train(
    docs.map((d) => d.text),
    { vocabSize: 500 },
  );
});
after(() => rmSync(dir, { recursive: true, force: true }));

describe('JSONL task files', () => {
  const good = [
    { target: 98, nums: [44, 19, 35] },
    { target: 24, nums: [3, 3, 8, 8], extra: 'ignored' },
  ];

  test('streaming line reader: line numbers, CRLF, BOM, no final newline, chunk boundaries inside UTF-8', async () => {
    const path = join(dir, 'lines.jsonl');
    writeFileSync(path, '\uFEFFfirst\r\n\n€€€ third\nlast');
    const lines = [];
    for await (const l of readLines(path, { chunkBytes: 3 })) lines.push(l);
    assert.deepEqual(lines, [
      { lineNo: 1, text: 'first' },
      { lineNo: 2, text: '' },
      { lineNo: 3, text: '€€€ third' },
      { lineNo: 4, text: 'last' },
    ]);
  });

  test("rows in TinyZero's schema become the same task objects", async () => {
    const path = join(dir, 'good.jsonl');
    writeFileSync(path, `${good.map((r) => JSON.stringify(r)).join('\n')}\n\n`);
    const { problems, rows, report } = await loadCountdownFile(path);
    assert.deepEqual(problems, [
      { task: 'countdown', nums: [44, 19, 35], target: 98, solution: null },
      { task: 'countdown', nums: [3, 3, 8, 8], target: 24, solution: null },
    ]);
    assert.deepEqual(rows, [1, 2]);
    assert.deepEqual(report, { file: path, format: 'jsonl', unit: 'line', rowsRead: 2, rowsLoaded: 2, skipped: [] });
    assert.equal(countdown.reward('<answer>44 + 19 + 35</answer>', problems[0]), 1);
    assert.ok(countdown.prompt(problems[1]).includes('Using the numbers [3, 3, 8, 8], create an equation that equals 24.'));
  });

  test('verl-preprocessed rows (reward_model.ground_truth) are read too', async () => {
    const path = join(dir, 'verl.jsonl');
    writeFileSync(path, JSON.stringify({ prompt: [], reward_model: { style: 'rule', ground_truth: { target: 5, numbers: [2, 3] } } }));
    const { problems } = await loadCountdownFile(path);
    assert.deepEqual(problems[0].nums, [2, 3]);
  });

  const corrupt = [
    JSON.stringify(good[0]),
    '{"target": 10, "nums": [1, "two", 3]}',
    '{not json',
    JSON.stringify(good[1]),
    '{"nums": [1, 2]}',
    '[1, 2, 3]',
    '{"target": 3.5, "nums": [1]}',
    '{"target": 3, "nums": [-1, 4]}',
  ];

  test('stop mode: the first bad row throws with its line number and field', async () => {
    const path = join(dir, 'bad.jsonl');
    writeFileSync(path, corrupt.join('\n'));
    await assert.rejects(loadCountdownFile(path), (e: unknown) => {
      assert.ok(e instanceof BadRowError);
      assert.equal(e.bad.row, 2);
      assert.equal(e.bad.field, 'nums.1');
      assert.match(e.message, /bad\.jsonl: line 2, field "nums\.1": expected an integer, got the string "two"\. Fix that line, or skip bad rows/);
      return true;
    });
  });

  test('skip mode: every bad row is reported with its line, field and reason; good rows load', async () => {
    const path = join(dir, 'bad.jsonl');
    writeFileSync(path, corrupt.join('\n'));
    const { problems, rows, report } = await loadCountdownFile(path, { onBadRow: 'skip' });
    assert.deepEqual(rows, [1, 4]);
    assert.equal(problems.length, 2);
    assert.equal(report.rowsRead, 8);
    assert.deepEqual(
      report.skipped.map((b) => [b.row, b.field]),
      [
        [2, 'nums.1'],
        [3, null],
        [5, 'target'],
        [6, null],
        [7, 'target'],
        [8, 'nums.0'],
      ],
    );
    assert.match(report.skipped[1].reason, /not valid JSON/);
    assert.match(report.skipped[2].reason, /missing/);
    assert.match(report.skipped[5].reason, /negative/);
  });

  test('a missing file or unknown extension is a clear error', async () => {
    await assert.rejects(loadCountdownFile(join(dir, 'nope.jsonl')), /no such file; check the path/);
    await assert.rejects(loadCountdownFile(join(dir, 'x.csv')), /cannot tell the format/);
  });
});

describe('parquet task files', () => {
  test('TinyZero schema (target int64, nums list<int>) loads; a row whose nums is not a list of ints is reported', async () => {
    const path = join(dir, 'tasks.parquet');
    parquetWriteFile({
      filename: path,
      columnData: [
        { name: 'target', data: [98n, 10n, 5n, 24n], type: 'INT64' },
        {
          name: 'nums',
          data: [
            [44, 19, 35],
            [1, 2, 3, 4],
            [1, null, 3],
            [3, 3, 8, 8],
          ],
        },
      ],
    });
    const skip = await loadCountdownFile(path, { onBadRow: 'skip' });
    assert.deepEqual(
      skip.problems.map((p) => [p.target, p.nums]),
      [
        [98, [44, 19, 35]],
        [10, [1, 2, 3, 4]],
        [24, [3, 3, 8, 8]],
      ],
    );
    assert.deepEqual(skip.rows, [1, 2, 4]);
    assert.deepEqual(skip.report.skipped, [{ row: 3, field: 'nums.1', reason: 'expected an integer, got null' }]);
    assert.equal(skip.report.unit, 'row');
    await assert.rejects(loadCountdownFile(path), /tasks\.parquet: row 3, field "nums\.1": expected an integer, got null/);
  });

  test('a nums column of strings, and a missing column', async () => {
    const path = join(dir, 'strings.parquet');
    parquetWriteFile({
      filename: path,
      columnData: [
        { name: 'target', data: [7, 8], type: 'INT32' },
        { name: 'nums', data: ['[1, 2]', '3 5'], type: 'STRING' },
      ],
    });
    const r = await loadCountdownFile(path, { onBadRow: 'skip' });
    assert.deepEqual(
      r.report.skipped.map((b) => [b.row, b.field, b.reason]),
      [
        [1, 'nums', 'expected a list of integers, got the string "[1, 2]"'],
        [2, 'nums', 'expected a list of integers, got the string "3 5"'],
      ],
    );
    const path2 = join(dir, 'nonums.parquet');
    parquetWriteFile({ filename: path2, columnData: [{ name: 'target', data: [7], type: 'INT32' }] });
    await assert.rejects(loadCountdownFile(path2), /row 1, field "nums": missing/);
  });

  test('a file that is not parquet', async () => {
    const path = join(dir, 'fake.parquet');
    writeFileSync(path, 'hello');
    await assert.rejects(loadCountdownFile(path), /not a readable parquet file/);
  });
});

describe('packing for pretraining', () => {
  // bos = 0, eos = 1; three documents of 5, 4 and 6 tokens: stream of 15 tokens.
  const A = [0, 10, 11, 12, 1];
  const B = [0, 20, 21, 1];
  const C = [0, 30, 31, 32, 33, 1];
  const stream = [...A, ...B, ...C];

  test('windows of seqLen + 1 tokens, stride seqLen, inputs and next-token targets; tail dropped', () => {
    const p = packDocuments([A, B, C], { seqLen: 4, bos: 0, eos: 1 });
    assert.equal(p.numSequences, 3); // floor((15 - 1) / 4)
    assert.equal(p.droppedTokens, 15 - (3 * 4 + 1));
    assert.deepEqual([...p.stream], stream);
    const b = packedBatch(p, [0, 1, 2]);
    assert.deepEqual(b.shape, [3, 4]);
    assert.deepEqual([...b.inputs], [0, 10, 11, 12, 1, 0, 20, 21, 1, 0, 30, 31]);
    assert.deepEqual([...b.targets], [10, 11, 12, 1, 0, 20, 21, 1, 0, 30, 31, 32]);
    assert.deepEqual([...b.segments], [0, 0, 0, 0, 0, 1, 1, 1, 0, 1, 1, 1]);
  });

  test("crossDocument 'ignore' masks exactly the EOS → next BOS targets", () => {
    const p = packDocuments([A, B, C], { seqLen: 4, bos: 0, eos: 1, crossDocument: 'ignore' });
    const b = packedBatch(p, [0, 1, 2]);
    assert.deepEqual([...b.targets], [10, 11, 12, 1, IGNORE_INDEX, 20, 21, 1, IGNORE_INDEX, 30, 31, 32]);
    assert.deepEqual([...b.inputs], [0, 10, 11, 12, 1, 0, 20, 21, 1, 0, 30, 31]);
  });

  test('every stream token after the first is a target exactly once', () => {
    const docs = Array.from({ length: 30 }, (_, i) => [0, ...Array.from({ length: (i % 7) + 1 }, (_, j) => 100 + i * 10 + j), 1]);
    const p = packDocuments(docs, { seqLen: 8, bos: 0, eos: 1 });
    const b = packedBatch(
      p,
      Array.from({ length: p.numSequences }, (_, i) => i),
    );
    assert.deepEqual([...b.targets], [...p.stream.slice(1, p.numSequences * 8 + 1)]);
  });

  test('documents must be encoded with BOS and EOS; too little data is a clear error', () => {
    assert.throws(() => packDocuments([[5, 6]], { seqLen: 4, bos: 0, eos: 1 }), /must start with BOS/);
    const tiny = packDocuments([A], { seqLen: 8, bos: 0, eos: 1 });
    assert.equal(tiny.numSequences, 0);
    assert.throws(() => new PretrainLoader(tiny, { batchSize: 2, seed: 0 }), /fewer than one sequence/);
  });

  test('with the real tokenizer: corpus documents round-trip through packing', () => {
    const ids = docs.map((d) => encodeDocument(tok, d.text));
    const p = packDocuments(ids, { seqLen: 64, bos: tok.special.bos, eos: tok.special.eos });
    const b = packedBatch(p, [0]);
    assert.equal(b.inputs[0], tok.special.bos);
    const text = tok.decode([...b.inputs, b.targets[63]]);
    assert.ok(docs[0].text.startsWith(text.replace('<｜begin▁of▁sentence｜>', '')), text);
    const first = encodeDocument(tok, docs[0].text);
    assert.deepEqual([...b.inputs.slice(0, Math.min(64, first.length))], first.slice(0, 64));
  });

  test('PretrainLoader: deterministic, shuffled, resumable from its saved state', () => {
    const ids = docs.map((d) => encodeDocument(tok, d.text));
    const p = packDocuments(ids, { seqLen: 32, bos: tok.special.bos, eos: tok.special.eos });
    const a = new PretrainLoader(p, { batchSize: 8, seed: 1 });
    const b = new PretrainLoader(p, { batchSize: 8, seed: 1 });
    const first = [a.next(), a.next()];
    assert.deepEqual(first, [b.next(), b.next()]);
    assert.notDeepEqual(first[0].sequenceIds, [0, 1, 2, 3, 4, 5, 6, 7]);
    const saved = JSON.parse(JSON.stringify(a.state()));
    const cont = [a.next(), a.next(), a.next()];
    const resumed = new PretrainLoader(p, { batchSize: 8, seed: 999, resume: saved });
    assert.deepEqual([resumed.next(), resumed.next(), resumed.next()], cont);
  });

  test('toTensor gives an int64 tensor of the same shape and values', () => {
    const p = packDocuments([A, B, C], { seqLen: 4, bos: 0, eos: 1, crossDocument: 'ignore' });
    const b = packedBatch(p, [0, 1]);
    const t = toTensor({ data: b.targets, shape: b.shape });
    assert.equal(t.dtype, 'int64');
    assert.deepEqual(t.shape, [2, 4]);
    assert.deepEqual(t.tolist(), [
      [10, 11, 12, 1],
      [IGNORE_INDEX, 20, 21, 1],
    ]);
    t.dispose();
    assert.throws(() => toTensor({ data: new Int32Array(3), shape: [2, 2] }), /needs 4/);
  });
});

describe('SFT batches', () => {
  const taskDocs = (): CorpusDocument[] => docs.filter((d) => d.problem && d.completion.includes('</answer>')).slice(0, 6);

  test('targets are the next token on assistant tokens only, -100 elsewhere (real tokenizer, encodeChat mask)', () => {
    const d = taskDocs()[0];
    const conv = conversationFromCompletion(d.problem!, d.completion);
    assert.equal(conv[1].content, d.completion.slice(d.completion.indexOf('</think>') + 8).trim());
    const ex = encodeSftExample(tok, conv);
    const b = sftBatch([ex], { pad: tok.special.pad, maxLen: 4096 });
    const L = b.shape[1];
    assert.equal(L, ex.ids.length - 1);
    assert.equal(b.lengths[0], L);
    const learned: number[] = [];
    for (let t = 0; t < L; t++) {
      assert.equal(b.inputs[t], ex.ids[t]);
      if (ex.mask[t + 1]) {
        assert.equal(b.targets[t], ex.ids[t + 1]);
        learned.push(b.targets[t]);
      } else assert.equal(b.targets[t], IGNORE_INDEX);
    }
    const learnedText = tok.decode(learned);
    assert.ok(learnedText.startsWith('<think>\n'), learnedText.slice(0, 30));
    assert.ok(learnedText.endsWith(`${conv[1].content}<｜end▁of▁sentence｜>`));
    assert.ok(!learnedText.includes('Show your work'), 'the user turn is never a target');
    const firstLearn = ex.mask.indexOf(1);
    assert.equal(tok.decode([ex.ids[firstLearn - 1]]), '<｜Assistant｜>');
  });

  test('right padding: pad id in inputs, -100 in targets, lengths per row; padToMax gives fixed shapes', () => {
    const exs = taskDocs().map((d) => encodeSftExample(tok, conversationFromCompletion(d.problem!, d.completion)));
    const b = sftBatch(exs, { pad: tok.special.pad, maxLen: 4096 });
    const L = Math.max(...exs.map((e) => e.ids.length - 1));
    assert.deepEqual(b.shape, [exs.length, L]);
    exs.forEach((e, r) => {
      assert.equal(b.lengths[r], e.ids.length - 1);
      for (let t = b.lengths[r]; t < L; t++) {
        assert.equal(b.inputs[r * L + t], tok.special.pad);
        assert.equal(b.targets[r * L + t], IGNORE_INDEX);
      }
    });
    const fixed = sftBatch(exs, { pad: tok.special.pad, maxLen: 2048, padToMax: true });
    assert.deepEqual(fixed.shape, [exs.length, 2048]);
    const cut = sftBatch(exs, { pad: tok.special.pad, maxLen: 16 });
    assert.deepEqual(cut.shape, [exs.length, 16]);
  });

  test('SftLoader drops too-long and unlearnable examples, shuffles by seed and resumes', () => {
    const convs = taskDocs().map((d) => conversationFromCompletion(d.problem!, d.completion));
    convs.push([{ role: 'user', content: 'no assistant turn' }]);
    const lens = convs.map((c) => encodeSftExample(tok, c).ids.length);
    const maxLen = Math.max(...lens.slice(0, 6)) - 2; // the longest example no longer fits
    const loader = new SftLoader(tok, convs, { batchSize: 2, seed: 4, pad: tok.special.pad, maxLen });
    assert.deepEqual(loader.unlearnable, [6]);
    assert.deepEqual(loader.dropped, [lens.slice(0, 6).indexOf(Math.max(...lens.slice(0, 6)))]);
    loader.next();
    const state = loader.state();
    const next = [loader.next(), loader.next(), loader.next()];
    const again = new SftLoader(tok, convs, { batchSize: 2, seed: 4, pad: tok.special.pad, maxLen, resume: state });
    assert.deepEqual([again.next(), again.next(), again.next()], next);
  });
});

describe('RL prompt batches', () => {
  const problems: Problem[] = [
    ...generateProblems('countdown', { seed: 0, split: 'train', n: 2 }),
    ...generateProblems('multiplication', { seed: 0, split: 'train', n: 1 }),
    ...generateProblems('wordproblems', { seed: 0, split: 'train', n: 1 }),
  ];

  test('left padding: every prompt ends in the last column; lengths and padLeft describe the rows', () => {
    const b = promptBatch(tok, problems);
    const encoded = problems.map((p) => encodePrompt(tok, promptOf(p)));
    const L = Math.max(...encoded.map((e) => e.length));
    assert.deepEqual(b.shape, [4, L]);
    encoded.forEach((e, r) => {
      assert.equal(b.lengths[r], e.length);
      assert.equal(b.padLeft[r], L - e.length);
      const row = [...b.ids.slice(r * L, (r + 1) * L)];
      assert.deepEqual(row.slice(b.padLeft[r]), e);
      assert.ok(row.slice(0, b.padLeft[r]).every((x) => x === tok.special.pad));
      assert.equal(row[b.padLeft[r]], tok.special.bos);
      assert.equal(row[L - 1], tok.special.thinkOpen, 'prompts end with the <think> token');
    });
    assert.deepEqual(b.problems, problems);
  });

  test('groupSize repeats each prompt in consecutive rows (GRPO groups)', () => {
    const b = promptBatch(tok, problems.slice(0, 2), { groupSize: 3 });
    assert.equal(b.shape[0], 6);
    const L = b.shape[1];
    for (let g = 0; g < 3; g++) assert.deepEqual([...b.ids.slice(g * L, (g + 1) * L)], [...b.ids.slice(0, L)]);
    assert.deepEqual(
      b.problems.map((p) => problems.indexOf(p)),
      [0, 0, 0, 1, 1, 1],
    );
    assert.throws(() => promptBatch(tok, problems, { maxPromptLen: 10 }), /more than maxPromptLen 10/);
  });

  test('a prompt is an exact token prefix of prompt + completion, and decodeCompletion gives the scored text', () => {
    const d = docs.find((x) => x.problem && x.prompt === promptOf(x.problem) && x.completion.includes('<answer>'))!;
    const promptIds = encodePrompt(tok, d.prompt);
    const full = [tok.special.bos, ...encodeText(tok, d.text)];
    assert.deepEqual(full.slice(0, promptIds.length), promptIds);
    const completionIds = [...full.slice(promptIds.length), tok.special.eos, 77, 78];
    const text = decodeCompletion(tok, completionIds);
    assert.equal(text, d.completion);
    assert.equal(rewardOf(text, d.problem!), rewardOf(d.completion, d.problem!));
  });

  test('control-token strings in text stay text; the four tags become their ids', () => {
    const ids = encodeText(tok, 'x<｜end▁of▁sentence｜>y<think>z</answer>');
    assert.ok(!ids.includes(tok.special.eos));
    assert.ok(ids.includes(tok.special.thinkOpen) && ids.includes(tok.special.answerClose));
    assert.equal(tok.decode(ids), 'x<｜end▁of▁sentence｜>y<think>z</answer>');
  });

  test('PromptLoader: shuffled epochs over the problems, resumable', () => {
    const ps = generateProblems('countdown', { seed: 1, split: 'train', n: 10 });
    const l = new PromptLoader(tok, ps, { batchSize: 4, seed: 2, groupSize: 2 });
    const seen: Problem[] = [];
    for (let i = 0; i < 5; i++) {
      const b = l.next();
      assert.equal(b.shape[0], 8);
      for (let r = 0; r < 8; r += 2) seen.push(b.problems[r]);
    }
    assert.equal(new Set(seen.slice(0, 10)).size, 10, 'the first epoch visits every problem once');
    const st = l.state();
    assert.deepEqual(st.epoch * 10 + st.index, 20);
    const after1 = l.next();
    assert.deepEqual(new PromptLoader(tok, ps, { batchSize: 4, seed: 2, groupSize: 2, resume: st }).next(), after1);
  });
});

describe('shuffling and cursors', () => {
  test('Fisher–Yates permutations: deterministic by (seed, epoch), a permutation, different per epoch', () => {
    const p0 = epochPermutation(100, 'seed', 0);
    assert.deepEqual(p0, epochPermutation(100, 'seed', 0));
    assert.deepEqual(
      [...p0].sort((a, b) => a - b),
      Array.from({ length: 100 }, (_, i) => i),
    );
    assert.notDeepEqual(p0, epochPermutation(100, 'seed', 1));
    assert.notDeepEqual(p0, epochPermutation(100, 'other', 0));
  });

  test('an iterator resumed from any cursor continues exactly as the original', () => {
    const items = Array.from({ length: 7 }, (_, i) => `item${i}`);
    const ref = new EpochIterator(items, { seed: 11 }).take(30);
    for (let k = 0; k <= 30; k++) {
      const it = new EpochIterator(items, { seed: 11 });
      it.take(k);
      const cursor = it.cursor;
      assert.deepEqual(cursor, { epoch: Math.floor(k / 7) - (k % 7 === 0 && k > 0 ? 1 : 0), index: k % 7 === 0 && k > 0 ? 7 : k % 7 });
      const resumed = new EpochIterator(items, { seed: 11, cursor });
      assert.deepEqual(resumed.take(30 - k), ref.slice(k));
    }
    for (let e = 0; e < 4; e++) assert.equal(new Set(ref.slice(e * 7, e * 7 + 7)).size, 7, `epoch ${e} is a permutation`);
  });

  test('resuming on a dataset of another size is refused with the fix', () => {
    const it = new EpochIterator([1, 2, 3], { seed: 0 });
    it.take(2);
    assert.throws(() => EpochIterator.resume([1, 2, 3, 4], it.state()), /saved for 3 items but the dataset has 4/);
    assert.throws(() => new EpochIterator([1, 2], { seed: 0, cursor: { epoch: 0, index: 5 } }), /invalid cursor/);
    assert.throws(() => new EpochIterator([], { seed: 0 }), /empty/);
    assert.deepEqual(new EpochIterator([1, 2, 3], { seed: 0, shuffle: false }).take(4), [1, 2, 3, 1]);
  });
});
