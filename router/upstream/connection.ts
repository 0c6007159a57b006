/**
 * One keep-alive TCP connection to an engine, with its own read buffer (reused for every response it carries)
 * and its own write buffer (so a request is encoded without allocating). Owned by one exchange at a time.
 */

/** Initial read buffer: a typical engine answer (head plus a small JSON or one SSE event) arrives in one read. */
const READ_BUFFER_BYTES = 16 * 1024;
/** Requests up to this size are copied into one buffer and sent with one write; bigger bodies go separately. */
export const MAX_SINGLE_WRITE_BYTES = 64 * 1024;

/** Received bytes, of which `buf[start, end)` are not consumed yet: what the body decoders work on. */
export interface ReadBuffer {
  buf: Uint8Array;
  start: number;
  end: number;
}

export class Http1Connection implements ReadBuffer {
  /** received bytes; `[start, end)` is what has not been consumed yet */
  buf: Uint8Array = new Uint8Array(READ_BUFFER_BYTES);
  start = 0;
  end = 0;
  /** when it was last put in the idle list (Date.now(): no op call, unlike performance.now()) */
  idleSince = 0;
  #wbuf: Uint8Array | null = null;
  #closed = false;

  constructor(
    readonly tcp: Deno.TcpConn,
    readonly port: number,
    /** the pool's generation of this port when connected: an older one is not taken back after `closePort` */
    readonly generation: number,
  ) {}

  get closed(): boolean {
    return this.#closed;
  }

  /**
   * Reads more bytes after `end`, first making room by moving the unconsumed bytes to the front or, when they fill
   * the buffer, by doubling it up to `limit`. Returns the count read, 0 at EOF, or -1 when `limit` bytes are
   * waiting unconsumed (a head or chunk line that is too long).
   */
  async fill(limit: number): Promise<number> {
    if (this.start === this.end) {
      this.start = this.end = 0;
    } else if (this.end === this.buf.length) {
      if (this.start > 0) {
        this.buf.copyWithin(0, this.start, this.end);
        this.end -= this.start;
        this.start = 0;
      } else {
        if (this.buf.length >= limit) return -1;
        const bigger = new Uint8Array(Math.min(limit, this.buf.length * 2));
        bigger.set(this.buf.subarray(0, this.end));
        this.buf = bigger;
      }
    }
    const n = await this.tcp.read(this.buf.subarray(this.end));
    if (n === null) return 0;
    this.end += n;
    return n;
  }

  /** Reads straight into `into` (a body being collected), bypassing the buffer; 0 at EOF. */
  async readInto(into: Uint8Array): Promise<number> {
    return (await this.tcp.read(into)) ?? 0;
  }

  async writeAll(bytes: Uint8Array): Promise<void> {
    let off = 0;
    while (off < bytes.length) off += await this.tcp.write(off === 0 ? bytes : bytes.subarray(off));
  }

  /**
   * A scratch buffer of at least `size` bytes for encoding a request, kept between requests (the previous write
   * has completed by then: one exchange at a time). Sizes above MAX_SINGLE_WRITE_BYTES get a one-off buffer.
   */
  writeBuffer(size: number): Uint8Array {
    if (size > MAX_SINGLE_WRITE_BYTES) return new Uint8Array(size);
    if (this.#wbuf === null || this.#wbuf.length < size) {
      let n = 1024;
      while (n < size) n *= 2;
      this.#wbuf = new Uint8Array(n);
    }
    return this.#wbuf;
  }

  /** Idempotent; a pending read or write then fails, which is how an exchange in progress is stopped. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    try {
      this.tcp.close();
    } catch {
      // Already closed by Deno (the peer reset it): nothing left to free.
    }
  }
}
