/**
 * A minimal HTTP/1.1 keep-alive client on a raw TCP connection, and a closed-loop load generator on top.
 *
 * Why not fetch: at the sub-millisecond latencies measured here, fetch's own per-request work (Request,
 * Headers and stream objects, its connection pool) is a large share of what is measured and caps how many
 * requests one core can send. This client writes pre-encoded request bytes and parses only the status line,
 * the framing headers and the body framing, so the client's share of each measurement stays small and equal
 * for every system under test. One request at a time per connection (no pipelining), as real clients do.
 */

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Hard cap on one response (head + body): the bench only sends small requests. */
const MAX_RESPONSE_BYTES = 16 * 1024 * 1024;
/** A single request that takes longer than this is a hung server, not a sample. */
const REQUEST_TIMEOUT_MS = 30_000;

/** Encodes one request once, so the timed loop only writes bytes. */
export function encodeRequest(method: string, port: number, path: string, body?: unknown): Uint8Array {
  const payload = body === undefined ? "" : JSON.stringify(body);
  const bytes = encoder.encode(payload);
  const head = `${method} ${path} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\n` +
    (body === undefined ? "" : `Content-Type: application/json\r\nContent-Length: ${bytes.length}\r\n`) +
    "\r\n";
  const headBytes = encoder.encode(head);
  const out = new Uint8Array(headBytes.length + bytes.length);
  out.set(headBytes);
  out.set(bytes, headBytes.length);
  return out;
}

/** One answered request, times in ms since the request was written. */
export interface Exchange {
  status: number;
  /** the first byte of the response arrived */
  firstByteMs: number;
  /** the first body byte arrived (for a chunked stream: the first non-empty chunk, i.e. the first event) */
  firstBodyMs: number;
  /** the whole response arrived */
  totalMs: number;
  /** the body, when asked for */
  body?: Uint8Array;
}

/** A keep-alive connection that reconnects when the server closes it. */
export class HttpConnection {
  /** TCP connections opened so far: with keep-alive working this stays at 1 however many requests run. */
  opened = 0;
  #conn: Deno.TcpConn | null = null;
  #buf = new Uint8Array(64 * 1024);
  #start = 0;
  #end = 0;

  constructor(readonly port: number) {}

  close(): void {
    try {
      this.#conn?.close();
    } catch {
      // already closed by the peer
    }
    this.#conn = null;
    this.#start = this.#end = 0;
  }

  /** Sends one request and reads its whole response. Retries once on a fresh connection if an idle one was closed. */
  async request(bytes: Uint8Array, keepBody = false): Promise<Exchange> {
    for (let attempt = 0; attempt < 2; attempt++) {
      const reused = this.#conn !== null;
      if (!this.#conn) {
        this.#conn = await Deno.connect({ hostname: "127.0.0.1", port: this.port });
        this.#conn.setNoDelay(true);
        this.opened++;
      }
      this.#start = this.#end = 0;
      const t0 = performance.now();
      try {
        await writeAll(this.#conn, bytes);
        return await this.#readResponse(t0, keepBody);
      } catch (err) {
        this.close();
        // Only an idle connection that the server had already closed is retried, never a half-read answer.
        if (!(reused && err instanceof ConnectionClosed && err.beforeAnyByte) || attempt > 0) throw err;
      }
    }
    throw new Error("unreachable");
  }

  async #fill(): Promise<void> {
    if (this.#end === this.#buf.length) {
      if (this.#start > 0) {
        this.#buf.copyWithin(0, this.#start, this.#end);
        this.#end -= this.#start;
        this.#start = 0;
      } else {
        if (this.#buf.length >= MAX_RESPONSE_BYTES) throw new Error("response too large");
        const bigger = new Uint8Array(this.#buf.length * 2);
        bigger.set(this.#buf.subarray(0, this.#end));
        this.#buf = bigger;
      }
    }
    const n = await this.#conn!.read(this.#buf.subarray(this.#end));
    if (n === null) throw new ConnectionClosed(this.#end === 0);
    this.#end += n;
  }

  async #readResponse(t0: number, keepBody: boolean): Promise<Exchange> {
    const deadline = t0 + REQUEST_TIMEOUT_MS;
    const check = () => {
      if (performance.now() > deadline) throw new Error(`no complete response in ${REQUEST_TIMEOUT_MS} ms`);
    };
    // head
    let headEnd = -1;
    let scanned = 0;
    let firstByteMs = -1;
    while (headEnd < 0) {
      await this.#fill();
      if (firstByteMs < 0) firstByteMs = performance.now() - t0;
      headEnd = indexOfCrlfCrlf(this.#buf, Math.max(this.#start, scanned - 3), this.#end);
      scanned = this.#end;
      check();
    }
    const head = decoder.decode(this.#buf.subarray(this.#start, headEnd));
    this.#start = headEnd + 4;
    const status = Number(head.slice(9, 12));
    let contentLength = -1;
    let chunked = false;
    let close = false;
    for (const line of head.split("\r\n").slice(1)) {
      const colon = line.indexOf(":");
      const name = line.slice(0, colon).trim().toLowerCase();
      const value = line.slice(colon + 1).trim().toLowerCase();
      if (name === "content-length") contentLength = Number(value);
      else if (name === "transfer-encoding") chunked = value.includes("chunked");
      else if (name === "connection") close = value.includes("close");
    }
    const parts: Uint8Array[] = [];
    let firstBodyMs = -1;
    if (chunked) {
      for (;;) {
        let lineEnd = indexOfCrlf(this.#buf, this.#start, this.#end);
        while (lineEnd < 0) {
          await this.#fill();
          lineEnd = indexOfCrlf(this.#buf, this.#start, this.#end);
          check();
        }
        const size = parseInt(decoder.decode(this.#buf.subarray(this.#start, lineEnd)), 16);
        if (!Number.isFinite(size)) throw new Error("bad chunk size");
        this.#start = lineEnd + 2;
        while (this.#end - this.#start < size + 2) {
          await this.#fill();
          check();
        }
        if (size === 0) {
          this.#start += 2;
          break;
        }
        if (firstBodyMs < 0) firstBodyMs = performance.now() - t0;
        if (keepBody) parts.push(this.#buf.slice(this.#start, this.#start + size));
        this.#start += size + 2;
      }
    } else if (contentLength >= 0) {
      while (this.#end - this.#start < contentLength) {
        await this.#fill();
        if (firstBodyMs < 0 && this.#end > this.#start) firstBodyMs = performance.now() - t0;
        check();
      }
      if (firstBodyMs < 0) firstBodyMs = performance.now() - t0;
      if (keepBody) parts.push(this.#buf.slice(this.#start, this.#start + contentLength));
      this.#start += contentLength;
    } else {
      throw new Error(`response without Content-Length or chunked framing (status ${status})`);
    }
    const totalMs = performance.now() - t0;
    if (close) this.close();
    return { status, firstByteMs, firstBodyMs, totalMs, body: keepBody ? concat(parts) : undefined };
  }
}

class ConnectionClosed extends Error {
  constructor(readonly beforeAnyByte: boolean) {
    super("connection closed by the server");
  }
}

async function writeAll(conn: Deno.TcpConn, bytes: Uint8Array): Promise<void> {
  let off = 0;
  while (off < bytes.length) off += await conn.write(bytes.subarray(off));
}

function indexOfCrlfCrlf(buf: Uint8Array, from: number, to: number): number {
  for (let i = Math.max(0, from); i + 3 < to; i++) {
    if (buf[i] === 13 && buf[i + 1] === 10 && buf[i + 2] === 13 && buf[i + 3] === 10) return i;
  }
  return -1;
}

function indexOfCrlf(buf: Uint8Array, from: number, to: number): number {
  for (let i = from; i + 1 < to; i++) if (buf[i] === 13 && buf[i + 1] === 10) return i;
  return -1;
}

function concat(parts: Uint8Array[]): Uint8Array {
  if (parts.length === 1) return parts[0];
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}

/** What one closed-loop load run measured. */
export interface LoadResult {
  /** requests answered 2xx inside the measured window */
  requests: number;
  /** non-2xx answers and failed requests inside the measured window */
  errors: number;
  seconds: number;
  rps: number;
  /** TCP connections opened over the whole run (warm-up included): equal to `connections` when keep-alive holds */
  connectionsOpened: number;
  /** per-request latency percentiles in ms over the measured window */
  p50Ms: number;
  p99Ms: number;
}

export interface LoadOptions {
  port: number;
  request: Uint8Array;
  connections: number;
  warmupMs: number;
  durationMs: number;
  /** called once when the measured window opens and once when it closes, `cpuEdgeMs` inside it (CPU sampling) */
  onWindow?: (edge: "start" | "end") => void;
  cpuEdgeMs?: number;
}

/** Upper bound on requests per connection per run, so the loop is bounded in count as well as in time. */
const MAX_REQUESTS_PER_CONNECTION = 5_000_000;
/** Latency samples kept per connection (a ring would bias; the first ones in the window are kept). */
const MAX_SAMPLES_PER_CONNECTION = 200_000;

/**
 * `connections` keep-alive connections, each sending the same request back to back for warm-up plus duration;
 * only answers that complete inside the measured window count.
 */
export async function runLoad(opts: LoadOptions): Promise<LoadResult> {
  const t0 = performance.now();
  const windowStart = t0 + opts.warmupMs;
  const windowEnd = windowStart + opts.durationMs;
  let requests = 0, errors = 0, opened = 0;
  const latencies: number[] = [];
  const edge = opts.cpuEdgeMs ?? 0;
  const startTimer = setTimeout(() => opts.onWindow?.("start"), opts.warmupMs + edge);
  const endTimer = setTimeout(() => opts.onWindow?.("end"), opts.warmupMs + opts.durationMs - edge);
  const worker = async () => {
    const conn = new HttpConnection(opts.port);
    let kept = 0;
    try {
      for (let i = 0; i < MAX_REQUESTS_PER_CONNECTION; i++) {
        const sent = performance.now();
        if (sent >= windowEnd) break;
        let ok = false;
        let ms = 0;
        try {
          const ex = await conn.request(opts.request);
          ok = ex.status >= 200 && ex.status < 300;
          ms = ex.totalMs;
        } catch {
          ok = false;
        }
        const done = performance.now();
        if (done < windowStart || done > windowEnd) continue;
        if (!ok) {
          errors++;
          continue;
        }
        requests++;
        if (sent >= windowStart && kept < MAX_SAMPLES_PER_CONNECTION) {
          latencies.push(ms);
          kept++;
        }
      }
    } finally {
      opened += conn.opened;
      conn.close();
    }
  };
  await Promise.all(Array.from({ length: opts.connections }, worker));
  clearTimeout(startTimer);
  clearTimeout(endTimer);
  latencies.sort((a, b) => a - b);
  const seconds = opts.durationMs / 1000;
  return {
    requests,
    errors,
    seconds,
    rps: requests / seconds,
    connectionsOpened: opened,
    p50Ms: percentile(latencies, 50),
    p99Ms: percentile(latencies, 99),
  };
}

/** Nearest-rank percentile of an ascending array; NaN when empty. */
export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))];
}
