// Newline-delimited JSON, the framing grpc-gateway gives a server-streaming RPC over HTTP.

/** Yields each JSON value of a newline-delimited stream as it arrives. */
export async function* ndjson(body: ReadableStream<Uint8Array>): AsyncGenerator<unknown> {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let buf = "";
  let finished = false;
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buf += decoder.decode(value, { stream: true });
      let nl: number;
      while ((nl = buf.indexOf("\n")) >= 0) {
        const line = buf.slice(0, nl).trim();
        buf = buf.slice(nl + 1);
        if (line) yield JSON.parse(line);
      }
    }
    finished = true;
    buf += decoder.decode();
    if (buf.trim()) yield JSON.parse(buf);
  } finally {
    // A consumer that stops early (an abort, a thrown error) must not leave the body streaming.
    if (!finished) await reader.cancel().catch(() => {});
  }
}
