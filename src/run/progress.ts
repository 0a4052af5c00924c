/**
 * Progress of a training run: on a terminal, a cli-progress bar (step/total, loss, tokens/s, ETA)
 * with log lines printed above it; elsewhere (CI, pipes, files) plain lines every `every` steps, on
 * the first update and at the last step, since a bar redrawn in place is noise in a log file.
 *
 * `step` is the number of steps done (the last update is `update(total)`); a resumed run's first
 * update may start anywhere. The ETA is the remaining steps over the rate of the last updates.
 * Nothing here holds the process open (the bar's redraw timer is unref'd), and nothing changes the
 * terminal's settings (no hidden cursor, no line-wrap switch), so a crash leaves the terminal as it
 * was.
 */
import cliProgress from 'cli-progress';

export interface ProgressFields {
  loss?: number | null;
  tokensPerSecond?: number | null;
  /** The metrics records' name for tokensPerSecond (either is accepted). */
  tokens_per_s?: number | null;
  /** Anything else is shown as `key value`, in the order given. */
  [key: string]: number | string | null | undefined;
}

/** Where the progress goes: process.stdout by default. */
export interface ProgressStream {
  write(s: string): unknown;
  isTTY?: boolean;
  columns?: number;
}

export interface ProgressOptions {
  total: number;
  /** Without a terminal: a line every this many steps (default: total/50, at least 1). */
  every?: number;
  stream?: ProgressStream;
  /** Force the bar (true) or plain lines (false); default: whether the stream is a terminal. */
  tty?: boolean;
  /** Put before each line or the bar. */
  label?: string;
}

export interface Progress {
  update(step: number, fields?: ProgressFields): void;
  /** A line of its own (above the bar on a terminal). */
  log(line: string): void;
  stop(): void;
}

/** 75 → "1m15s", 4000 → "1h06m", 9.2 → "9s". */
export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return '?';
  const s = Math.round(seconds);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  const h = Math.floor(s / 3600);
  if (h < 48) return `${h}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
  return `${Math.floor(h / 24)}d${String(h % 24).padStart(2, '0')}h`;
}

function formatNumber(v: number): string {
  if (!Number.isFinite(v)) return String(v);
  const a = Math.abs(v);
  if (a !== 0 && (a < 1e-3 || a >= 1e6)) return v.toExponential(2);
  return a >= 100 ? v.toFixed(0) : v.toPrecision(4);
}

const RATE_WINDOW = 30;

export function createProgress(o: ProgressOptions): Progress {
  if (!(Number.isInteger(o.total) && o.total > 0)) throw new RangeError(`progress: total must be a positive integer, got ${o.total}`);
  const every = o.every ?? Math.max(1, Math.ceil(o.total / 50));
  if (!(Number.isInteger(every) && every > 0)) throw new RangeError(`progress: every must be a positive integer, got ${o.every}`);
  const stream: ProgressStream = o.stream ?? process.stdout;
  const tty = o.tty ?? (stream.isTTY === true && process.env.TERM !== 'dumb');
  const label = o.label ? `${o.label} ` : '';
  const width = String(o.total).length;
  const samples: { t: number; step: number }[] = [];
  let stopped = false;
  let lastPrinted = -1;
  let lastLine = '';
  let lastStep = -1;

  const eta = (step: number): string => {
    if (step >= o.total) return 'done';
    if (samples.length < 2) return '?';
    const a = samples[0];
    const b = samples[samples.length - 1];
    const rate = (b.step - a.step) / ((b.t - a.t) / 1000);
    return rate > 0 ? formatDuration((o.total - step) / rate) : '?';
  };

  const info = (step: number, f: ProgressFields): string => {
    const parts: string[] = [];
    if (typeof f.loss === 'number') parts.push(`loss ${f.loss.toFixed(4)}`);
    const tps = f.tokensPerSecond ?? f.tokens_per_s;
    if (typeof tps === 'number') parts.push(`${Math.round(tps).toLocaleString('en')} tok/s`);
    for (const [k, v] of Object.entries(f)) {
      if (k === 'loss' || k === 'tokensPerSecond' || k === 'tokens_per_s' || v === undefined || v === null) continue;
      parts.push(`${k} ${typeof v === 'number' ? formatNumber(v) : v}`);
    }
    parts.push(`ETA ${eta(step)}`);
    return parts.join(' | ');
  };

  let multi: cliProgress.MultiBar | null = null;
  let bar: cliProgress.SingleBar | null = null;
  let lastDraw = 0;
  const unrefTimer = (): void => {
    (multi as unknown as { timer?: NodeJS.Timeout | null } | null)?.timer?.unref?.();
  };
  const ensureBar = (): void => {
    if (multi) return;
    multi = new cliProgress.MultiBar({
      stream: stream as NodeJS.WritableStream,
      format: `${label}{bar} {value}/{total} {percentage}% | {info}`,
      barsize: 24,
      barCompleteChar: '█',
      barIncompleteChar: '░',
      hideCursor: false,
      linewrap: true, // trims to the terminal's width; leaves its line-wrap setting alone
      clearOnComplete: false,
      fps: 10,
      gracefulExit: false,
    });
    multi.on('update-post', unrefTimer);
    multi.on('start', unrefTimer);
    bar = multi.create(o.total, 0, { info: '' });
    unrefTimer();
  };

  return {
    update(step, fields = {}) {
      if (stopped) return;
      const now = performance.now();
      samples.push({ t: now, step });
      if (samples.length > RATE_WINDOW) samples.shift();
      lastStep = step;
      const text = info(step, fields);
      if (tty) {
        ensureBar();
        bar!.update(step, { info: text });
        if (now - lastDraw >= 100 || step >= o.total) {
          lastDraw = now;
          multi!.update();
        }
        return;
      }
      lastLine = `${label}step ${String(step).padStart(width)}/${o.total} (${((100 * step) / o.total).toFixed(1)}%) | ${text}`;
      if (lastPrinted < 0 || step % every === 0 || step >= o.total) {
        stream.write(`${lastLine}\n`);
        lastPrinted = step;
      }
    },
    log(line) {
      if (tty && multi && !stopped) {
        multi.log(`${line}\n`);
        multi.update();
        lastDraw = performance.now();
      } else stream.write(`${line}\n`);
    },
    stop() {
      if (stopped) return;
      stopped = true;
      if (multi) {
        multi.stop();
        multi.removeAllListeners();
      } else if (!tty && lastStep >= 0 && lastPrinted !== lastStep) stream.write(`${lastLine}\n`);
    },
  };
}
