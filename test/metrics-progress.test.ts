// The progress display: plain lines without a terminal, a bar with log lines above it on one.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, test } from 'node:test';
import { createProgress, formatDuration, type ProgressStream } from '../src/run/progress.ts';

function sink(isTTY: boolean): ProgressStream & { text: string } {
  return {
    text: '',
    isTTY,
    columns: 120,
    write(s: string) {
      this.text += s;
      return true;
    },
  };
}

describe('progress', () => {
  test('without a terminal: a plain line on the first update, every `every` steps and at the end', () => {
    const out = sink(false);
    const p = createProgress({ total: 10, every: 4, stream: out });
    for (let s = 1; s <= 10; s++) {
      p.update(s, { loss: 5 - s / 10, tokensPerSecond: 2500.4, lr: 0.001 });
      if (s === 5) p.log('eval: val_loss 2.5000');
    }
    p.stop();
    p.stop();
    p.update(11, { loss: 1 }); // after stop: ignored
    const lines = out.text.trimEnd().split('\n');
    assert.deepEqual(
      lines.map((l) => l.slice(0, 16)),
      ['step  1/10 (10.0', 'step  4/10 (40.0', 'eval: val_loss 2', 'step  8/10 (80.0', 'step 10/10 (100.'],
    );
    assert.match(lines[0], /^step {2}1\/10 \(10\.0%\) \| loss 4\.9000 \| 2,500 tok\/s \| lr 0\.001000 \| ETA \?$/);
    assert.match(lines[3], /\| ETA \d+s$/);
    assert.match(lines[4], /ETA done$/);
    assert.ok(!out.text.includes('\x1b'), 'no escape sequences in plain mode');
  });

  test('stop prints the last step when it fell between lines; tokens_per_s is accepted too', () => {
    const out = sink(false);
    const p = createProgress({ total: 100, every: 50, stream: out, label: '[pretrain]' });
    p.update(1, { loss: 3, tokens_per_s: 1000 });
    p.update(7, { loss: 2.5, tokens_per_s: 1000 });
    p.stop();
    const lines = out.text.trimEnd().split('\n');
    assert.equal(lines.length, 2);
    assert.match(lines[1], /^\[pretrain\] step {3}7\/100 \(7\.0%\) \| loss 2\.5000 \| 1,000 tok\/s \| ETA/);
  });

  test('on a terminal: a cli-progress bar, log lines above it', () => {
    const out = sink(true);
    const p = createProgress({ total: 20, stream: out });
    p.update(1, { loss: 4 });
    p.log('checkpoint written');
    p.update(20, { loss: 2 });
    p.stop();
    assert.match(out.text, /█+░*.* 1\/20 5% \| loss 4\.0000/);
    assert.match(out.text, /checkpoint written\n/);
    assert.match(out.text, /20\/20 100% \| loss 2\.0000 \| ETA done/);
    assert.ok(!out.text.includes('\x1b[?25l'), 'the cursor is never hidden');
    assert.ok(!out.text.includes('\x1b[?7l'), 'line wrapping is never switched off');
  });

  test('a process whose stdout is a pipe gets plain lines, and the bar does not keep it alive', () => {
    const mod = fileURLToPath(new URL('../src/run/progress.ts', import.meta.url));
    const script = `
      import { createProgress } from ${JSON.stringify(mod)};
      const p = createProgress({ total: 6, every: 2 });
      for (let s = 1; s <= 6; s++) p.update(s, { loss: s, tokensPerSecond: 10 });
      p.log('done');
      const q = createProgress({ total: 5, tty: true });
      q.update(1, { loss: 1 }); // never stopped: must not hold the process open
    `;
    const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { encoding: 'utf8', timeout: 30_000 });
    assert.equal(r.status, 0, r.stderr);
    const lines = r.stdout.split('\n').filter((l) => l.startsWith('step') || l === 'done');
    assert.deepEqual(
      lines.map((l) => l.split(' |')[0]),
      ['step 1/6 (16.7%)', 'step 2/6 (33.3%)', 'step 4/6 (66.7%)', 'step 6/6 (100.0%)', 'done'],
    );
  });

  test('formatDuration', () => {
    assert.equal(formatDuration(9.2), '9s');
    assert.equal(formatDuration(75), '1m15s');
    assert.equal(formatDuration(4000), '1h06m');
    assert.equal(formatDuration(3 * 86400 + 7200), '3d02h');
    assert.equal(formatDuration(Number.NaN), '?');
    assert.throws(() => createProgress({ total: 0 }), /total/);
  });
});
