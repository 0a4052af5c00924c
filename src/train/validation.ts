/**
 * Validation during training: mean cross-entropy over held-out sequences and bits per byte
 * (nats over the targets' UTF-8 bytes / ln 2, with control tokens — BOS, EOS, pad, … — counted in
 * neither sum, since they stand for no text), so that tokenizers of different sizes compare.
 *
 * It knows the model's forward and a tokenizer's byte lengths; not the training loop.
 */
import { type Tensor, crossEntropy, noGrad, tensor, tidy } from '../core/index.ts';
import { IGNORE_INDEX, type PackedCorpus, packedBatch, toTensor } from '../data/index.ts';
import type { DeepSeekV3 } from '../model/transformer.ts';
import type { Tokenizer } from '../tokenizer/index.ts';

/** UTF-8 bytes each token id stands for (0 for the control tokens BOS, EOS, pad, User, Assistant). */
export function tokenByteLengths(tok: Tokenizer): Float32Array {
  const s = tok.special;
  const control = new Set([s.bos, s.eos, s.pad, s.user, s.assistant]);
  const out = new Float32Array(tok.vocabSize);
  for (let id = 0; id < tok.vocabSize; id++) out[id] = control.has(id) ? 0 : (tok.idToBytes(id)?.length ?? 0);
  return out;
}

export interface ValidationResult {
  val_loss: number;
  val_bpb: number;
  val_tokens: number;
}

/** Evaluates the first `batches × batchSize` sequences of `val` (the same ones every time). */
export function validate(model: DeepSeekV3, val: PackedCorpus, byteLengths: Tensor, batches: number, batchSize: number): ValidationResult {
  const wasTraining = model.training;
  model.eval();
  let nats = 0;
  let natsWithBytes = 0;
  let tokens = 0;
  let bytes = 0;
  const total = Math.min(val.numSequences, batches * batchSize);
  if (total === 0) throw new Error(`the validation set packs into no sequence of ${val.seqLen} tokens; add validation documents`);
  noGrad(() => {
    for (let start = 0; start < total; start += batchSize) {
      const ids = Array.from({ length: Math.min(batchSize, total - start) }, (_, i) => start + i);
      tidy(() => {
        const b = packedBatch(val, ids);
        const inputs = toTensor({ data: b.inputs, shape: b.shape });
        const targets = toTensor({ data: b.targets, shape: b.shape }).reshape([-1]); // (B·T)
        const { logits } = model.forward(inputs);
        const V = logits.shape[2];
        const perToken = crossEntropy(logits.reshape([-1, V]), targets, { reduction: 'none', ignoreIndex: IGNORE_INDEX }); // (B·T)
        const valid = targets.ne(IGNORE_INDEX);
        const tb = byteLengths.indexSelect(0, targets.clamp(0, null)).mul(valid.float()); // (B·T) bytes per target
        nats += perToken.sum().item();
        natsWithBytes += perToken.mul(tb.gt(0).float()).sum().item();
        tokens += valid.sum().item();
        bytes += tb.sum().item();
      });
    }
  });
  if (wasTraining) model.train();
  return { val_loss: nats / tokens, val_bpb: natsWithBytes / Math.LN2 / Math.max(1, bytes), val_tokens: tokens };
}

export function byteLengthTensor(tok: Tokenizer): Tensor {
  return tensor(tokenByteLengths(tok)).keep();
}
