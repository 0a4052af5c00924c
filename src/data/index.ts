/**
 * tinyseek's data side: reasoning tasks with rule-based rewards (Countdown, multiplication, word
 * problems), user task files (JSONL / parquet in TinyZero's schema), the synthetic base-model
 * corpus, and the loaders that turn text into packed pretraining sequences, SFT batches and RL
 * prompt batches. The public surface only; docs/data.md explains the rules and choices.
 */
export { Rng, type RngState, type SeedPart } from './rng.ts';
export { splitOf, splitPoint, SPLITS, DEFAULT_HELDOUT_FRACTION, type Split } from './split.ts';
export { extractAnswer, type ExtractedAnswer, ANSWER_OPEN, ANSWER_CLOSE, THINK_OPEN, THINK_CLOSE } from './answer.ts';
export {
  evalArith,
  parseArith,
  evaluate,
  showExpr,
  SAFE_EXPRESSION,
  DEFAULT_ARITH_LIMITS,
  type ArithLimits,
  type ArithErrorKind,
  type EvalResult,
  type Expr,
} from './arith.ts';
export { type Rational, withinTolerance, toNumber as rationalToNumber, toString as rationalToString } from './rational.ts';
export {
  r1ZeroPrompt,
  plainPrompt,
  compactPrompt,
  framedPrompt,
  answerInstruction,
  SYSTEM_LINE,
  ASSISTANT_PREFIX,
  COMPACT_ASSISTANT_PREFIX,
  PROMPT_FRAMES,
  type PromptFrame,
} from './prompt.ts';
export {
  TASKS,
  TASK_CONFIG_SCHEMAS,
  generateProblems,
  problemStream,
  parseTaskConfig,
  isTaskName,
  canonicalOf,
  promptOf,
  questionOf,
  instructionOf,
  referenceAnswerOf,
  scoreCompletion,
  rewardOf,
  splitOfProblem,
  countdown,
  multiplication,
  wordproblems,
  type TaskConfigs,
  type GenerateOptions,
} from './tasks/index.ts';
export { CountdownConfig, countdownProblem } from './tasks/countdown.ts';
export { solveCountdown } from './tasks/countdown-expr.ts';
export { MultiplicationConfig } from './tasks/multiplication.ts';
export { WordProblemsConfig, wordSteps } from './tasks/wordproblems.ts';
export { scoreIntegerAnswer, canonicalInteger } from './tasks/integer-answer.ts';
export {
  TASK_NAMES,
  REWARDS,
  type TaskName,
  type Task,
  type Problem,
  type ProblemOf,
  type CountdownProblem,
  type MultiplicationProblem,
  type WordProblem,
  type WordOp,
  type Reward,
  type Score,
  type ScoreReason,
} from './tasks/types.ts';
export { loadCountdownFile, checkCountdownRow, formatFromPath, type LoadTaskFileOptions, type LoadedTasks, type TaskFileFormat } from './taskfile.ts';
export { BadRowError, describeBadRow, type BadRow, type LoadReport, type OnBadRow } from './badrows.ts';
export { readLines, parseJsonLines, type Line, type JsonLine } from './io/jsonl.ts';
export { readParquetRows, parquetColumns, type ParquetRow } from './io/parquet.ts';
export {
  CorpusConfig,
  parseCorpusConfig,
  generateCorpus,
  corpusDocuments,
  corpusDocument,
  referenceCompletion,
  type SearchTraceFormat,
  corpusAccuracy,
  assertTrainOnly,
  heldOutProductsIn,
  STYLES,
  type Style,
  type CorpusConfigInput,
  type CorpusDocument,
  type CorpusAccuracy,
  type AccuracyRow,
} from './corpus.ts';
export { permutation, epochPermutation, EpochIterator, type Cursor, type IteratorState } from './shuffle.ts';
export { IGNORE_INDEX, toTensor, type IntMatrix, type Shape2 } from './batch.ts';
export { encodeText, encodeDocument, encodePrompt, decodeCompletion } from './encode.ts';
export {
  packDocuments,
  packedBatch,
  contextCoverage,
  PretrainLoader,
  type ContextCoverage,
  type PackLayout,
  type PackOptions,
  type PackedCorpus,
  type PretrainBatch,
  type PretrainLoaderOptions,
} from './pack.ts';
export {
  encodeSftExample,
  encodeR1ZeroExample,
  sftBatch,
  SftLoader,
  conversationFromCompletion,
  type SftExample,
  type SftBatch,
  type SftBatchOptions,
  type SftLoaderOptions,
} from './sft.ts';
export {
  promptBatch,
  promptBatchFromIds,
  PromptLoader,
  type PromptBatch,
  type PromptBatchOptions,
  type PromptLoaderOptions,
} from './rl.ts';
export { latinWordShare, isGarbled } from './language.ts';
export { PROMPT_FORMATS, type PromptFormat, encodeProblemPrompt, encodeChatProblemPrompt, encodeTaskPrompt, userTurnOf } from './prompt-format.ts';
