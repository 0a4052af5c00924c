/**
 * tinyseek's tokenizer: byte-level BPE (training, encoding, decoding, Hugging Face tokenizer.json),
 * DeepSeek-R1's chat template and the reasoning/answer split of replies. The public surface only.
 */
export {
  Tokenizer,
  type TrainTokenizerOptions,
  type LoadTokenizerOptions,
  type EncodeOptions,
  type DecodeOptions,
} from './tokenizer.ts';
export { SPECIAL_TOKENS, type SpecialIds, type SpecialName } from './special.ts';
export { UnknownTokenError, type StreamDecoder } from './decode.ts';
export { TokenizerJsonError } from './tokenizer-json.ts';
export { RegexTranslationError } from './regex.ts';
export { CL100K_PATTERN, DEEPSEEK_PATTERNS, PreTokenizer } from './pretokenize.ts';
export {
  renderChat,
  encodeChat,
  type ChatMessage,
  type ChatRole,
  type ChatTemplateOptions,
  type EncodeChatOptions,
  type EncodedChat,
} from './chat.ts';
export { splitReasoning, ReasoningStream, type ReasoningSplit, type ReasoningDelta, type SplitReasoningOptions } from './reasoning.ts';
