// The server's text side: chat templates from chat.json (the R1-Zero frame encodes exactly as the
// model's training prompts), answer-tag stripping while streaming, the JSON-mode recogniser and its
// constraint, and the 400/422 split of schema errors.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { countdownProblem, encodeProblemPrompt } from '../src/data/index.ts';
import { ChatFormat, TagStripper } from '../src/server/chat-format.ts';
import { JsonConstraint, recognisesJson } from '../src/server/json-constraint.ts';
import { ChatRequest, schemaError } from '../src/server/schemas.ts';
import { Tokenizer } from '../src/tokenizer/index.ts';

const shipped = join(import.meta.dirname, '..', 'checkpoints', 'small-base');

describe('chat formats', () => {
  test('the R1-Zero compact frame gives the ids of the training prompt', () => {
    const tok = Tokenizer.load(join(shipped, 'tokenizer.json'));
    const f = ChatFormat.load(shipped, tok);
    const p = countdownProblem([3, 7, 12], 33, '3 * 7 + 12');
    const want = Array.from(encodeProblemPrompt(tok, { ...p, promptFrame: 'compact' }));
    const got = f.prompt([{ role: 'user', content: 'Using the numbers [3, 7, 12], create an equation that equals 33.' }]);
    assert.deepEqual(got.ids, want);
    assert.equal(got.startInReasoning, true);
    assert.deepEqual(f.stopSequences(), [[tok.special.answerClose]]);
  });

  test('a checkpoint without chat.json, or with a bad one, is refused with the fix', () => {
    const dir = mkdtempSync(join(tmpdir(), 'tinyseek-chat-'));
    const tok = Tokenizer.load(join(shipped, 'tokenizer.json'));
    try {
      assert.throws(() => ChatFormat.load(dir, tok), /declares no chat template: add .*chat\.json with \{"template": "r1"\}/);
      writeFileSync(join(dir, 'chat.json'), '{"template": "chatml"}');
      assert.throws(() => ChatFormat.load(dir, tok), /template/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('answer tags are stripped however the stream splits them', () => {
    const text = 'x <answer>3 * 7 + 12</answer> y';
    for (let cut = 1; cut < text.length; cut++) {
      const s = new TagStripper(['<answer>', '</answer>']);
      const out = s.push(text.slice(0, cut)) + s.push(text.slice(cut)) + s.end();
      assert.equal(out, 'x 3 * 7 + 12 y', `cut at ${cut}`);
    }
  });
});

describe('JSON mode', () => {
  test('the recogniser accepts JSON texts and refuses the rest', () => {
    for (const ok of ['{}', '[]', '{"a": [1, -2.5e3, "x\\n\\u00e9", true, null]}', '"s"', '[{"k": {}}]']) assert.ok(recognisesJson(ok), ok);
    for (const bad of ['{', '{"a" 1}', '[1,]', '{a: 1}', 'tru', '01', '{"a": 1}}', '[1 2]']) assert.ok(!recognisesJson(bad), bad);
  });

  test('the constraint only lets JSON through, and closes it before the budget ends', () => {
    const texts = ['{', '}', '"', 'a', ':', '1', ',', ' ', '[', ']', 'x}', '</think>'];
    const blocked = new Set([11]);
    for (const budget of [6, 9, 14]) {
      const c = new JsonConstraint(texts, blocked, '', budget);
      let out = '';
      // a greedy "model" that prefers opening things: the highest allowed id in this order
      const prefer = [8, 0, 2, 3, 4, 5, 6, 9, 1, 10, 7];
      for (let i = 0; i < budget && !c.complete; i++) {
        const id = prefer.find((x) => c.allowed(x))!;
        assert.ok(id !== undefined, `no id allowed after ${JSON.stringify(out)}`);
        c.advance(id);
        out += texts[id];
      }
      assert.ok(c.complete, `budget ${budget}: ${JSON.stringify(out)} is incomplete`);
      assert.doesNotThrow(() => JSON.parse(out), out);
    }
  });

  test('a free part runs to its opener first', () => {
    const texts = ['th', 'ink', '</think>', '{', '}', ' '];
    const c = new JsonConstraint(texts, new Set([2]), '</think>', 20);
    assert.ok(c.allowed(0) && c.allowed(2));
    c.advance(0);
    c.advance(2);
    assert.ok(!c.allowed(0) && c.allowed(3) && !c.allowed(2));
  });
});

describe('request schemas', () => {
  test('a wrong shape is 400, a value out of range is 422, each naming the field', () => {
    const shape = ChatRequest.safeParse({ model: 'm', messages: 'hi' });
    assert.ok(!shape.success);
    assert.deepEqual(schemaError(shape.error).status, 400);
    assert.match(schemaError(shape.error).message, /^messages:/);
    const range = ChatRequest.safeParse({ model: 'm', messages: [{ role: 'user', content: 'x' }], top_p: 0 });
    assert.ok(!range.success);
    assert.equal(schemaError(range.error).status, 422);
    assert.match(schemaError(range.error).message, /^top_p:/);
    const user = ChatRequest.safeParse({ model: 'm', messages: [{ role: 'user', content: 'x' }], user_id: 'a b' });
    assert.ok(!user.success);
    assert.equal(schemaError(user.error).status, 422);
  });
});
