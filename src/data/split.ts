/**
 * The train / held-out split of generated problems. A problem's split is a pure function of its
 * canonical form (a string each task defines, e.g. "countdown|3,19,44|98"): the first 32 bits of
 * SHA-256 of that string, compared with a threshold. No held-out problem can therefore ever appear
 * in train, whatever seeds, generators or corpus mixes produced it, and the same problem is in
 * the same split on every machine.
 *
 * Raising the held-out fraction only moves problems from train to held-out (never back), so a
 * model trained with fraction f has never seen a problem held out under any f' >= f.
 *
 * It knows nothing about what a problem is; tasks supply the canonical string.
 */
import { createHash } from 'node:crypto';

export type Split = 'train' | 'heldout';

export const SPLITS: readonly Split[] = ['train', 'heldout'];

/** The default share of problems held out (per task). */
export const DEFAULT_HELDOUT_FRACTION = 0.1;

/** The canonical string's position in [0, 1), uniformly spread. */
export function splitPoint(canonical: string): number {
  const d = createHash('sha256').update(canonical, 'utf8').digest();
  return d.readUInt32BE(0) / 4294967296;
}

export function splitOf(canonical: string, heldoutFraction = DEFAULT_HELDOUT_FRACTION): Split {
  if (!(heldoutFraction >= 0 && heldoutFraction <= 1)) {
    throw new Error(`heldoutFraction must be in [0, 1], got ${heldoutFraction}`);
  }
  return splitPoint(canonical) < heldoutFraction ? 'heldout' : 'train';
}
