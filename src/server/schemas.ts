/**
 * The request bodies of the API, as zod schemas, and the rule that turns a schema failure into
 * DeepSeek's two statuses: a body of the wrong shape (not JSON, a missing field, a wrong type) is
 * 400 "invalid format"; a well-formed body with a value out of range is 422 "invalid parameters".
 * Every message names the field and the fix.
 *
 * It knows the API's fields; not the engine.
 */
import { z } from 'zod';

const Message = z.object({
  role: z.enum(['system', 'user', 'assistant', 'tool']),
  content: z.string().nullable().optional(),
  name: z.string().optional(),
  prefix: z.boolean().optional(),
  reasoning_content: z.string().nullable().optional(),
});

const Stop = z
  .union([z.string(), z.array(z.string()).max(16)])
  .nullable()
  .optional();

const sampling = {
  max_tokens: z.number().int().min(1).nullable().optional(),
  temperature: z.number().min(0).max(2).nullable().optional(),
  top_p: z.number().gt(0).max(1).nullable().optional(),
  frequency_penalty: z.number().min(-2).max(2).nullable().optional(),
  presence_penalty: z.number().min(-2).max(2).nullable().optional(),
  stop: Stop,
  seed: z.number().int().nullable().optional(),
  stream: z.boolean().nullable().optional(),
  stream_options: z.object({ include_usage: z.boolean().optional() }).nullable().optional(),
  user_id: z
    .string()
    .max(512)
    .regex(/^[A-Za-z0-9_-]+$/, 'user_id may hold only letters, digits, "_" and "-"')
    .optional(),
  user: z.string().max(512).optional(),
};

export const ChatRequest = z.object({
  model: z.string(),
  messages: z.array(Message).min(1),
  ...sampling,
  response_format: z
    .object({ type: z.enum(['text', 'json_object']) })
    .nullable()
    .optional(),
  logprobs: z.boolean().nullable().optional(),
  top_logprobs: z.number().int().min(0).max(20).nullable().optional(),
  n: z.number().int().min(1).max(1).nullable().optional(),
  tools: z.array(z.unknown()).nullable().optional(),
  tool_choice: z.unknown().optional(),
});
export type ChatRequest = z.infer<typeof ChatRequest>;

export const CompletionRequest = z.object({
  model: z.string(),
  prompt: z.string(),
  suffix: z.string().nullable().optional(),
  echo: z.boolean().nullable().optional(),
  logprobs: z.number().int().min(0).max(20).nullable().optional(),
  ...sampling,
});
export type CompletionRequest = z.infer<typeof CompletionRequest>;

/** A failed parse as (status, message): 400 for shape, 422 for values. */
export function schemaError(e: z.ZodError): { status: 400 | 422; message: string } {
  const issue = e.issues[0];
  const field = issue.path.length ? issue.path.map((p) => (typeof p === 'number' ? `[${p}]` : String(p))).join('.') : 'the body';
  const shape = issue.code === 'invalid_type' || issue.code === 'invalid_union' || issue.code === 'unrecognized_keys';
  const message = shape
    ? `${field}: ${issue.message}; see the API reference for the expected type`
    : `${field}: ${issue.message}; send a value in the allowed range`;
  return { status: shape ? 400 : 422, message };
}
