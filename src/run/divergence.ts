/**
 * When a run has gone wrong and the step must stop: a loss or gradient that is NaN or infinite
 * (caught before the optimizer touches the weights), and divergence that stays finite — a language
 * model whose loss is far above a uniform guess's, a policy whose output has become uniform. The
 * error names the step, the learning rate, and the last checkpoint whose weights are known good.
 *
 * It knows numbers and checkpoint names; not models or files.
 */

export class TrainingDivergedError extends Error {
  readonly step: number;
  /** The newest checkpoint written before the weights went bad (null: none). */
  readonly lastGood: string | null;
  constructor(step: number, what: string, lr: number, lastGood: string | null, note = '') {
    super(
      `training diverged at step ${step}: ${what} (lr ${lr.toExponential(3)}). ` +
        (lastGood
          ? `The last good checkpoint is ${lastGood}${note}; continue from it with --resume and a lower --lr (or clip norm).`
          : 'No good checkpoint was written yet; restart with a lower learning rate or clip norm.'),
    );
    this.name = 'TrainingDivergedError';
    this.step = step;
    this.lastGood = lastGood;
  }
}

/** Thrown inside a step when its loss or gradient norm is not finite; the driver turns it into TrainingDivergedError. */
export class NonFiniteStepError extends Error {
  readonly what: string;
  readonly lr: number;
  constructor(what: string, lr: number) {
    super(what);
    this.name = 'NonFiniteStepError';
    this.what = what;
    this.lr = lr;
  }
}

/**
 * A language model's loss above 2·ln V (twice a uniform guess over the vocabulary): the weights have
 * run away even though every number is finite. Returns why, or null.
 */
export function lmRunaway(lmLoss: number, vocabSize: number): string | null {
  const bound = 2 * Math.log(vocabSize);
  return lmLoss > bound
    ? `the language-model loss ${lmLoss.toPrecision(4)} is above 2·ln(V) = ${bound.toFixed(2)}, twice a uniform guess's: the weights have run away`
    : null;
}

/** A policy whose mean token entropy is above 0.9·ln V samples nearly uniformly: it has run away. Returns why, or null. */
export function policyRunaway(entropy: number, vocabSize: number): string | null {
  const bound = 0.9 * Math.log(vocabSize);
  return entropy > bound ? `the policy's mean token entropy ${entropy.toFixed(3)} is above 0.9·ln(V) = ${bound.toFixed(2)}: its output is near uniform` : null;
}
