// Distillation: the rejection sampler's filters on hand-made completions, the R1-Zero SFT
// examples' mask (only the completion is a target), the SFT set reader, and a small end-to-end
// distill run — the shipped reasoning model teaching a random tiny student — that raises the
// student's reward, with its sampling stage resumed after an interruption.
import assert from 'node:assert/strict';
import { copyFileSync, cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import {
  IGNORE_INDEX,
  type Problem,
  conversationFromCompletion,
  encodeChatProblemPrompt,
  encodeProblemPrompt,
  encodeR1ZeroExample,
  sftBatch,
  userTurnOf,
} from '../src/data/index.ts';
import { tensor } from '../src/core/index.ts';
import { evaluate, falseSteps, isRepetitive, rejectionOf } from '../src/eval/index.ts';
import { DistillConfig, distill, sampleTraces } from '../src/jobs/distill.ts';
import { loadCheckpoint, saveCheckpoint } from '../src/model/checkpoint.ts';
import { loadPreset, parseConfig } from '../src/model/config.ts';
import { DeepSeekV3 } from '../src/model/transformer.ts';
import { Tokenizer, encodeChat } from '../src/tokenizer/index.ts';
import { SftConfig, resolveConfig } from '../src/train/config.ts';
import { distillKl } from '../src/train/logit-distill.ts';
import { readSftFile, sft } from '../src/train/sft.ts';

const root = mkdtempSync(join(tmpdir(), 'tinyseek-distill-'));
after(() => rmSync(root, { recursive: true, force: true }));
const TEACHER = join(import.meta.dirname, '..', 'checkpoints', 'small-r1-zero');
const tok = Tokenizer.load(join(TEACHER, 'tokenizer.json'));
const problem: Problem = { task: 'countdown', nums: [3, 7, 12], target: 33, solution: '3 * 7 + 12', promptFrame: 'compact' };
const ok = '\n3, 7 (12):\n3+7=10. 10+12=22.\n3*7=21. 21+12=33.\n33 reached.\nCheck: 3*7=21, 21+12=33.\n</think>\n<answer>3 * 7 + 12</answer>';
const cand = (completion: string, truncated = false) => ({ completion, tokens: 50, truncated });

/** A random `tiny` model with the teacher's tokenizer. */
async function writeTinyModel(dir: string, seed: number): Promise<void> {
  const config = parseConfig({
    ...loadPreset('tiny'),
    vocab_size: tok.vocabSize,
    max_position_embeddings: 512,
    bos_token_id: tok.special.bos,
    eos_token_id: tok.special.eos,
  });
  await saveCheckpoint(dir, new DeepSeekV3(config, { seed }));
  copyFileSync(join(TEACHER, 'tokenizer.json'), join(dir, 'tokenizer.json'));
}

describe('rejection sampling filters', () => {
  test('each filter on a hand-made completion, first failing filter named', () => {
    assert.equal(rejectionOf(cand(ok), problem), null);
    assert.equal(rejectionOf(cand(ok, true), problem), 'truncated');
    assert.equal(rejectionOf(cand('3*7=21. 21+12=33. <answer>3 * 7 + 12</answer>'), problem), 'malformed', 'no </think>');
    assert.equal(rejectionOf(cand('3*7=21.\n</think>\n3 * 7 + 12'), problem), 'malformed', 'no answer after </think>');
    assert.equal(rejectionOf(cand(ok.replace('3 * 7 + 12</answer>', '3 * 7 - 12</answer>')), problem), 'wrong');
    assert.equal(rejectionOf(cand(ok.replace('3+7=10', '3+7=11')), problem), 'unsound', 'a right answer through a false step');
    const loop = `\n${'3+7=10. 10+12=22.\n'.repeat(3)}3*7=21. 21+12=33.\n</think>\n<answer>3 * 7 + 12</answer>`;
    assert.equal(rejectionOf(cand(loop), problem), 'repetitive');
  });

  test('falseSteps reads whole-number binary steps only', () => {
    assert.deepEqual(falseSteps('8*3=24. 24*4=92. 10-8=2. 4-9=-5. 12/4=3. 15/4=3. 12/8 no.'), ['24*4=92', '15/4=3']);
    assert.deepEqual(falseSteps('(8 - 3) * 4 = 20. 1.5+2=3.5. 20/3=6.67. 112+3=115'), []);
  });

  test('isRepetitive: a long line three times, or mostly repeated short lines', () => {
    assert.equal(isRepetitive('3+7=10. 10+12=22.\n3+7=10. 10+12=22.\n'), false);
    assert.equal(isRepetitive('3+7=10. 10+12=22.\n'.repeat(3)), true);
    assert.equal(isRepetitive(Array.from({ length: 12 }, (_, i) => (i % 3 === 0 ? 'no' : i % 3 === 1 ? 'yes' : 'ok')).join('\n')), true);
    assert.equal(isRepetitive(Array.from({ length: 12 }, (_, i) => `${i}+1=${i + 1}.`).join('\n')), false);
  });
});

describe('SFT sets for distillation', () => {
  test('an R1-Zero example: the prompt is not a target, the completion and its EOS are', () => {
    const e = encodeR1ZeroExample(tok, problem, ok);
    const prompt = encodeProblemPrompt(tok, problem);
    assert.deepEqual([...e.ids.slice(0, prompt.length)], [...prompt]);
    assert.equal(e.ids[e.ids.length - 1], tok.special.eos);
    assert.deepEqual([...e.mask.slice(0, prompt.length)], new Array(prompt.length).fill(0));
    assert.ok(e.mask.slice(prompt.length).every((m) => m === 1));
    const b = sftBatch([e], { pad: tok.special.pad, maxLen: 512 });
    const targets = [...b.targets];
    assert.ok(
      targets.slice(0, prompt.length - 1).every((t) => t === IGNORE_INDEX),
      'no loss on the prompt',
    );
    assert.deepEqual(targets.slice(prompt.length - 1), [...e.ids.slice(prompt.length)], 'the loss on every completion id, from the first after <think>');
  });

  test("R1's chat template: the evaluation prompt is the prefix of the SFT conversation, and evaluate asks with it", async () => {
    const prompt = [...encodeChatProblemPrompt(tok, problem)];
    const conv = encodeChat(tok, conversationFromCompletion(problem, ok));
    assert.deepEqual(conv.ids.slice(0, prompt.length), prompt, 'the generation prompt is an exact prefix of the trained conversation');
    assert.ok(
      conv.mask.slice(0, prompt.length).every((m, i) => m === 0 || i >= prompt.length - 2),
      'the prompt is not trained on (but <think>\n)',
    );
    assert.deepEqual(prompt.slice(-2, -1), [tok.special.thinkOpen]);
    const model = loadCheckpoint(TEACHER);
    const r = await evaluate(model, tok, { problems: [problem], n: 1, temperature: 0, maxNewTokens: 8, format: 'r1' });
    assert.equal(r.format, 'r1');
    assert.equal((await evaluate(model, tok, { problems: [problem], n: 1, temperature: 0, maxNewTokens: 8 })).format, 'r1-zero');
  });

  test("the chat template's user turn: the compact frame's short instruction for compact-frame problems, the task's own otherwise", () => {
    assert.equal(
      userTurnOf(problem).content,
      'Using the numbers [3, 7, 12], create an equation that equals 33. Think in <think> </think>, answer in <answer> </answer>.',
    );
    assert.match(
      userTurnOf({ ...problem, promptFrame: undefined }).content,
      /equals \d+\. You can use basic arithmetic operations .* for example <answer> \(1 \+ 2\) \/ 3 <\/answer>\.$/,
    );
  });

  test('readSftFile: problem lines in either template; clear errors for the wrong kind of line', async () => {
    const file = join(root, 'set.jsonl');
    writeFileSync(file, `${JSON.stringify({ problem, completion: ok })}\n`);
    const zero = await readSftFile(file, tok, 'r1-zero');
    assert.equal(zero.frame, 'compact');
    assert.ok('ids' in zero.items[0]);
    const chat = await readSftFile(file, tok, 'r1');
    assert.ok(Array.isArray(chat.items[0]));
    assert.equal((chat.items[0] as { role: string }[])[1].role, 'assistant');
    // a problem line's conversation is made from its problem, whatever "messages" it carries
    writeFileSync(file, `${JSON.stringify({ problem, completion: ok, messages: [{ role: 'user', content: 'stale' }] })}\n`);
    assert.deepEqual((await readSftFile(file, tok, 'r1')).items[0], conversationFromCompletion(problem, ok));
    writeFileSync(file, `${JSON.stringify({ messages: [{ role: 'user', content: 'hi' }] })}\n`);
    await assert.rejects(readSftFile(file, tok, 'r1-zero'), /set\.jsonl:1: template "r1-zero" needs \{"problem"/);
    writeFileSync(file, `${JSON.stringify({ problem: { task: 'chess' }, completion: ok })}\n`);
    await assert.rejects(readSftFile(file, tok, 'r1'), /set\.jsonl:1: a problem line needs "problem": \{"task": "countdown"/);
    writeFileSync(
      file,
      `${JSON.stringify({ problem, completion: ok })}\n${JSON.stringify({ problem: { ...problem, promptFrame: undefined }, completion: ok })}\n`,
    );
    await assert.rejects(readSftFile(file, tok, 'r1-zero'), /set\.jsonl:2: prompt frame "tinyzero" after "compact"/);
  });
});

describe('tinyseek distill', () => {
  test('the shipped reasoning model teaches a random tiny student; the sampling stage resumes where it stopped', async () => {
    const student = join(root, 'student');
    await writeTinyModel(student, 5);
    const c = DistillConfig.parse({
      name: 'd',
      runsDir: join(root, 'runs'),
      teacher: TEACHER,
      student,
      prompts: 24,
      chunk: 12,
      samples: 4,
      keepPerPrompt: 2,
      maxNewTokens: 160,
      sft: { steps: 200, batchSize: 8, seqLen: 256, evalEvery: 200, checkpointEvery: 100, logEvery: 1000, optim: { lr: 0.01, warmupSteps: 5 } },
      evalProblems: 0,
    });
    const quiet = (): void => undefined;

    // the sampling stage twice: once whole, once stopped after its first step and resumed
    const whole = await sampleTraces(c, { log: quiet });
    assert.ok(whole.kept >= 6, `${whole.kept} traces kept`);
    assert.equal(whole.kept + Object.values(whole.rejected).reduce((a, b) => a + b, 0), whole.candidates);
    const full = readFileSync(whole.file, 'utf8');
    const firstStep = JSON.parse(readFileSync(join(whole.dir, 'metrics.jsonl'), 'utf8').split('\n')[0]) as { kept: number };
    const c2 = { ...c, name: 'd2' };
    const dir2 = join(root, 'runs', 'd2-traces');
    cpSync(whole.dir, dir2, { recursive: true });
    rmSync(join(dir2, 'traces.jsonl'));
    rmSync(join(dir2, 'rejection.json'));
    writeFileSync(join(dir2, 'config.json'), `${JSON.stringify(c2, null, 2)}\n`);
    const keptBytes = Buffer.byteLength(
      full
        .split('\n')
        .slice(0, firstStep.kept)
        .map((l) => `${l}\n`)
        .join(''),
    );
    writeFileSync(join(dir2, 'traces.partial.jsonl'), `${full.slice(0, keptBytes)}{"half a line`);
    writeFileSync(
      join(dir2, 'state.json'),
      JSON.stringify({ steps: 1, bytes: keptBytes, kept: firstStep.kept, candidates: 48, rejected: {}, generatedTokens: 0, seconds: 0 }),
    );
    await assert.rejects(sampleTraces(c2, { log: quiet }), /interrupted sampling stage: continue it with --resume/);
    const lines: string[] = [];
    const resumed = await sampleTraces(c2, { resume: true, log: (s) => lines.push(s) });
    assert.ok(lines.some((l) => /resuming at step 2 of 2/.test(l)));
    assert.equal(readFileSync(resumed.file, 'utf8'), full, 'the resumed stage wrote the same traces');

    // SFT of the student on the traces raises its reward on those problems
    const kept = full
      .trim()
      .split('\n')
      .map((l) => (JSON.parse(l) as { problem: Problem }).problem);
    const problems = [...new Map(kept.map((p) => [JSON.stringify(p), p])).values()];
    const reward = async (dir: string): Promise<number> =>
      (await evaluate(loadCheckpoint(dir), tok, { problems, n: problems.length, temperature: 0, maxNewTokens: 160 })).meanReward;
    const before = await reward(student);
    const r = await distill(c, { log: quiet });
    assert.ok(r.finalDir);
    assert.equal(r.traces.reused, true);
    const afterSft = await reward(r.finalDir);
    assert.ok(afterSft > before + 0.3, `mean reward ${before.toFixed(3)} → ${afterSft.toFixed(3)}`);
    assert.deepEqual(JSON.parse(readFileSync(join(r.finalDir, 'chat.json'), 'utf8')), { template: 'r1-zero', frame: 'compact' });
    const report = JSON.parse(readFileSync(join(r.sftRunDir, 'distill.json'), 'utf8')) as { traces: { kept: number } };
    assert.equal(report.traces.kept, whole.kept);
  });
});

describe('logit distillation', () => {
  const softmax = (z: number[], tau: number): number[] => {
    const m = Math.max(...z.map((x) => x / tau));
    const e = z.map((x) => Math.exp(x / tau - m));
    const s = e.reduce((a, b) => a + b, 0);
    return e.map((x) => x / s);
  };
  const kl = (t: number[], s: number[], tau: number): number => {
    const pt = softmax(t, tau);
    const ps = softmax(s, tau);
    return tau * tau * pt.reduce((a, p, v) => a + p * (Math.log(p) - Math.log(ps[v])), 0);
  };

  test('KL_τ(teacher ‖ student) equals its hand value, over target positions only', () => {
    const s = [
      [1, 0, -1],
      [0.5, 2, 0],
      [3, 3, 3],
    ];
    const t = [
      [0, 1, 0],
      [2, -1, 1],
      [0, 0, 9],
    ];
    const targets = tensor([[1, -100, 2]], { dtype: 'int64' });
    const st = tensor([s]);
    const tt = tensor([t]);
    for (const tau of [1, 2]) {
      const want = (kl(t[0], s[0], tau) + kl(t[2], s[2], tau)) / 2;
      assert.ok(Math.abs(distillKl(st, tt, targets, { temperature: tau }).item() - want) < 1e-5, `τ ${tau}`);
    }
    assert.ok(Math.abs(distillKl(st, st, targets).item()) < 1e-6, 'zero when the student is the teacher');
    assert.throws(() => distillKl(st, tt, targets, { temperature: 0 }), /temperature must be > 0/);
  });

  test('SFT with a logit teacher trains, and refuses a teacher with another tokenizer', async () => {
    const [s, t] = [join(root, 'ls'), join(root, 'lt')];
    await writeTinyModel(s, 1);
    await writeTinyModel(t, 2);
    const data = join(root, 'logit.jsonl');
    writeFileSync(data, `${JSON.stringify({ problem, completion: ok })}\n`.repeat(4));
    const cfg = (over: Record<string, unknown>) =>
      resolveConfig(
        SftConfig,
        'sft-small',
        {
          name: `logit-${Object.keys(over).length}`,
          runsDir: join(root, 'runs'),
          from: s,
          data,
          template: 'r1-zero',
          steps: 3,
          evalEvery: 3,
          checkpointEvery: 3,
          logEvery: 100,
          optim: { warmupSteps: 1 },
          ...over,
        },
        'test',
      );
    const r = await sft(cfg({ logitTeacher: t, logitWeight: 0.7, logitTemperature: 2 }), { log: () => undefined });
    assert.ok(r.finalDir);
    const losses = readFileSync(join(r.runDir, 'metrics.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { kind: string; loss?: number; lm_loss?: number })
      .filter((x) => x.kind === 'train');
    assert.equal(losses.length, 3);
    assert.ok(
      losses.every((x) => Number.isFinite(x.loss) && x.loss !== x.lm_loss),
      'the loss mixes the KL term into the cross-entropy',
    );
    const other = join(root, 'other-tok');
    cpSync(t, other, { recursive: true });
    writeFileSync(join(other, 'tokenizer.json'), readFileSync(join(TEACHER, 'tokenizer.json'), 'utf8').replace('"model"', ' "model"'));
    await assert.rejects(sft(cfg({ logitTeacher: other, name: 'logit-x' }), { log: () => undefined }), /one tokenizer for teacher and student/);
  });
});
