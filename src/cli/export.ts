/**
 * `tinyseek export gguf`: a checkpoint as a GGUF file for llama.cpp (and ollama, LM Studio), in
 * llama.cpp's deepseek2 architecture with the tokenizer inside.
 *
 *   tinyseek export gguf --checkpoint DIR --out FILE [--dtype f32|f16|bf16|q8_0]
 *
 * It composes the weight mapping (model/gguf.ts), the vocabulary (tokenizer/gguf.ts) and the
 * writer (io/gguf.ts); it knows no tensor layout itself.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { type Command, Option } from 'commander';
import { type GgufValue, writeGguf } from '../io/gguf.ts';
import { GGUF_DTYPES, type GgufDType, ggufModel } from '../model/gguf.ts';
import { Tokenizer } from '../tokenizer/index.ts';
import { ggufTokenizerMetadata } from '../tokenizer/gguf.ts';

export interface ExportGgufResult {
  file: string;
  bytes: number;
  tensors: number;
  notices: string[];
}

/** Writes `checkpoint` as a GGUF file. */
export function exportGguf(checkpoint: string, out: string, dtype: GgufDType, log: (s: string) => void = () => {}): ExportGgufResult {
  const tokFile = join(checkpoint, 'tokenizer.json');
  if (!existsSync(tokFile)) throw new Error(`${checkpoint} has no tokenizer.json; a GGUF file carries its tokenizer, so the export needs it`);
  const tok = Tokenizer.load(tokFile);
  const m = ggufModel(checkpoint, dtype);
  try {
    const metadata = new Map<string, GgufValue>([...m.metadata, ...ggufTokenizerMetadata(tok)]);
    for (const n of m.notices) log(`notice: ${n}`);
    const r = writeGguf(out, metadata, m.tensors);
    return { file: out, bytes: r.bytes, tensors: m.tensors.length, notices: m.notices };
  } finally {
    m.close();
  }
}

export function registerExportCommands(program: Command): void {
  const exp = program.command('export').description('write a checkpoint in another program’s format');
  exp
    .command('gguf')
    .description("a checkpoint as GGUF (llama.cpp's deepseek2 architecture, tokenizer included) for llama.cpp, ollama and LM Studio")
    .requiredOption('--checkpoint <dir>', 'the checkpoint (config.json, model.safetensors, tokenizer.json)')
    .requiredOption('--out <file>', 'the GGUF file to write')
    .addOption(new Option('--dtype <type>', 'tensor type of the matrices (norms and the router stay f32)').choices([...GGUF_DTYPES]).default('f16'))
    .action((o: { checkpoint: string; out: string; dtype: GgufDType }) => {
      const r = exportGguf(o.checkpoint, o.out, o.dtype, (s) => console.log(s));
      console.log(`wrote ${r.file}: ${r.tensors} tensors, ${(r.bytes / 1e6).toFixed(1)} MB (${o.dtype})`);
    });
}
