/**
 * Evaluation: pass@1, unbiased pass@k, majority vote and completion statistics of a model on a
 * reasoning task. The public surface only; evaluate.ts joins the tokenizer, the tasks and the engine.
 */
export { evaluate, type EvaluateOptions, type EvalReport, type EvalExample } from './evaluate.ts';
export { passAtK, meanPassAtK, defaultKs } from './passk.ts';
export { majorityVote, normaliseAnswer, type Vote } from './vote.ts';
export { tally, type SampleOutcome, type Figures } from './tally.ts';
export { copyProbe, restatement, type CopyProbe } from './copy-probe.ts';
export { arithProbe, formatArithProbe, wholeByOp, PROBE_OPS, type ArithProbe, type ArithProbeOptions, type ProbeFigures, type ProbeOp } from './arith-probe.ts';
export { stopProbe, formatStopProbe, STOP_LINE, type StopProbe, type StopFigures } from './stop-probe.ts';
export { searchOutcome, searchOutcomes, formatSearchOutcomes, SEARCH_OUTCOMES, type SearchOutcome } from './search-outcomes.ts';
export {
  rejectionSample,
  rejectionOf,
  isRepetitive,
  falseSteps,
  noRejections,
  REJECTIONS,
  type Rejection,
  type RejectionBatch,
  type RejectionOptions,
  type KeptTrace,
  type Candidate,
} from './rejection.ts';
