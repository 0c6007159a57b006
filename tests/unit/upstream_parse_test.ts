/**
 * The byte-level parts of the upstream HTTP/1.1 client on their own: where a head ends, what a head says about
 * framing, and the chunked decoder fed every possible split of its input.
 */
import { assert, assertEquals, assertMatch } from "../helpers/assert.ts";
import { ChunkedDecoder } from "../../router/upstream/chunked.ts";
import type { ReadBuffer } from "../../router/upstream/connection.ts";
import { UpstreamError } from "../../router/upstream/errors.ts";
import { findHeadEnd, latin1, parseHead, resumeHeadScan } from "../../router/upstream/head.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();

Deno.test("upstream head: the end of a head is found across any split, with CRLF or bare LF", () => {
  for (
    const head of ["HTTP/1.1 200 OK\r\nA: b\r\n\r\n", "HTTP/1.1 200 OK\nA: b\n\n", "HTTP/1.1 204 X\r\n\n"]
  ) {
    const bytes = enc.encode(head + "BODY");
    for (let cut = 0; cut <= bytes.length; cut++) {
      // bytes past `to` must be ignored, as stale bytes of a reused buffer are
      const first = findHeadEnd(bytes, 0, cut);
      const end = first !== -1 ? first : findHeadEnd(bytes, resumeHeadScan(0, cut), bytes.length);
      assertEquals(end, head.length, `${JSON.stringify(head)} cut at ${cut}`);
      if (cut < head.length) {
        assertEquals(
          first,
          -1,
          `nothing before the blank line has arrived (cut ${cut})`,
        );
      }
    }
  }
  assertEquals(findHeadEnd(enc.encode("HTTP/1.1 200 OK\r\nA: b\r\n"), 0, 25), -1);
});

Deno.test("upstream head: bytes above 0x7f stay one char per byte", () => {
  const bytes = new Uint8Array([0x63, 0x61, 0x66, 0xc3, 0xa9, 0x80]);
  assertEquals(latin1(bytes, 0, bytes.length), "caf\u00c3\u00a9\u0080");
  const big = new Uint8Array(20_000).fill(0x41);
  assertEquals(latin1(big, 1, big.length).length, 19_999);
});

Deno.test("upstream head: framing and keep-alive from the fields", () => {
  const cases: [string, { contentLength: number; chunked: boolean; te: boolean; keepAlive: boolean }][] = [
    ["HTTP/1.1 200 OK\r\nContent-Length: 12\r\n", {
      contentLength: 12,
      chunked: false,
      te: false,
      keepAlive: true,
    }],
    ["HTTP/1.1 200 OK\r\ncontent-length: 5, 5\r\nCONTENT-LENGTH: 5\r\n", {
      contentLength: 5,
      chunked: false,
      te: false,
      keepAlive: true,
    }],
    ["HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, Chunked\r\n", {
      contentLength: -1,
      chunked: true,
      te: true,
      keepAlive: true,
    }],
    ["HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n", {
      contentLength: -1,
      chunked: false,
      te: true,
      keepAlive: true,
    }],
    ["HTTP/1.1 200 OK\r\nConnection: Keep-Alive, CLOSE\r\n", {
      contentLength: -1,
      chunked: false,
      te: false,
      keepAlive: false,
    }],
    ["HTTP/1.0 200 OK\r\nContent-Length: 1\r\n", {
      contentLength: 1,
      chunked: false,
      te: false,
      keepAlive: false,
    }],
    ["HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nKeep-Alive: timeout=5\r\n", {
      contentLength: -1,
      chunked: false,
      te: false,
      keepAlive: true,
    }],
    ["HTTP/1.1 200\r\n", { contentLength: -1, chunked: false, te: false, keepAlive: true }],
  ];
  for (const [head, want] of cases) {
    const got = parseHead(head + "\r\n");
    assertEquals(
      {
        contentLength: got.contentLength,
        chunked: got.chunked,
        te: got.hasTransferEncoding,
        keepAlive: got.keepAlive,
      },
      want,
      head,
    );
    for (const framing of ["content-length", "transfer-encoding", "connection", "keep-alive"]) {
      assertEquals(got.headers.has(framing), false, `${framing} in ${head}`);
    }
  }
  const h = parseHead(
    "HTTP/1.1 404 Not Found\r\nX-A:  1 \t\r\nx-a: 2\r\nX-Fold: a\r\n\t b\r\nEmpty:\r\n\r\n",
  );
  assertEquals(h.status, 404);
  assertEquals(h.headers.get("x-a"), "1, 2");
  assertEquals(h.headers.get("x-fold"), "a b");
  assertEquals(h.headers.get("empty"), "");
  // what a relay must not pass on is left out; names that only look alike stay
  const relayed = parseHead(
    "HTTP/1.1 200 OK\r\nServer: llama.cpp\r\nACCESS-CONTROL-ALLOW-ORIGIN: *\r\n" +
      "Access-Control-Allow-Methods: GET\r\nServers: 2\r\nX-Server: a\r\nAccess-Controlled: b\r\n\r\n",
  );
  assertEquals([...relayed.headers.keys()], ["access-controlled", "servers", "x-server"]);
});

Deno.test("upstream head: malformed heads are UpstreamErrors after the response began", () => {
  const bad = [
    "HTTP/2 200 OK\r\n\r\n",
    "HTTP/1.1 99 OK\r\n\r\n",
    "HTTP/1.1 600 OK\r\n\r\n",
    "HTTP/1.1 20x OK\r\n\r\n",
    "HTTP/1.1 200OK\r\n\r\n",
    "HTTP/1.1 200 OK\r\nNo colon\r\n\r\n",
    "HTTP/1.1 200 OK\r\n: empty name\r\n\r\n",
    "HTTP/1.1 200 OK\r\n folded first\r\n\r\n",
    "HTTP/1.1 200 OK\r\nContent-Length: 1e3\r\n\r\n",
    "HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999\r\n\r\n",
    "HTTP/1.1 200 OK\r\nContent-Length: 3, 4\r\n\r\n",
    "HTTP/1.1 200 OK\r\nX-Nul: a\0b\r\n\r\n",
  ];
  for (const head of bad) {
    let err: unknown = null;
    try {
      parseHead(head);
    } catch (e) {
      err = e;
    }
    assert(err instanceof UpstreamError, `${JSON.stringify(head)}: ${err}`);
    assertEquals(err.beforeResponse, false);
    assertMatch(err.message, /malformed/);
  }
});

/** Feeds `wire` to a decoder in pieces cut at `cuts`, the way reads would deliver them; returns the data. */
function decodeInPieces(wire: Uint8Array, cuts: number[]): { data: string; done: boolean; left: number } {
  const rb: ReadBuffer = { buf: new Uint8Array(wire.length + 16).fill(0x0a), start: 0, end: 0 };
  const decoder = new ChunkedDecoder(1024);
  let data = "";
  for (const cut of [...cuts, wire.length]) {
    // the buffer holds stale LFs past `end`: the decoder must not look there
    rb.buf.set(wire.subarray(rb.end, cut), rb.end);
    rb.end = cut;
    if (decoder.done) continue;
    for (let piece = decoder.next(rb); piece !== null; piece = decoder.next(rb)) data += dec.decode(piece);
  }
  return { data, done: decoder.done, left: rb.end - rb.start };
}

Deno.test("upstream chunked: every split of a body with extensions and trailers decodes the same", () => {
  const wire = enc.encode(
    '4;a=1;b="x;y"\r\nWiki\r\n5 \r\npedia\r\nE\r\n in\r\n\r\nchunks.\r\n0; end\r\nExpires: never\r\nX: y\r\n\r\nNEXT',
  );
  const bodyEnd = wire.length - 4;
  for (let a = 0; a <= wire.length; a++) {
    for (const b of [a, Math.min(wire.length, a + 1), Math.min(wire.length, a + 7)]) {
      const got = decodeInPieces(wire, [a, b]);
      assertEquals(got.data, "Wikipedia in\r\n\r\nchunks.", `cuts ${a}, ${b}`);
      assert(got.done, `done with cuts ${a}, ${b}`);
      // the next response's bytes are left alone
      assertEquals(got.left, wire.length - bodyEnd, `cuts ${a}, ${b}`);
    }
  }
  // bare LF framing, and the end seen together with the last data
  const lf = decodeInPieces(enc.encode("3\nabc\n0\n\n"), []);
  assertEquals([lf.data, lf.done], ["abc", true]);
});

Deno.test("upstream chunked: data is handed out before its chunk is complete", () => {
  const rb: ReadBuffer = { buf: enc.encode("a\r\n01234567"), start: 0, end: 8 };
  const decoder = new ChunkedDecoder(1024);
  assertEquals(dec.decode(decoder.next(rb)!), "01234");
  assertEquals(decoder.next(rb), null);
  assertEquals(decoder.done, false);
});

Deno.test("upstream chunked: malformed framing is an UpstreamError", () => {
  const bad: [string, RegExp][] = [
    ["x\r\n", /without a size/],
    ["3\r\nabcd\r\n", /longer than its size/],
    ["3\r\nabc\rX", /not followed by CRLF/],
    ["12345678901234\r\n", /too large/],
    ["3 x\r\nabc\r\n", /junk/],
    ["0\r\n" + "X: y\r\n".repeat(300), /trailers over 1024 bytes/],
  ];
  for (const [wire, message] of bad) {
    let err: unknown = null;
    try {
      decodeInPieces(enc.encode(wire), []);
    } catch (e) {
      err = e;
    }
    assert(err instanceof UpstreamError, `${JSON.stringify(wire)}: ${err}`);
    assertMatch(err.message, message);
  }
});
