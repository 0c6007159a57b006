/**
 * Line framing for the pipes between gateway, runner and engine: a line may arrive split over many
 * reads (a llama-server `ready` payload or a long log line can be megabytes), and the JSON-lines
 * protocol needs whole lines.
 */

const READ_BYTES = 16 * 1024;

/** A reader that fills our buffer where the stream can (pipes of Deno.Command are byte streams). */
function byobReader(
  stream: ReadableStream<Uint8Array>,
): ReadableStreamBYOBReader | ReadableStreamDefaultReader<Uint8Array> {
  try {
    return stream.getReader({ mode: "byob" });
  } catch {
    return stream.getReader();
  }
}

/**
 * Calls `onLine` for each `\n`-terminated line of `stream` (without the `\n` or a trailing `\r`), and
 * for a final unterminated line. Resolves when the stream ends; a read error ends it quietly, as a
 * closed pipe does.
 */
export async function forEachLine(
  stream: ReadableStream<Uint8Array>,
  onLine: (line: string) => void,
): Promise<void> {
  const decoder = new TextDecoder();
  // Pieces of the current line, so a megabyte line costs one join, not a rescan per chunk.
  const parts: string[] = [];
  const emit = (tail: string) => {
    parts.push(tail);
    let line = parts.length === 1 ? parts[0] : parts.join("");
    parts.length = 0;
    if (line.endsWith("\r")) line = line.slice(0, -1);
    onLine(line);
  };
  const reader = byobReader(stream);
  // one buffer, handed back and forth: a pipe read otherwise allocates 64 KiB each, which a busy engine's
  // log lines turn into megabytes of malloc heap that the garbage collector gives back late, or never
  let buffer = new ArrayBuffer(READ_BYTES);
  try {
    while (true) {
      const { value, done } = reader instanceof ReadableStreamBYOBReader
        ? await reader.read(new Uint8Array(buffer))
        : await reader.read();
      if (done || value === undefined) break;
      if (reader instanceof ReadableStreamBYOBReader) buffer = value.buffer as ArrayBuffer;
      const text = decoder.decode(value, { stream: true });
      let start = 0;
      for (let nl = text.indexOf("\n"); nl >= 0; nl = text.indexOf("\n", start)) {
        emit(text.slice(start, nl));
        start = nl + 1;
      }
      if (start < text.length) parts.push(text.slice(start));
    }
  } catch {
    // The other end vanished mid-read; what we have is all there is.
  } finally {
    reader.releaseLock();
  }
  const rest = decoder.decode();
  if (rest) parts.push(rest);
  if (parts.length > 0) emit("");
}

const encoder = new TextEncoder();

/** A synchronous byte sink such as `Deno.stdout` or a `Deno.FsFile`. */
export interface SyncWriter {
  writeSync(p: Uint8Array): number;
}

/**
 * Writes `value` as one JSON line with as few syscalls as the pipe allows (one, unless the pipe is
 * full): a message reaches the reader the moment it is sent, never half of it waiting on a timer.
 * Throws when the reader is gone (broken pipe).
 */
export function writeJsonLine(out: SyncWriter, value: unknown): void {
  const bytes = encoder.encode(JSON.stringify(value) + "\n");
  let offset = 0;
  while (offset < bytes.length) offset += out.writeSync(bytes.subarray(offset));
}
