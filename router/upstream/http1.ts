/**
 * An HTTP/1.1 keep-alive client for the engines (llama-server on 127.0.0.1), in place of fetch.
 *
 * Why: fetch costs ~140-170 µs of CPU per proxied request (Request, Headers and stream objects, its generic
 * pool); this client writes one buffer per request and parses only what the gateway needs, straight from a read
 * buffer each connection reuses. Small answers (a Content-Length up to `maxBufferedBytes`) come back whole, with
 * no stream at all; chunked, long or close-delimited bodies come as a ReadableStream that passes each piece on as
 * it arrives (SSE latency), and that closes the socket when cancelled, so the engine sees the disconnect and stops
 * generating.
 *
 * Sockets are pooled per port, newest first (the warm ones are reused and the stale ones sink), and carry one
 * request at a time: a socket goes back to the pool only once its response has been read to the end.
 */
import { ChunkedDecoder } from "./chunked.ts";
import { Http1Connection, MAX_SINGLE_WRITE_BYTES } from "./connection.ts";
import { InvalidUpstreamRequestError, UpstreamError, UpstreamPoolClosedError } from "./errors.ts";
import { findHeadEnd, isToken, latin1, parseHead, type ResponseHead, resumeHeadScan } from "./head.ts";

export { InvalidUpstreamRequestError, UpstreamError, UpstreamPoolClosedError };

export interface UpstreamRequest {
  /** the engine's port on 127.0.0.1 */
  port: number;
  method: string;
  /** origin-form target, e.g. `/v1/chat/completions?x=1` (already percent-encoded) */
  pathAndQuery: string;
  /**
   * Already filtered by the caller (no hop-by-hop fields). Host, Content-Length, Transfer-Encoding, Connection and
   * the other framing fields are set here and dropped from this list, so a caller can never desync the framing.
   */
  headers: Iterable<[string, string]>;
  body: Uint8Array | null;
  /**
   * Aborting closes the socket (the engine sees the disconnect and stops generating). Before the response: the
   * request rejects with the signal's reason, as fetch does. After: the body stream errors with it.
   */
  signal?: AbortSignal;
}

export interface UpstreamResponse {
  status: number;
  /** as received, minus the framing fields (transfer-encoding, content-length, connection, keep-alive) */
  headers: Headers;
  /**
   * The whole body when the engine sent a Content-Length ≤ maxBufferedBytes (default 1 MiB); else null. Typed
   * with an ArrayBuffer (never shared) so that it is a BodyInit as it is: `new Response(res.bytes ?? res.stream)`.
   */
  bytes: Uint8Array<ArrayBuffer> | null;
  /**
   * Otherwise the body as a stream, piece by piece as it arrives (chunked, a long Content-Length, or until the
   * close). Both are null when the response has no body by definition (HEAD, 204, 304), as fetch's body is.
   * A stream must be read to the end or cancelled: until then it holds its socket.
   */
  stream: ReadableStream<Uint8Array<ArrayBuffer>> | null;
  /** resolves (never rejects) once the body was read to the end, or the stream ended, was cancelled or failed */
  done: Promise<void>;
}

/** Counters since the pool was made, for tests and metrics. */
export interface UpstreamPoolStats {
  /** TCP connections opened: with keep-alive working it stays near the peak concurrency per port */
  connects: number;
  /** requests sent again on a fresh socket because the idle one they took had been closed by the engine */
  retries: number;
  /** sockets opened ahead of need, in place of one that carried an event stream (see `ENDS_BY_CLOSING`) */
  prewarmed: number;
}

export interface UpstreamPoolOptions {
  /** idle keep-alive sockets kept per port (default 64); more are closed when they come back */
  maxIdlePerPort?: number;
  /** a body with a Content-Length up to this is read whole into `bytes` (default 1 MiB) */
  maxBufferedBytes?: number;
  /**
   * An idle socket older than this is closed instead of reused (default 4000 ms): cpp-httplib, llama-server's
   * HTTP layer, drops keep-alive sockets idle for 5 s, and a request on one of those would need a retry.
   */
  idleTimeoutMs?: number;
}

/** Longest response head, chunk-size line or trailer section accepted. */
const MAX_HEAD_BYTES = 64 * 1024;
const DEFAULT_MAX_IDLE = 64;
const DEFAULT_MAX_BUFFERED = 1024 * 1024;
const DEFAULT_IDLE_TIMEOUT_MS = 4000;

/** Body framing of the response being read. */
const BY_LENGTH = 1;
const CHUNKED = 2;
const UNTIL_CLOSE = 3;

const RESOLVED: Promise<void> = Promise.resolve();

/**
 * llama-server closes the socket after every event stream, whatever its Keep-Alive header says: its stream's
 * content provider returns false at the end, which cpp-httplib takes as a failed write. Pooling that socket
 * would cost the next request a write into a dead socket, its failure and a connect; it is closed instead, and
 * a fresh one is opened at once, off the next request's path.
 */
const ENDS_BY_CLOSING = "text/event-stream";
const encoder = new TextEncoder();

/** Visible ASCII only: a space or line break in the target would change the request line. */
const TARGET = /^[\x21-\x7e]+$/;
const BAD_VALUE = /[\0\r\n]/;
/** Fields this client owns: letting a caller's copy through would allow two framings of one request. */
const OWN_FIELDS = new Set([
  "host",
  "content-length",
  "transfer-encoding",
  "connection",
  "keep-alive",
  "upgrade",
  "te",
  "trailer",
  "expect",
  "proxy-connection",
]);

/** The peer ended the connection (EOF); a reason to retry an idle socket, as a reset is. */
class PeerClosedError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "PeerClosedError";
  }
}

/** The errors an idle socket that the server already closed produces on the write or on the first read. */
function closedByPeer(err: unknown): boolean {
  return err instanceof PeerClosedError || err instanceof Deno.errors.ConnectionReset ||
    err instanceof Deno.errors.BrokenPipe || err instanceof Deno.errors.ConnectionAborted ||
    err instanceof Deno.errors.NotConnected || err instanceof Deno.errors.UnexpectedEof;
}

function asUpstreamError(err: unknown, port: number, beforeResponse: boolean): Error {
  if (err instanceof UpstreamError || err instanceof InvalidUpstreamRequestError) return err;
  const message = err instanceof Error ? err.message : String(err);
  return new UpstreamError(`engine on 127.0.0.1:${port}: ${message}`, beforeResponse, { cause: err });
}

class PortState {
  readonly idle: Http1Connection[] = [];
  constructor(readonly generation: number) {}
}

/** The pool's state, shared with the exchanges (which are not part of the public API). */
class PoolCore {
  readonly ports = new Map<number, PortState>();
  readonly stats: UpstreamPoolStats = { connects: 0, retries: 0, prewarmed: 0 };
  closed = false;
  /** Increases on every new PortState, so a socket from before `closePort` never matches a later one. */
  #generations = 0;

  constructor(readonly maxIdle: number, readonly maxBufferedBytes: number, readonly idleTimeoutMs: number) {}

  /** The newest idle socket of `port`, or null. */
  take(port: number): Http1Connection | null {
    const state = this.ports.get(port);
    if (state === undefined) return null;
    const idle = state.idle;
    const conn = idle.pop();
    if (conn === undefined) return null;
    if (Date.now() - conn.idleSince <= this.idleTimeoutMs) return conn;
    // The newest one is stale, so every older one is too.
    conn.close();
    for (const c of idle) c.close();
    idle.length = 0;
    return null;
  }

  /** Takes back a socket whose response was read to the end (and nothing more arrived). */
  put(conn: Http1Connection): void {
    const state = this.ports.get(conn.port);
    if (
      this.closed || conn.closed || state === undefined || state.generation !== conn.generation ||
      state.idle.length >= this.maxIdle
    ) {
      conn.close();
      return;
    }
    conn.idleSince = Date.now();
    state.idle.push(conn);
  }

  async connect(port: number): Promise<Http1Connection> {
    let state = this.ports.get(port);
    if (state === undefined) {
      state = new PortState(++this.#generations);
      this.ports.set(port, state);
    }
    const generation = state.generation;
    let tcp: Deno.TcpConn;
    try {
      tcp = await Deno.connect({ hostname: "127.0.0.1", port });
    } catch (err) {
      throw new UpstreamError(
        `cannot connect to the engine on 127.0.0.1:${port}: ${(err as Error).message}`,
        true,
        {
          cause: err,
        },
      );
    }
    // Requests and SSE events are small writes that must leave at once.
    tcp.setNoDelay(true);
    this.stats.connects++;
    return new Http1Connection(tcp, port, generation);
  }

  /**
   * Opens a socket to `port` for the next request, in place of one the engine is closing. It goes to the idle
   * list when connected, unless the port was forgotten (`closePort`) meanwhile; a failure is nobody's concern.
   */
  prewarm(port: number): void {
    const state = this.ports.get(port);
    if (this.closed || state === undefined || state.idle.length >= this.maxIdle) return;
    this.stats.prewarmed++;
    this.connect(port).then((conn) => this.put(conn), () => {});
  }

  closeIdle(state: PortState): void {
    for (const c of state.idle) c.close();
    state.idle.length = 0;
  }
}

export class UpstreamPool {
  readonly #core: PoolCore;

  constructor(opts: UpstreamPoolOptions = {}) {
    this.#core = new PoolCore(
      Math.max(0, opts.maxIdlePerPort ?? DEFAULT_MAX_IDLE),
      Math.max(0, opts.maxBufferedBytes ?? DEFAULT_MAX_BUFFERED),
      opts.idleTimeoutMs ?? DEFAULT_IDLE_TIMEOUT_MS,
    );
  }

  /**
   * Sends one request and resolves once the response head has arrived (and, for a small body, the body too).
   * Rejects with an UpstreamError when the engine cannot be reached or breaks the exchange, with the signal's
   * reason when aborted, and with an InvalidUpstreamRequestError for a request that cannot be written as is.
   */
  request(req: UpstreamRequest): Promise<UpstreamResponse> {
    if (this.#core.closed) return Promise.reject(new UpstreamPoolClosedError());
    return new Exchange(this.#core, req).run();
  }

  stats(): UpstreamPoolStats {
    return { ...this.#core.stats };
  }

  /** Idle keep-alive sockets held for `port` now. */
  idleCount(port: number): number {
    return this.#core.ports.get(port)?.idle.length ?? 0;
  }

  /**
   * Forgets an engine's port (it stopped; the port may go to another engine): idle sockets are closed, and those
   * in use are closed when their response ends instead of coming back.
   */
  closePort(port: number): void {
    const state = this.#core.ports.get(port);
    if (state === undefined) return;
    this.#core.closeIdle(state);
    this.#core.ports.delete(port);
  }

  /** Closes every idle socket; responses in progress finish and close their sockets; later requests are refused. */
  close(): void {
    this.#core.closed = true;
    for (const state of this.#core.ports.values()) this.#core.closeIdle(state);
    this.#core.ports.clear();
  }
}

/**
 * One request and its response. It is also the response stream's underlying source and the abort listener, so
 * a request allocates no closures for either.
 */
class Exchange implements UnderlyingDefaultSource<Uint8Array<ArrayBuffer>>, EventListenerObject {
  readonly #core: PoolCore;
  readonly #req: UpstreamRequest;
  #conn: Http1Connection | null = null;
  /** some byte of the response arrived on the current connection */
  #received = false;
  #mode = 0;
  /** BY_LENGTH: body bytes still to come */
  #remaining = 0;
  #chunked: ChunkedDecoder | null = null;
  #reusable = false;
  /** the socket is not reused, but its port will want another (ENDS_BY_CLOSING) */
  #replace = false;
  #bodyDone = false;
  #finished = false;
  #controller: ReadableStreamDefaultController<Uint8Array<ArrayBuffer>> | null = null;
  #resolveDone: (() => void) | null = null;

  constructor(core: PoolCore, req: UpstreamRequest) {
    this.#core = core;
    this.#req = req;
  }

  async run(): Promise<UpstreamResponse> {
    const req = this.#req;
    const signal = req.signal;
    const head = requestHead(req);
    if (signal !== undefined) {
      signal.throwIfAborted();
      signal.addEventListener("abort", this);
    }
    try {
      let conn = this.#core.take(req.port);
      for (let attempt = 1;; attempt++) {
        const reused = conn !== null;
        if (conn === null) {
          conn = await this.#core.connect(req.port);
          if (this.#finished) {
            // aborted while connecting
            conn.close();
            throw signal?.reason;
          }
        }
        this.#conn = conn;
        this.#received = false;
        try {
          await this.#send(conn, head);
          return await this.#receive(conn);
        } catch (err) {
          // An idle socket the engine had closed (llama-server ends one after 100 requests or 5 s idle) has seen
          // nothing of this request, so it goes once more on a fresh socket; anything else is the caller's to see.
          if (!reused || attempt > 1 || this.#received || this.#finished || !closedByPeer(err)) throw err;
          conn.close();
          conn = null;
          this.#conn = null;
          this.#core.stats.retries++;
        }
      }
    } catch (err) {
      this.#destroy();
      if (signal?.aborted) throw signal.reason;
      throw asUpstreamError(err, req.port, !this.#received);
    }
  }

  async #send(conn: Http1Connection, head: string): Promise<void> {
    const body = this.#req.body;
    const bodyLength = body === null ? 0 : body.length;
    // encodeInto writes at most 3 bytes per UTF-16 unit; heads are ASCII in practice.
    const room = head.length * 3 + bodyLength;
    if (room <= MAX_SINGLE_WRITE_BYTES) {
      const out = conn.writeBuffer(room);
      const written = encoder.encodeInto(head, out).written;
      if (body !== null) out.set(body, written);
      await conn.writeAll(out.subarray(0, written + bodyLength));
    } else {
      // A big body is written from where it is: copying it costs more than the second write saves.
      await conn.writeAll(encoder.encode(head));
      if (body !== null && bodyLength > 0) await conn.writeAll(body);
    }
  }

  async #receive(conn: Http1Connection): Promise<UpstreamResponse> {
    let head = await this.#readHead(conn);
    // 1xx answers are interim (100 Continue, 103 Early Hints); the final one follows on the same socket.
    while (head.status < 200) {
      if (head.status === 101) throw new UpstreamError("the engine switched protocols (101) unasked", false);
      head = await this.#readHead(conn);
    }
    const status = head.status;
    this.#reusable = head.keepAlive;
    if (this.#req.method === "HEAD" || status === 204 || status === 304) {
      this.#release();
      return { status, headers: head.headers, bytes: null, stream: null, done: RESOLVED };
    }
    if (head.hasTransferEncoding) {
      // With both framings, or a coding other than chunked last, the socket cannot be trusted afterwards (RFC 9112 6.3).
      if (head.contentLength !== -1 || !head.chunked) this.#reusable = false;
      if (head.chunked) {
        this.#mode = CHUNKED;
        this.#chunked = new ChunkedDecoder(MAX_HEAD_BYTES);
        if (this.#reusable && head.headers.get("content-type")?.startsWith(ENDS_BY_CLOSING)) {
          this.#reusable = false;
          this.#replace = true;
        }
      } else {
        this.#mode = UNTIL_CLOSE;
      }
    } else if (head.contentLength >= 0) {
      if (head.contentLength <= this.#core.maxBufferedBytes) {
        const bytes = await this.#readWhole(conn, head.contentLength);
        this.#release();
        return { status, headers: head.headers, bytes, stream: null, done: RESOLVED };
      }
      this.#mode = BY_LENGTH;
      this.#remaining = head.contentLength;
    } else {
      this.#mode = UNTIL_CLOSE;
      this.#reusable = false;
    }
    const done = new Promise<void>((resolve) => this.#resolveDone = resolve);
    return { status, headers: head.headers, bytes: null, stream: new ReadableStream(this), done };
  }

  async #readHead(conn: Http1Connection): Promise<ResponseHead> {
    let scan = conn.start;
    for (;;) {
      const end = findHeadEnd(conn.buf, scan, conn.end);
      if (end !== -1) {
        const text = latin1(conn.buf, conn.start, end);
        conn.start = end;
        return parseHead(text);
      }
      const scanned = conn.end - conn.start;
      const n = await conn.fill(MAX_HEAD_BYTES);
      if (n === 0) {
        throw new PeerClosedError(
          this.#received
            ? "the engine closed the connection inside the response head"
            : "the engine closed the connection before answering",
        );
      }
      if (n < 0) throw new UpstreamError(`the engine's response head is over ${MAX_HEAD_BYTES} bytes`, false);
      this.#received = true;
      scan = conn.start + resumeHeadScan(0, scanned);
    }
  }

  /** A body of known, small length, read whole; the tail not yet buffered is read straight into the result. */
  async #readWhole(conn: Http1Connection, length: number): Promise<Uint8Array<ArrayBuffer>> {
    const have = conn.end - conn.start;
    if (have >= length) {
      const bytes = conn.buf.slice(conn.start, conn.start + length);
      conn.start += length;
      return bytes;
    }
    const bytes = new Uint8Array(length);
    bytes.set(conn.buf.subarray(conn.start, conn.end));
    conn.start = conn.end = 0;
    let off = have;
    while (off < length) {
      const n = await conn.readInto(bytes.subarray(off));
      if (n === 0) {
        throw new PeerClosedError(`the engine closed the connection after ${off} of ${length} body bytes`);
      }
      off += n;
    }
    return bytes;
  }

  /** The next piece of a streamed body from what is buffered, or null when more must be read. */
  #decode(conn: Http1Connection): Uint8Array<ArrayBuffer> | null {
    if (this.#mode === CHUNKED) {
      const decoder = this.#chunked!;
      const piece = decoder.next(conn);
      if (decoder.done) this.#bodyDone = true;
      return piece;
    }
    const avail = conn.end - conn.start;
    if (avail === 0) return null;
    if (this.#mode === UNTIL_CLOSE) {
      const piece = conn.buf.slice(conn.start, conn.end);
      conn.start = conn.end;
      return piece;
    }
    const take = avail < this.#remaining ? avail : this.#remaining;
    const piece = conn.buf.slice(conn.start, conn.start + take);
    conn.start += take;
    this.#remaining -= take;
    if (this.#remaining === 0) this.#bodyDone = true;
    return piece;
  }

  // ReadableStream underlying source -------------------------------------------------------------------------

  start(controller: ReadableStreamDefaultController<Uint8Array<ArrayBuffer>>): void {
    this.#controller = controller;
  }

  async pull(controller: ReadableStreamDefaultController<Uint8Array<ArrayBuffer>>): Promise<void> {
    const conn = this.#conn;
    if (conn === null) return;
    try {
      for (;;) {
        const piece = this.#decode(conn);
        if (piece !== null) controller.enqueue(piece);
        if (this.#bodyDone) {
          this.#release();
          controller.close();
          return;
        }
        if (piece !== null) return;
        const n = await conn.fill(MAX_HEAD_BYTES);
        // cancelled or aborted while reading: the stream is settled already
        if (this.#finished) return;
        if (n > 0) continue;
        if (n < 0) {
          throw new UpstreamError(`a chunk line or the trailers are over ${MAX_HEAD_BYTES} bytes`, false);
        }
        if (this.#mode !== UNTIL_CLOSE) {
          throw new PeerClosedError(
            this.#mode === BY_LENGTH
              ? `the engine closed the connection with ${this.#remaining} body bytes missing`
              : "the engine closed the connection inside a chunked body",
          );
        }
        this.#bodyDone = true;
      }
    } catch (err) {
      if (this.#finished) return;
      this.#destroy();
      controller.error(asUpstreamError(err, this.#req.port, false));
    }
  }

  cancel(): void {
    // Closing (not draining) the socket is what tells the engine to stop generating.
    this.#destroy();
  }

  // AbortSignal listener ---------------------------------------------------------------------------------------

  handleEvent(): void {
    if (this.#finished) return;
    const controller = this.#controller;
    // Closing the socket makes a pending read or write fail, which settles whichever phase is running.
    this.#destroy();
    if (controller !== null) {
      try {
        controller.error(this.#req.signal?.reason);
      } catch {
        // The stream was already closed or errored.
      }
    }
  }

  // Ending ------------------------------------------------------------------------------------------------------

  /** The response was read to the end: the socket goes back to the pool if both sides keep it alive. */
  #release(): void {
    if (this.#finished) return;
    const conn = this.#conn!;
    this.#conn = null;
    // Bytes beyond the response mean the engine and this client disagree on framing: never reuse that.
    if (this.#reusable && conn.start === conn.end) this.#core.put(conn);
    else {
      conn.close();
      if (this.#replace) this.#core.prewarm(conn.port);
    }
    this.#finish();
  }

  #destroy(): void {
    const conn = this.#conn;
    this.#conn = null;
    conn?.close();
    this.#finish();
  }

  #finish(): void {
    if (this.#finished) return;
    this.#finished = true;
    this.#req.signal?.removeEventListener("abort", this);
    this.#resolveDone?.();
  }
}

/** The request head as a string, checked so that nothing in it can change the framing. */
function requestHead(req: UpstreamRequest): string {
  const { method, pathAndQuery, port } = req;
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    throw new InvalidUpstreamRequestError(`port ${port} is not a TCP port`);
  }
  if (!isToken(method)) {
    throw new InvalidUpstreamRequestError(`method ${JSON.stringify(method)} is not a token`);
  }
  if (!TARGET.test(pathAndQuery)) {
    throw new InvalidUpstreamRequestError(`target ${JSON.stringify(pathAndQuery)} is not visible ASCII`);
  }
  let head = `${method} ${pathAndQuery} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nConnection: keep-alive\r\n`;
  for (const [name, value] of req.headers) {
    if (!isToken(name)) {
      throw new InvalidUpstreamRequestError(`header name ${JSON.stringify(name)} is not a token`);
    }
    if (BAD_VALUE.test(value)) {
      throw new InvalidUpstreamRequestError(`header ${name} has a line break or NUL in its value`);
    }
    if (OWN_FIELDS.has(name.toLowerCase())) continue;
    head += `${name}: ${value}\r\n`;
  }
  const body = req.body;
  if (body !== null) head += `Content-Length: ${body.length}\r\n`;
  else if (method === "POST" || method === "PUT" || method === "PATCH") head += "Content-Length: 0\r\n";
  return head + "\r\n";
}
