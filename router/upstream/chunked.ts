/**
 * A `Transfer-Encoding: chunked` decoder (RFC 9112 7.1) working in place on a connection's read buffer. It hands
 * out chunk data as soon as any of it is buffered, even a part of a chunk, so an SSE event is passed on the moment
 * its bytes arrive; chunk extensions and trailer fields are read and dropped.
 */
import type { ReadBuffer } from "./connection.ts";
import { UpstreamError } from "./errors.ts";

const LF = 10;
const CR = 13;

const SIZE_LINE = 0;
const DATA = 1;
const DATA_END = 2;
const TRAILERS = 3;
const DONE = 4;

/** 13 hex digits stay below 2^53, so a size is always an exact number. */
const MAX_SIZE_DIGITS = 13;

function malformed(what: string): UpstreamError {
  return new UpstreamError(`malformed chunked body from the engine: ${what}`, false);
}

export class ChunkedDecoder {
  #state = SIZE_LINE;
  /** data bytes left in the current chunk */
  #remaining = 0;
  #trailerBytes = 0;

  constructor(readonly maxTrailerBytes: number) {}

  /** the terminating chunk and the trailer section have been consumed */
  get done(): boolean {
    return this.#state === DONE;
  }

  /**
   * Consumes buffered bytes of `conn` and returns the next piece of data (a copy: the buffer is reused), or null
   * when more bytes are needed or the body is done. After a piece it goes on through any chunk framing that is
   * already buffered, so the end of the body is seen together with the last data.
   */
  next(conn: ReadBuffer): Uint8Array<ArrayBuffer> | null {
    const buf = conn.buf;
    let piece: Uint8Array<ArrayBuffer> | null = null;
    for (;;) {
      const state = this.#state;
      if (state === DATA) {
        // One piece per call; the next chunk's data waits for the next call.
        if (piece !== null) return piece;
        const avail = conn.end - conn.start;
        if (avail === 0) return null;
        const take = avail < this.#remaining ? avail : this.#remaining;
        piece = buf.slice(conn.start, conn.start + take);
        conn.start += take;
        this.#remaining -= take;
        if (this.#remaining > 0) return piece;
        this.#state = DATA_END;
      } else if (state === DATA_END) {
        const avail = conn.end - conn.start;
        if (avail === 0) return piece;
        const c = buf[conn.start];
        if (c === CR) {
          if (avail < 2) return piece;
          if (buf[conn.start + 1] !== LF) throw malformed("chunk data not followed by CRLF");
          conn.start += 2;
        } else if (c === LF) {
          conn.start += 1;
        } else {
          throw malformed("chunk data longer than its size");
        }
        this.#state = SIZE_LINE;
      } else if (state === DONE) {
        return piece;
      } else {
        const lf = indexOfLf(buf, conn.start, conn.end);
        if (lf === -1) return piece;
        if (state === SIZE_LINE) {
          const size = parseSizeLine(buf, conn.start, lf);
          conn.start = lf + 1;
          if (size === 0) {
            this.#state = TRAILERS;
          } else {
            this.#remaining = size;
            this.#state = DATA;
          }
        } else {
          const empty = lf === conn.start || (lf === conn.start + 1 && buf[conn.start] === CR);
          this.#trailerBytes += lf + 1 - conn.start;
          conn.start = lf + 1;
          if (empty) this.#state = DONE;
          else if (this.#trailerBytes > this.maxTrailerBytes) {
            throw malformed(`trailers over ${this.maxTrailerBytes} bytes`);
          }
        }
      }
    }
  }
}

/** A bounded scan: bytes past `to` are left over from earlier reads into the reused buffer. */
function indexOfLf(buf: Uint8Array, from: number, to: number): number {
  for (let i = from; i < to; i++) if (buf[i] === LF) return i;
  return -1;
}

function hexValue(c: number): number {
  if (c >= 48 && c <= 57) return c - 48;
  if (c >= 97 && c <= 102) return c - 87;
  if (c >= 65 && c <= 70) return c - 55;
  return -1;
}

/** `1*HEXDIG [BWS ";" ext...] [CR] LF`: the size; the extensions are ignored, as the RFC allows. */
function parseSizeLine(buf: Uint8Array, from: number, lf: number): number {
  let i = from;
  let size = 0;
  for (; i < lf; i++) {
    const v = hexValue(buf[i]);
    if (v < 0) break;
    if (i - from >= MAX_SIZE_DIGITS) throw malformed("chunk size too large");
    size = size * 16 + v;
  }
  if (i === from) throw malformed("chunk size line without a size");
  while (i < lf && (buf[i] === 32 || buf[i] === 9)) i++;
  if (i < lf && buf[i] !== 59 && !(buf[i] === CR && i === lf - 1)) throw malformed("junk after a chunk size");
  return size;
}
