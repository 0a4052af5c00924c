/// <reference lib="dom" />
/**
 * Screenshots of the web pages for the README: the chat page answering a Countdown problem with the
 * shipped reasoning model (its thinking collapsed, then opened), and the runs dashboard on a real
 * run. Headless Chromium (Debian's `chromium`) driven by playwright-core, against a real server.
 *
 *   node --import tsx scripts/screenshots.ts --runs-dir runs --run rl-countdown-120 [--out docs/images]
 */
import { mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { chromium } from 'playwright-core';
import { defaultServedCheckpoint } from '../src/cli/serve.ts';
import { startServer } from '../src/server/app.ts';

const { values } = parseArgs({
  options: {
    'runs-dir': { type: 'string', default: 'runs' },
    run: { type: 'string' },
    out: { type: 'string', default: 'docs/images' },
    checkpoint: { type: 'string' },
    chromium: { type: 'string', default: '/usr/bin/chromium' },
  },
});
const out = resolve(values.out);
mkdirSync(out, { recursive: true });

const server = await startServer({
  checkpoint: resolve(values.checkpoint ?? defaultServedCheckpoint()),
  accounts: null,
  runsDir: resolve(values['runs-dir']),
  engine: { maxBatch: 2 },
});
await server.engine.ready;
const browser = await chromium.launch({ executablePath: values.chromium, headless: true });
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 860 }, colorScheme: 'light' });
  const settings = JSON.stringify({ temperature: 0, top_p: 1, max_tokens: 400, seed: 1, theme: 'light' });
  await page.addInitScript({ content: `localStorage.getItem('tinyseek.settings') || localStorage.setItem('tinyseek.settings', ${JSON.stringify(settings)});` });
  await page.goto(`${server.url}/`);
  await page.fill('#input', 'Using the numbers [3, 7, 12], create an equation that equals 33.');
  await page.keyboard.press('Enter');
  await page.waitForSelector('.message.assistant[data-state="done"]', { timeout: 120_000 });
  await page.click('.message.assistant .thinking summary'); // open the collapsed thinking
  await page.screenshot({ path: join(out, 'chat.png') });
  console.log(`wrote ${join(out, 'chat.png')}`);

  const runs = await browser.newPage({ viewport: { width: 1280, height: 1500 }, colorScheme: 'light' });
  await runs.goto(`${server.url}/runs${values.run ? `#run=${encodeURIComponent(values.run)}` : ''}`);
  await runs.waitForSelector('.chart[data-chart="reward"], .chart[data-chart="loss"]', { timeout: 30_000 });
  await runs.waitForTimeout(2500); // samples arrive on their own poll
  await runs.screenshot({ path: join(out, 'runs.png') });
  console.log(`wrote ${join(out, 'runs.png')}`);
  await runs.evaluate(() => {
    const box = document.querySelector('.scroll');
    const at = document.getElementById('compare');
    if (box && at) box.scrollTop = at.offsetTop - 12;
  });
  await runs.setViewportSize({ width: 1280, height: 1100 });
  await runs.screenshot({ path: join(out, 'runs-samples.png') });
  console.log(`wrote ${join(out, 'runs-samples.png')}`);
} finally {
  await browser.close();
  await server.close();
}
