// Plots: each chart is a well-formed SVG file whose text names the series drawn.
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { after, describe, test } from 'node:test';
import type { MetricRecord } from '../src/run/metrics.ts';
import { renderComparison, renderPlots } from '../src/run/plots.ts';

const dir = mkdtempSync(join(tmpdir(), 'tinyseek-plots-'));
after(() => rmSync(dir, { recursive: true, force: true }));

interface Xml {
  root: string;
  elements: number;
  /** Text content of every element, entities decoded. */
  texts: string[];
}

/** Enough of an XML parser to check well-formedness: balanced, properly nested tags, one root. */
function parseXml(src: string): Xml {
  const stack: string[] = [];
  const texts: string[] = [];
  let root = '';
  let elements = 0;
  let i = 0;
  const decode = (s: string): string =>
    s.replace(/&(lt|gt|amp|quot|apos|#\d+|#x[0-9a-f]+);/gi, (_, e: string) => {
      const m: Record<string, string> = { lt: '<', gt: '>', amp: '&', quot: '"', apos: "'" };
      if (e[0] !== '#') return m[e.toLowerCase()];
      return String.fromCodePoint(e[1] === 'x' || e[1] === 'X' ? parseInt(e.slice(2), 16) : parseInt(e.slice(1), 10));
    });
  while (i < src.length) {
    if (src[i] !== '<') {
      const j = src.indexOf('<', i);
      const text = src.slice(i, j < 0 ? src.length : j);
      if (text.trim()) {
        if (!stack.length) throw new Error(`text outside the root at ${i}`);
        if (/&(?!(lt|gt|amp|quot|apos|#\d+|#x[0-9a-f]+);)/i.test(text)) throw new Error(`bare & at ${i}`);
        texts.push(decode(text));
      }
      i = j < 0 ? src.length : j;
      continue;
    }
    if (src.startsWith('<?', i)) i = src.indexOf('?>', i) + 2;
    else if (src.startsWith('<!--', i)) i = src.indexOf('-->', i) + 3;
    else if (src.startsWith('</', i)) {
      const j = src.indexOf('>', i);
      const name = src.slice(i + 2, j).trim();
      const open = stack.pop();
      if (open !== name) throw new Error(`</${name}> closes <${open}> at ${i}`);
      i = j + 1;
    } else {
      // a start tag: skip quoted attribute values, which may hold '>'
      let j = i + 1;
      let quote = '';
      while (j < src.length && (quote || src[j] !== '>')) {
        if (quote) {
          if (src[j] === quote) quote = '';
        } else if (src[j] === '"' || src[j] === "'") quote = src[j];
        j++;
      }
      if (j >= src.length) throw new Error(`unterminated tag at ${i}`);
      const body = src.slice(i + 1, j);
      const name = /^[A-Za-z_][\w:.-]*/.exec(body)?.[0];
      if (!name) throw new Error(`bad tag at ${i}`);
      if (!stack.length) {
        if (root) throw new Error(`a second root <${name}>`);
        root = name;
      }
      elements++;
      if (!body.endsWith('/')) stack.push(name);
      i = j + 1;
    }
  }
  if (stack.length) throw new Error(`unclosed <${stack.join('> <')}>`);
  return { root, elements, texts };
}

function svgOf(file: string): Xml {
  const x = parseXml(readFileSync(file, 'utf8'));
  assert.equal(x.root, 'svg', `${file}: the root element`);
  assert.ok(x.elements > 20, `${file}: only ${x.elements} elements`);
  return x;
}

/** A run's records as the training loop writes them: train lines each step, eval lines every 10. */
function runRecords(steps: number, scale = 1): MetricRecord[] {
  const out: MetricRecord[] = [];
  for (let s = 1; s <= steps; s++) {
    out.push({
      kind: 'train',
      step: s,
      loss: scale * (4 * Math.exp(-s / 30) + 1.5),
      lm_loss: scale * (3.8 * Math.exp(-s / 30) + 1.4),
      mtp_loss: s === 7 ? null : 4.2 * Math.exp(-s / 30) + 1.6,
      aux_loss: null,
      lr: 1e-3 * Math.min(1, s / 10),
      grad_norm: s === 3 ? Number.NaN : 1 + 1 / s,
      tokens: 1024,
      tokens_per_s: 2400 + (s % 7) * 10,
      expert_load: { '1': 1.1 + 0.3 / s, '2': 1.2, '4': 1.3 - 0.1 / s },
      custom_metric: s * 2,
      depths: [s, s + 1],
    });
    if (s % 10 === 0) out.push({ kind: 'eval', step: s, val_loss: scale * (4.1 * Math.exp(-s / 30) + 1.6), val_bpb: 1.2 });
  }
  return out;
}

describe('renderPlots', () => {
  test('writes the standard charts it has data for, each a valid SVG naming its series', async () => {
    const out = join(dir, 'run');
    const files = await renderPlots(runRecords(60), out, {
      title: 'small-test',
      series: [
        'custom_metric',
        {
          name: 'two',
          title: 'two keys',
          series: [
            { label: 'a', key: 'custom_metric' },
            { label: 'd', key: 'depths' },
          ],
        },
      ],
    });
    const names = files.map((f) => basename(f));
    // aux_loss is null throughout: no chart
    assert.deepEqual(names, [
      'loss.svg',
      'lr.svg',
      'grad_norm.svg',
      'tokens_per_s.svg',
      'mtp_loss.svg',
      'expert_load.svg',
      'val_bpb.svg',
      'custom_metric.svg',
      'two.svg',
    ]);
    assert.deepEqual(readdirSync(out).sort(), [...names].sort()); // no temporary files left
    const expect: Record<string, string[]> = {
      'loss.svg': ['train', 'train main (lm)', 'val', 'small-test: loss'],
      'lr.svg': ['lr'],
      'grad_norm.svg': ['grad norm'],
      'tokens_per_s.svg': ['tokens/s'],
      'mtp_loss.svg': ['mtp'],
      'expert_load.svg': ['layer 1', 'layer 2', 'layer 4'],
      'custom_metric.svg': ['custom_metric'],
      'two.svg': ['a', 'd 1', 'd 2', 'small-test: two keys'],
    };
    for (const f of files) {
      const x = svgOf(f);
      for (const s of expect[basename(f)] ?? [])
        assert.ok(x.texts.includes(s), `${basename(f)} should show "${s}"; has ${JSON.stringify(x.texts.slice(0, 30))}`);
    }
  });

  test('no records: no files; long series are bucketed; a dotted key reaches into a map', async () => {
    const out = join(dir, 'empty');
    assert.deepEqual(await renderPlots([], out), []);
    const long = join(dir, 'long');
    const files = await renderPlots(runRecords(3000), long, { maxPoints: 200, defaults: false, series: ['loss', 'expert_load.2'] });
    assert.deepEqual(
      files.map((f) => basename(f)),
      ['loss.svg', 'expert_load.2.svg'],
    );
    const x = svgOf(files[0]);
    assert.ok(x.texts.includes('loss'));
    // 200 points drawn as one path: the file stays small
    assert.ok(readFileSync(files[0]).length < 60_000, `loss.svg is ${readFileSync(files[0]).length} bytes`);
  });

  test('bad chart names are refused', async () => {
    await assert.rejects(renderPlots(runRecords(5), join(dir, 'bad'), { series: [{ name: '../x', series: [{ label: 'x', key: 'loss' }] }] }), /chart name/);
    await assert.rejects(renderPlots(runRecords(5), join(dir, 'bad'), { series: ['loss'] }), /two charts are named loss/);
  });
});

describe('renderComparison', () => {
  test('several runs on one chart', async () => {
    const file = join(dir, 'ablation', 'loss.svg');
    const runs = [
      { name: 'aux-free', records: runRecords(40) },
      { name: 'aux-loss', records: runRecords(40, 1.1) },
      { name: 'no-balance', records: runRecords(40, 1.2) },
      { name: 'no-loss-key', records: [{ step: 1, other: 2 }] },
    ];
    assert.equal(await renderComparison(runs, 'val_loss', file, { title: 'validation loss by balancing' }), file);
    const x = svgOf(file);
    for (const s of ['aux-free', 'aux-loss', 'no-balance', 'validation loss by balancing']) assert.ok(x.texts.includes(s), `missing "${s}"`);
    assert.ok(!x.texts.includes('no-loss-key'));
    const load = join(dir, 'ablation', 'load.svg');
    await renderComparison(runs.slice(0, 2), 'expert_load', load);
    const y = svgOf(load);
    for (const s of ['aux-free 1', 'aux-free 4', 'aux-loss 2']) assert.ok(y.texts.includes(s), `missing "${s}"`);
  });

  test('no run has the key: an error, and no file', async () => {
    const file = join(dir, 'none.svg');
    await assert.rejects(renderComparison([{ name: 'a', records: runRecords(5) }], 'nope', file), /none of the runs \(a\) has numeric values of nope/);
    assert.ok(!existsSync(file));
    await assert.rejects(
      renderComparison(
        [
          { name: 'a', records: [] },
          { name: 'a', records: [] },
        ],
        'loss',
        file,
      ),
      /two runs are named a/,
    );
  });
});
