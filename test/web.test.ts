/// <reference lib="dom" />
// The web pages in headless Chromium (Debian's chromium, driven by playwright-core) against a real
// server on 127.0.0.1: the chat page streams thinking and collapses it with its duration, stop
// aborts the request and frees the server's slot, conversations survive a reload, model output
// cannot run script; the runs dashboard draws a run's curves and follows its metrics file as it
// grows. Plus the runs API and its byte-offset reads.
import assert from 'node:assert/strict';
import { appendFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { type Browser, type Page, chromium } from 'playwright-core';
import { selfCheckSpans } from '../src/rl/selfcheck.ts';
import { Accounts } from '../src/server/accounts.ts';
import { type RunningServer, startServer } from '../src/server/app.ts';
import { RunsDirectory, tailJsonl } from '../src/server/runs-data.ts';
import { CONTENT_SECURITY_POLICY, startRunsServer } from '../src/server/web.ts';
import { writeChatCheckpoint } from './fixtures/serve-model.ts';

const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';
const root = mkdtempSync(join(tmpdir(), 'tinyseek-web-'));
const ckpt = join(root, 'tiny-chat');
const runsDir = join(root, 'runs');
let server: RunningServer;
let browser: Browser;

const line = (r: object): string => `${JSON.stringify(r)}\n`;
const rlRecord = (step: number): object => ({
  kind: 'rl',
  step,
  reward: 0.2 + 0.1 * step,
  reward_by_fn: { accuracy: 0.1 * step, format: 0.9 },
  accuracy: 0.1 * step,
  completion_len_mean: 90 + step,
  self_check_share: 0.5,
  revise_share: 0.1,
  kl: 0.001 * step,
  entropy: 1.2,
  zero_spread_share: 0.4,
  rollout_s: 10,
  update_s: 5,
  gen_tokens_per_s: 3000,
  expert_load_max_over_mean: 1.5,
  expert_load: { '1': 1.5, '2': 1.3 },
});

function writeRun(): void {
  const dir = join(runsDir, 'demo');
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'config.json'), JSON.stringify({ steps: 10, task: 'countdown' }));
  writeFileSync(join(dir, 'metrics.jsonl'), [1, 2, 3].map((s) => line(rlRecord(s))).join('') + line({ kind: 'eval', step: 3, heldout_pass1: 0.25 }));
  const held = (step: number, completion: string, correct: boolean): object => ({
    step,
    heldout: true,
    index: 0,
    problem: JSON.stringify({ task: 'countdown', numbers: [3, 7, 12], target: 33 }),
    reference: '3 * 7 + 12',
    completion,
    reward: correct ? 1 : 0,
    correct,
  });
  writeFileSync(
    join(dir, 'samples.jsonl'),
    line(held(1, '<think>7 + 12 = 19. 19 + 3 = 22. Not 33.</think> <answer>7 + 12 + 3</answer>', false)) +
      line({ step: 2, problem: '{"numbers":[1,2,3],"target":6}', completion: '<think>1 + 2 = 3. Let me check: 3 + 3 = 6. Yes</think>', reward: 1 }) +
      line(held(3, '<think>3 * 7 = 21. 21 + 12 = 33. Let me verify: 21 + 12 = 33. Correct</think> <answer>3 * 7 + 12</answer>', true)),
  );
}

before(async () => {
  await writeChatCheckpoint(ckpt, { maxPositions: 4096 });
  writeRun();
  server = await startServer({ checkpoint: ckpt, accounts: null, runsDir, engine: { blockSize: 16, maxBatch: 2 } });
  await server.engine.ready;
  browser = await chromium.launch({ executablePath: CHROMIUM, headless: true });
});
after(async () => {
  await browser?.close();
  await server?.close();
  rmSync(root, { recursive: true, force: true });
});

/** A page whose chat settings are set before its script runs. */
async function chatPage(settings: object, viewport = { width: 1100, height: 800 }): Promise<Page> {
  const page = await browser.newPage({ viewport });
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(e.message));
  await page.addInitScript({ content: `localStorage.setItem('tinyseek.settings', ${JSON.stringify(JSON.stringify(settings))});` });
  await page.goto(`${server.url}/`);
  await page.waitForFunction(() => (document.getElementById('model') as HTMLSelectElement).options.length > 0);
  assert.deepEqual(errors, []);
  return page;
}

const health = async (): Promise<{ running: number; in_server: number }> =>
  (await (await fetch(`${server.url}/health`)).json()) as { running: number; in_server: number };

describe('the chat page', () => {
  test('is served with a script-src self policy and every asset from this server', async () => {
    const r = await fetch(`${server.url}/`);
    assert.equal(r.status, 200);
    assert.equal(r.headers.get('content-security-policy'), CONTENT_SECURITY_POLICY);
    const html = await r.text();
    assert.doesNotMatch(html, /https?:\/\//, 'no asset from another origin');
    const js = await fetch(`${server.url}/assets/chat.js`);
    assert.equal(js.status, 200);
    assert.match(js.headers.get('content-type') ?? '', /javascript/);
    assert.match(await js.text(), /DOMPurify|sanitize/);
  });

  test('streams the thinking under "Thinking…", then collapses it to "Thought for N seconds"; the next turn sends no reasoning', async () => {
    const page = await chatPage({ temperature: 0, top_p: 1, max_tokens: 400, seed: 1 });
    try {
      await page.fill('#input', 'what is 3 + 9?');
      await page.keyboard.press('Enter');
      const reply = page.locator('.message.assistant').last();
      await page.waitForSelector('.message.assistant[data-state="thinking"] .reasoning:not(:empty)', { timeout: 30_000 });
      assert.equal(await reply.locator('.thinking summary').textContent(), 'Thinking…');
      assert.equal(await reply.locator('.thinking').evaluate((d) => (d as HTMLDetailsElement).open), true);
      const early = (await reply.locator('.reasoning').textContent()) ?? '';
      await page.waitForSelector('.message.assistant[data-state="done"]', { timeout: 60_000 });
      const summary = (await reply.locator('.thinking summary').textContent()) ?? '';
      assert.match(summary, /^Thought for \d+ seconds?$/);
      assert.equal(await reply.locator('.thinking').evaluate((d) => (d as HTMLDetailsElement).open), false);
      const full = (await reply.locator('.reasoning').textContent()) ?? '';
      assert.ok(full.length > early.length && full.startsWith(early), 'the thinking grew while it streamed');
      assert.match((await reply.locator('.stats').textContent()) ?? '', /\d+ tokens · .*cache-hit · ¥\d+\.\d+ · [\d.]+ tokens\/s/);
      // a click opens the collapsed thinking again
      await reply.locator('.thinking summary').click();
      assert.equal(await reply.locator('.thinking').evaluate((d) => (d as HTMLDetailsElement).open), true);

      const sent = page.waitForRequest((r) => r.url().endsWith('/chat/completions') && r.method() === 'POST');
      await page.fill('#input', 'and 4 + 4?');
      await page.keyboard.press('Enter');
      const body = JSON.parse((await sent).postData() ?? '{}') as { messages: Record<string, unknown>[] };
      assert.deepEqual(
        body.messages.map((m) => Object.keys(m).sort().join(',')),
        ['content,role', 'content,role', 'content,role'],
      );
      assert.equal(body.messages[1].role, 'assistant');
      await page.waitForSelector('.message.assistant[data-state="done"] >> nth=1', { timeout: 60_000 });

      // reload: the conversation is still there, with both turns
      await page.reload();
      await page.waitForSelector('.message.user');
      assert.equal(await page.locator('#conversations li').count(), 1);
      assert.equal(await page.locator('#conversations li button.open').textContent(), 'what is 3 + 9?');
      assert.deepEqual(await page.locator('.message.user .content').allTextContents(), ['what is 3 + 9?', 'and 4 + 4?']);
      assert.equal(await page.locator('.message.assistant .thinking summary').first().textContent(), summary);
    } finally {
      await page.close();
    }
  });

  test('Stop (and Esc) aborts the request mid-stream and the server frees its slot', async () => {
    const page = await chatPage({ temperature: 0, top_p: 1, max_tokens: 3000, seed: 2 });
    try {
      for (const how of ['button', 'Escape'] as const) {
        await page.fill('#input', `count to a thousand (${how})`);
        await page.keyboard.press('Enter');
        await page.waitForSelector('.message.assistant[data-state="thinking"]', { timeout: 30_000 });
        let h = await health();
        for (let i = 0; i < 100 && h.running === 0; i++) h = await health();
        assert.equal(h.running, 1, 'the reply is decoding in the engine');
        assert.equal(h.in_server, 1);
        if (how === 'button') await page.click('#stop');
        else await page.keyboard.press('Escape');
        await page.waitForSelector('.message.assistant[data-state="stopped"]', { timeout: 10_000 });
        for (let i = 0; i < 100 && (h.running > 0 || h.in_server > 0); i++) {
          await new Promise((r) => setTimeout(r, 50));
          h = await health();
        }
        assert.deepEqual([h.running, h.in_server], [0, 0], 'the aborted request left the engine and the server');
        assert.ok(((await page.locator('.message.assistant').last().locator('.reasoning').textContent()) ?? '').length > 0, 'what streamed is kept');
        assert.equal(await page.locator('#send').isVisible(), true);
      }
      // regenerate replaces the stopped reply; edit-and-resend drops what followed the edited message
      await page.locator('.message.assistant').last().locator('button.regenerate').click();
      await page.waitForSelector('.message.assistant[data-state="thinking"]');
      await page.click('#stop');
      await page.waitForSelector('.message.assistant[data-state="stopped"]');
      assert.equal(await page.locator('.message.assistant').count(), 2);
      await page.locator('.message.user').first().locator('button.edit').click();
      await page.fill('.message.user textarea.edit-box', 'edited question');
      await page.keyboard.press('Enter');
      await page.waitForSelector('.message.assistant[data-state="thinking"]');
      await page.keyboard.press('Escape');
      await page.waitForSelector('.message.assistant[data-state="stopped"]');
      assert.deepEqual(await page.locator('.message.user .content').allTextContents(), ['edited question']);
    } finally {
      await page.close();
    }
  });

  test('a stored reply with <script> and <img onerror> is rendered inert; markdown still renders', async () => {
    const conversation = {
      id: 'x',
      title: 'xss',
      model: 'tiny-chat',
      updated: Date.now(),
      messages: [
        { role: 'user', content: '<img src=x onerror="window.__pwned=1">' },
        {
          role: 'assistant',
          reasoning: '<script>window.__pwned=2</script>',
          thoughtMs: 1200,
          content:
            '**bold** and `code`\n\n<script>window.__pwned=3</script><img src="x" onerror="window.__pwned=4"><a href="javascript:window.__pwned=5">link</a><iframe src="/"></iframe>',
        },
      ],
    };
    const page = await browser.newPage();
    try {
      await page.addInitScript({ content: `localStorage.setItem('tinyseek.conversations', ${JSON.stringify(JSON.stringify([conversation]))});` });
      await page.goto(`${server.url}/`);
      await page.waitForSelector('.message.assistant .answer strong');
      await page
        .locator('.message.assistant .answer a')
        .click({ noWaitAfter: true })
        .catch(() => undefined);
      await page.waitForTimeout(300);
      assert.equal(await page.evaluate(() => (window as unknown as { __pwned?: number }).__pwned), undefined);
      assert.equal(await page.locator('#messages script, #messages iframe, #messages [onerror]').count(), 0);
      assert.equal(await page.locator('.message.assistant .answer strong').textContent(), 'bold');
      assert.equal(await page.locator('.message.assistant .answer a').getAttribute('href'), null);
      assert.equal(await page.locator('.message.assistant .reasoning').textContent(), '<script>window.__pwned=2</script>');
      assert.equal(await page.locator('.message.user .content').textContent(), '<img src=x onerror="window.__pwned=1">');
      assert.equal(await page.locator('.message.assistant .thinking summary').textContent(), 'Thought for 1 second');
    } finally {
      await page.close();
    }
  });

  test('on a phone width the conversations fold away and the composer stays usable; dark follows the system', async () => {
    const page = await browser.newPage({ viewport: { width: 390, height: 760 }, colorScheme: 'dark' });
    try {
      await page.goto(`${server.url}/`);
      const sidebar = await page.locator('#sidebar').boundingBox();
      assert.ok(sidebar && sidebar.x + sidebar.width <= 0, 'the sidebar is off screen');
      const box = await page.locator('#input').boundingBox();
      assert.ok(box && box.x >= 0 && box.x + box.width <= 390, 'the input fits the width');
      await page.click('#toggle-sidebar');
      await page.waitForFunction(() => document.getElementById('sidebar')!.getBoundingClientRect().x >= 0);
      const bg = await page.evaluate(() => getComputedStyle(document.body).backgroundColor);
      assert.equal(bg, 'rgb(22, 24, 29)');
      await page.click('#theme-toggle');
      assert.equal(await page.evaluate(() => getComputedStyle(document.body).backgroundColor), 'rgb(255, 255, 255)');
    } finally {
      await page.close();
    }
  });
});

describe('the runs dashboard', () => {
  test('draws a run’s curves and follows its metrics file as lines are appended', async () => {
    const page = await browser.newPage({ viewport: { width: 1200, height: 900 } });
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    try {
      await page.goto(`${server.url}/runs`);
      await page.waitForSelector('#runs button[data-run="demo"]');
      await page.waitForSelector('.chart[data-chart="reward"][data-last-step="3"] canvas');
      for (const id of ['reward', 'accuracy', 'length', 'selfcheck', 'kl', 'entropy', 'spread', 'time', 'experts'])
        assert.equal(await page.locator(`.chart[data-chart="${id}"]`).count(), 1, `chart ${id}`);
      const legend = await page.locator('.chart[data-chart="reward"] .u-legend').textContent();
      assert.match(legend ?? '', /reward_by_fn\.accuracy/);
      assert.equal(await page.locator('.chart[data-chart="bpb"]').count(), 0, 'no chart without its series');

      appendFileSync(join(runsDir, 'demo', 'metrics.jsonl'), line(rlRecord(4)));
      await page.waitForSelector('.chart[data-chart="reward"][data-last-step="4"]', { timeout: 5000 });
      assert.equal(await page.locator('.chart[data-chart="reward"]').getAttribute('data-points'), '4');

      // samples with their self-check phrases marked, and the held-out problem at the first and the last step
      await page.waitForSelector('#samples .sample mark.check');
      assert.ok((await page.locator('#samples .sample').count()) >= 3);
      const compare = page.locator('#compare-body .sample');
      assert.equal(await compare.count(), 2);
      assert.deepEqual(await compare.evaluateAll((cards) => cards.map((c) => (c as HTMLElement).dataset.step)), ['1', '3']);
      assert.match((await compare.nth(1).locator('mark.check').first().textContent()) ?? '', /verify/i);
      assert.deepEqual(errors, []);
    } finally {
      await page.close();
    }
  });

  test('the runs API: list, byte-offset reads, 404 for an unknown run, 400 for a bad offset', async () => {
    const get = async (q: string): Promise<[number, Record<string, unknown>]> => {
      const r = await fetch(`${server.url}/runs/api/${q}`);
      return [r.status, (await r.json()) as Record<string, unknown>];
    };
    const [s1, list] = await get('list');
    assert.equal(s1, 200);
    const demo = (list.runs as { name: string; kind: string; steps: number; step: number }[]).find((r) => r.name === 'demo');
    const lines = readFileSync(join(runsDir, 'demo', 'metrics.jsonl'), 'utf8')
      .trim()
      .split('\n');
    assert.deepEqual([demo?.kind, demo?.steps, demo?.step], ['rl', 10, JSON.parse(lines[lines.length - 1]).step]);
    const [, m1] = await get('metrics?run=demo&offset=0');
    assert.equal((m1.records as unknown[]).length, lines.length);
    const [, m2] = await get(`metrics?run=demo&offset=${m1.offset}`);
    assert.deepEqual(m2.records, []);
    assert.equal((await get('metrics?run=nope&offset=0'))[0], 404);
    assert.equal((await get('metrics?run=..%2F..&offset=0'))[0], 400);
    assert.equal((await get('metrics?run=demo&offset=-1'))[0], 400);
    assert.equal((await get('metrics?offset=0'))[0], 400);
    const [, cfg] = await get('config?run=demo');
    assert.deepEqual(cfg.config, { steps: 10, task: 'countdown' });
  });

  test('with API keys on, the runs API asks for one', async () => {
    const accounts = new Accounts(':memory:');
    const { key } = accounts.create('bob', 1);
    const srv = await startServer({ checkpoint: ckpt, accounts, runsDir, engine: { blockSize: 16, maxBatch: 1 } });
    try {
      const anon = await fetch(`${srv.url}/runs/api/list`);
      assert.equal(anon.status, 401);
      assert.equal(((await anon.json()) as { error: { code: string } }).error.code, 'invalid_api_key');
      assert.equal((await fetch(`${srv.url}/runs/api/list`, { headers: { authorization: `Bearer ${key}` } })).status, 200);
      assert.equal((await fetch(`${srv.url}/runs`)).status, 200, 'the page itself is public; it sends the key from its settings');
      // the chat page says what to do without a key, and works with the one set in its settings
      const page = await browser.newPage();
      try {
        await page.goto(`${srv.url}/`);
        await page.waitForSelector('#status:not([hidden])');
        assert.match((await page.locator('#status').textContent()) ?? '', /API key.*Settings/);
        await page.click('#settings-button');
        await page.fill('input[name="apiKey"]', key);
        await page.click('#settings-dialog button[value="save"]');
        await page.waitForFunction(() => (document.getElementById('model') as HTMLSelectElement).options.length === 1);
        assert.equal(await page.locator('#status').isHidden(), true);
        await page.goto(`${srv.url}/runs`);
        await page.waitForSelector('#runs button[data-run="demo"]');
      } finally {
        await page.close();
      }
    } finally {
      await srv.close();
    }
  });

  test('tinyseek runs serves the dashboard alone', async () => {
    const srv = await startRunsServer({ runsDir });
    try {
      assert.equal((await fetch(`${srv.url}/runs`)).status, 200);
      assert.equal((await fetch(`${srv.url}/assets/runs.js`)).status, 200);
      assert.equal((await fetch(`${srv.url}/assets/uplot.css`)).status, 200);
      const home = await fetch(`${srv.url}/`, { redirect: 'manual' });
      assert.equal(home.headers.get('location'), '/runs');
      assert.equal((await fetch(`${srv.url}/chat/completions`, { method: 'POST' })).status, 404);
      const list = (await (await fetch(`${srv.url}/runs/api/list`)).json()) as { runs: { name: string }[] };
      assert.deepEqual(
        list.runs.map((r) => r.name),
        ['demo'],
      );
    } finally {
      await srv.close();
    }
  });
});

describe('reading runs', () => {
  test('tailJsonl returns complete lines only, resumes at its offset, and starts over when the file shrank', () => {
    const f = join(root, 'tail.jsonl');
    writeFileSync(f, `${line({ step: 1 })}${line({ step: 2 })}{"step": 3`);
    const a = tailJsonl(f, 0);
    assert.deepEqual(a.records, [{ step: 1 }, { step: 2 }]);
    assert.equal(a.reset, false);
    appendFileSync(f, '}\nnot json\n');
    const b = tailJsonl(f, a.offset);
    assert.deepEqual(b.records, [{ step: 3 }]);
    assert.equal(tailJsonl(f, b.offset).records.length, 0);
    writeFileSync(f, line({ step: 1 })); // a resumed run cut the file back
    const c = tailJsonl(f, b.offset);
    assert.deepEqual([c.reset, c.records], [true, [{ step: 1 }]]);
    assert.throws(() => tailJsonl(f, 1.5), /whole number/);
    assert.deepEqual(tailJsonl(join(root, 'missing.jsonl'), 0), { records: [], offset: 0, reset: false });
  });

  test('RunsDirectory lists runs with their kind, progress and status, and marks self-checks in samples', () => {
    const runs = new RunsDirectory(runsDir);
    const demo = runs.list().find((r) => r.name === 'demo');
    assert.equal(demo?.status, 'running');
    mkdirSync(join(runsDir, 'demo', 'final'), { recursive: true });
    assert.equal(runs.list().find((r) => r.name === 'demo')?.status, 'finished');
    rmSync(join(runsDir, 'demo', 'final'), { recursive: true });
    const s = runs.samples('demo', 0).records[2];
    const text = String(s.completion);
    assert.deepEqual(
      s.marks.map((m) => [text.slice(m.start, m.end).toLowerCase(), m.kind]),
      selfCheckSpans(text).map((m) => [text.slice(m.start, m.end).toLowerCase(), m.kind]),
    );
    assert.ok(s.marks.length >= 1);
    assert.throws(() => runs.dirOf('nope'), /no run named "nope"/);
  });

  test('selfCheckSpans finds the check and revision phrases of the reasoning, in order, without overlaps', () => {
    const c = '<think>5 + 6 = 11. Let me check: 11 - 6 = 5. Wait, that is wrong, let me try again.</think><answer>let me check</answer>';
    const spans = selfCheckSpans(c);
    assert.ok(spans.length >= 2, JSON.stringify(spans));
    for (let i = 1; i < spans.length; i++) assert.ok(spans[i].start >= spans[i - 1].end);
    assert.ok(spans.some((s) => s.kind === 'check'));
    assert.ok(spans.some((s) => s.kind === 'revise'));
    assert.ok(
      spans.every((s) => s.end <= c.indexOf('</think>')),
      'the answer part is not marked',
    );
  });
});
