/**
 * Deterministic shuffling and a resumable epoch iterator. Epoch e visits every index of a dataset
 * once, in the order of a Fisher–Yates permutation drawn from Rng(seed, 'epoch', e) — a pure
 * function of (seed, epoch, size), so the order never depends on how far a previous run got.
 *
 * The position is a cursor { epoch, index }: the next item is permutation_epoch[index]. Save it in a
 * checkpoint (`iterator.cursor`, a plain JSON object) and pass it back to resume with exactly the
 * items the interrupted run would have seen next. It knows nothing about what the items are.
 */
import { Rng, type SeedPart } from './rng.ts';

/** A random permutation of 0..n-1 (Fisher–Yates). */
export function permutation(n: number, rng: Rng): Int32Array {
  if (!Number.isInteger(n) || n < 0 || n > 2 ** 31 - 1) throw new Error(`permutation: n must be an integer in [0, 2^31), got ${n}`);
  const p = new Int32Array(n);
  for (let i = 0; i < n; i++) p[i] = i;
  for (let i = n - 1; i > 0; i--) {
    const j = rng.int(0, i);
    const t = p[i];
    p[i] = p[j];
    p[j] = t;
  }
  return p;
}

/** The permutation of epoch `epoch` for a dataset of `n` items. */
export function epochPermutation(n: number, seed: SeedPart, epoch: number): Int32Array {
  return permutation(n, new Rng(seed, 'epoch', epoch));
}

export interface Cursor {
  /** 0-based epoch. */
  readonly epoch: number;
  /** Items of this epoch already consumed; the next item is permutation[index]. */
  readonly index: number;
}

/** What a checkpoint stores to resume an iterator (the cursor plus what it is valid for). */
export interface IteratorState extends Cursor {
  readonly seed: SeedPart;
  readonly size: number;
  readonly shuffle: boolean;
}

export interface EpochIteratorOptions {
  seed: SeedPart;
  /** Shuffle every epoch (default true); false visits 0..n-1 in order. */
  shuffle?: boolean;
  /** Where to start (default { epoch: 0, index: 0 }). */
  cursor?: Cursor;
}

export class EpochIterator<T> {
  private epoch: number;
  private index: number;
  private perm: Int32Array | null = null;
  private permEpoch = -1;
  readonly seed: SeedPart;
  readonly shuffle: boolean;

  constructor(
    private readonly items: readonly T[],
    o: EpochIteratorOptions,
  ) {
    if (items.length === 0) throw new Error('EpochIterator: the dataset is empty; nothing to iterate');
    this.seed = o.seed;
    this.shuffle = o.shuffle ?? true;
    const c = o.cursor ?? { epoch: 0, index: 0 };
    if (!Number.isInteger(c.epoch) || c.epoch < 0 || !Number.isInteger(c.index) || c.index < 0 || c.index > items.length) {
      throw new Error(
        `EpochIterator: invalid cursor ${JSON.stringify(c)} for ${items.length} items (need integers, epoch >= 0, 0 <= index <= ${items.length})`,
      );
    }
    this.epoch = c.epoch;
    this.index = c.index;
  }

  /** Resumes from a saved state, checking it was saved for a dataset of the same size and order. */
  static resume<T>(items: readonly T[], state: IteratorState): EpochIterator<T> {
    if (state.size !== items.length) {
      throw new Error(
        `cannot resume: the cursor was saved for ${state.size} items but the dataset has ${items.length}; resuming would not continue the same order — rebuild the dataset exactly as it was, or start a new epoch from { epoch: ${state.epoch + 1}, index: 0 }`,
      );
    }
    return new EpochIterator(items, { seed: state.seed, shuffle: state.shuffle, cursor: { epoch: state.epoch, index: state.index } });
  }

  get size(): number {
    return this.items.length;
  }

  /** The position of the next item. */
  get cursor(): Cursor {
    return { epoch: this.epoch, index: this.index };
  }

  /** Everything needed to resume (JSON-serialisable). */
  state(): IteratorState {
    return { seed: this.seed, size: this.items.length, shuffle: this.shuffle, epoch: this.epoch, index: this.index };
  }

  /** The dataset index of the next item, advancing the cursor. */
  nextIndex(): number {
    if (this.index >= this.items.length) {
      this.epoch++;
      this.index = 0;
    }
    let i = this.index;
    if (this.shuffle) {
      if (this.permEpoch !== this.epoch) {
        this.perm = epochPermutation(this.items.length, this.seed, this.epoch);
        this.permEpoch = this.epoch;
      }
      i = this.perm![this.index];
    }
    this.index++;
    return i;
  }

  next(): T {
    return this.items[this.nextIndex()];
  }

  /** The next k items (crossing into the next epoch when this one runs out). */
  take(k: number): T[] {
    const out: T[] = [];
    for (let i = 0; i < k; i++) out.push(this.next());
    return out;
  }
}
