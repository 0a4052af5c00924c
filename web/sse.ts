/**
 * Reads a text/event-stream response body as the API sends it: `data: {json}` events separated by
 * blank lines, `: keep-alive` comments, and `data: [DONE]` at the end. It knows SSE framing; not
 * what the events mean.
 */

/** Each event's data, parsed as JSON, until [DONE] or the end of the body. */
export async function* sseEvents(body: ReadableStream<Uint8Array>): AsyncGenerator<unknown> {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let buf = '';
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buf += decoder.decode(value, { stream: true });
      let cut = buf.indexOf('\n\n');
      while (cut >= 0) {
        const event = buf.slice(0, cut);
        buf = buf.slice(cut + 2);
        const data = event
          .split('\n')
          .filter((l) => l.startsWith('data:'))
          .map((l) => l.slice(5).replace(/^ /, ''))
          .join('\n');
        if (data === '[DONE]') return;
        if (data) yield JSON.parse(data);
        cut = buf.indexOf('\n\n');
      }
    }
  } finally {
    reader.releaseLock();
  }
}
