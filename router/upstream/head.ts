/**
 * Response heads for the upstream HTTP/1.1 client: finding where a head ends in raw bytes, and parsing its
 * status line and header fields into a `Headers` plus the body framing (RFC 9112 sections 4-6).
 */
import { UpstreamError } from "./errors.ts";

const LF = 10;
const CR = 13;

/**
 * Index one past the blank line that ends a head in `buf[from, to)`, or -1 if it has not arrived yet. Lines may
 * end in CRLF or a bare LF (RFC 9112 2.2 lets a recipient accept LF). Only bytes are compared, nothing is decoded.
 */
export function findHeadEnd(buf: Uint8Array, from: number, to: number): number {
  // A plain loop: TypedArray.indexOf is a slow call per line in V8, and it would scan stale bytes past `to`.
  for (let i = from; i < to; i++) {
    if (buf[i] !== LF) continue;
    const next = i + 1;
    if (next < to) {
      const c = buf[next];
      if (c === LF) return next + 1;
      if (c === CR && next + 1 < to && buf[next + 1] === LF) return next + 2;
    }
  }
  return -1;
}

/** Where a later `findHeadEnd` can resume after scanning up to `to`: a blank line may straddle the boundary. */
export function resumeHeadScan(from: number, to: number): number {
  return Math.max(from, to - 3);
}

/** Header bytes as a byte string (one char per byte), as fetch exposes them: never lossy, unlike UTF-8. */
export function latin1(buf: Uint8Array, from: number, to: number): string {
  // apply() takes the bytes as arguments; slices keep the argument count far below engine limits.
  const SLICE = 8192;
  let s = "";
  for (let i = from; i < to; i += SLICE) {
    const part = buf.subarray(i, Math.min(to, i + SLICE));
    s += String.fromCharCode.apply(null, part as unknown as number[]);
  }
  return s;
}

/** One parsed response head. */
export interface ResponseHead {
  status: number;
  /**
   * every field except the framing ones (transfer-encoding, content-length, connection, keep-alive) and those
   * a relay must not pass on: the engine's `Server` and its CORS fields (`Access-Control-*`), as the gateway
   * answers with its own (--cors-origins)
   */
  headers: Headers;
  /** the Content-Length, or -1 when there is none */
  contentLength: number;
  /** a Transfer-Encoding field was present (it overrides Content-Length) */
  hasTransferEncoding: boolean;
  /** the last transfer coding is chunked; with other codings only, the body runs until the close */
  chunked: boolean;
  /** the server keeps the connection open after this response (HTTP/1.1 without `Connection: close`, or 1.0 asking) */
  keepAlive: boolean;
}

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

/** A method or field name (RFC 9110 5.6.2 token). */
export function isToken(s: string): boolean {
  return TOKEN.test(s);
}
const DIGITS = /^[0-9]{1,15}$/;

function malformed(what: string): UpstreamError {
  return new UpstreamError(`malformed response from the engine: ${what}`, false);
}

/** Strips optional whitespace (SP and HTAB only: String.trim would also eat a byte 0xA0 at the edges). */
function trimOws(s: string, from: number, to: number): string {
  while (from < to && (s.charCodeAt(from) === 32 || s.charCodeAt(from) === 9)) from++;
  while (to > from && (s.charCodeAt(to - 1) === 32 || s.charCodeAt(to - 1) === 9)) to--;
  return s.slice(from, to);
}

/** Collects fields, keeping the framing ones aside; one instance per head. */
class FieldSink {
  headers = new Headers();
  contentLength = -1;
  transferEncoding: string | null = null;
  close = false;
  keepAliveAsked = false;

  add(name: string, value: string): void {
    // Only names of the right length (or first letter) are lowercased: most fields are none of these.
    const n = name.length;
    if (n === 6 && name.toLowerCase() === "server") return;
    if (n > 15 && (name.charCodeAt(0) | 32) === 97 && name.slice(0, 15).toLowerCase() === "access-control-") {
      return;
    }
    if (n === 14 || n === 17 || n === 10) {
      const lower = name.toLowerCase();
      if (lower === "content-length") return this.#contentLength(value);
      if (lower === "transfer-encoding") {
        this.transferEncoding = this.transferEncoding === null ? value : `${this.transferEncoding},${value}`;
        return;
      }
      if (lower === "connection") {
        for (const token of value.split(",")) {
          const t = token.trim().toLowerCase();
          if (t === "close") this.close = true;
          else if (t === "keep-alive") this.keepAliveAsked = true;
        }
        return;
      }
      if (lower === "keep-alive") return;
    }
    try {
      this.headers.append(name, value);
    } catch (err) {
      throw malformed(`header ${JSON.stringify(name)}: ${(err as Error).message}`);
    }
  }

  /** A list of equal values ("5, 5", or the field repeated) is one length (RFC 9110 8.6); unequal ones are an attack. */
  #contentLength(value: string): void {
    for (const part of value.includes(",") ? value.split(",") : [value]) {
      const v = part.trim();
      if (!DIGITS.test(v)) throw malformed(`Content-Length ${JSON.stringify(value)}`);
      const n = Number(v);
      if (this.contentLength !== -1 && this.contentLength !== n) {
        throw malformed(`conflicting Content-Length values ${this.contentLength} and ${n}`);
      }
      this.contentLength = n;
    }
  }
}

/** Parses a head (status line through the blank line) given as a byte string; throws a malformed UpstreamError. */
export function parseHead(text: string): ResponseHead {
  let eol = text.indexOf("\n");
  if (eol === -1) eol = text.length;
  const lineEnd = eol > 0 && text.charCodeAt(eol - 1) === CR ? eol - 1 : eol;
  const status = parseStatusLine(text, lineEnd);
  const minor = text.charCodeAt(7) - 48;
  const sink = new FieldSink();
  // A field is added once the next line shows it is not continued (obs-fold, RFC 9112 5.2: joined with a space).
  let name = "";
  let value = "";
  let pos = eol + 1;
  while (pos < text.length) {
    let next = text.indexOf("\n", pos);
    if (next === -1) next = text.length;
    const end = next > pos && text.charCodeAt(next - 1) === CR ? next - 1 : next;
    if (end === pos) break;
    const first = text.charCodeAt(pos);
    if (first === 32 || first === 9) {
      if (name === "") throw malformed("continuation line before any header");
      value = value === "" ? trimOws(text, pos, end) : `${value} ${trimOws(text, pos, end)}`;
    } else {
      if (name !== "") sink.add(name, value);
      const colon = text.indexOf(":", pos);
      if (colon <= pos || colon >= end) {
        throw malformed(`header line ${JSON.stringify(text.slice(pos, end))}`);
      }
      name = text.slice(pos, colon);
      // Whitespace before the colon is rejected (RFC 9112 5.1): parsers disagreeing on it is how smuggling starts.
      if (!TOKEN.test(name)) throw malformed(`header name ${JSON.stringify(name)}`);
      value = trimOws(text, colon + 1, end);
    }
    pos = next + 1;
  }
  if (name !== "") sink.add(name, value);
  const te = sink.transferEncoding;
  let chunked = false;
  if (te !== null) {
    const codings = te.split(",");
    chunked = codings[codings.length - 1].trim().toLowerCase() === "chunked";
  }
  return {
    status,
    headers: sink.headers,
    contentLength: sink.contentLength,
    hasTransferEncoding: te !== null,
    chunked,
    keepAlive: !sink.close && (minor >= 1 || sink.keepAliveAsked),
  };
}

/** `HTTP/1.x SP 3DIGIT [SP reason]`; returns the status code. */
function parseStatusLine(text: string, end: number): number {
  const ok = end >= 12 && text.startsWith("HTTP/1.") && isDigit(text, 7) && text.charCodeAt(8) === 32 &&
    isDigit(text, 9) && isDigit(text, 10) && isDigit(text, 11) && (end === 12 || text.charCodeAt(12) === 32);
  const status = ok ? Number(text.slice(9, 12)) : 0;
  if (status < 100 || status > 599) {
    throw malformed(`status line ${JSON.stringify(text.slice(0, Math.min(end, 80)))}`);
  }
  return status;
}

function isDigit(text: string, i: number): boolean {
  const c = text.charCodeAt(i);
  return c >= 48 && c <= 57;
}
