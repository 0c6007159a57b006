/**
 * The upstream HTTP/1.1 client (router/upstream/http1.ts) against servers on 127.0.0.1: Deno.serve for ordinary
 * answers, and a raw TCP server, which writes exactly the bytes a test wants, for framing and failure cases.
 */
import { assert, assertEquals, assertMatch } from "../helpers/assert.ts";
import { delay, HANG_MS, waitFor } from "../helpers/wait.ts";
import {
  InvalidUpstreamRequestError,
  UpstreamError,
  UpstreamPool,
  type UpstreamRequest,
  type UpstreamResponse,
} from "../../router/upstream/http1.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();

// ---------------------------------------------------------------------------------------------------------------
// Servers

/** Deno.serve on a free port for the duration of `fn`. */
async function withServe(
  handler: (req: Request) => Response | Promise<Response>,
  fn: (port: number) => Promise<void>,
): Promise<void> {
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, handler);
  try {
    await fn(server.addr.port);
  } finally {
    await server.shutdown();
  }
}

/** One request as the raw server read it. */
interface RawRequest {
  method: string;
  target: string;
  /** lowercased names; repeated fields joined with ", " */
  headers: Map<string, string>;
  /** the raw head, as sent */
  head: string;
  body: Uint8Array;
}

/** The server side of one raw connection: reads requests, writes whatever bytes a test wants. */
class RawPeer {
  #buf = new Uint8Array(0);

  constructor(readonly conn: Deno.TcpConn) {}

  async #more(): Promise<boolean> {
    const chunk = new Uint8Array(64 * 1024);
    const n = await this.conn.read(chunk);
    if (n === null) return false;
    const joined = new Uint8Array(this.#buf.length + n);
    joined.set(this.#buf);
    joined.set(chunk.subarray(0, n), this.#buf.length);
    this.#buf = joined;
    return true;
  }

  /** The next request on this connection, or null when the client closed it. */
  async readRequest(): Promise<RawRequest | null> {
    let end = -1;
    while ((end = dec.decode(this.#buf).indexOf("\r\n\r\n")) === -1) {
      if (!await this.#more()) return null;
    }
    const head = dec.decode(this.#buf.subarray(0, end));
    const [requestLine, ...lines] = head.split("\r\n");
    const [method, target] = requestLine.split(" ");
    const headers = new Map<string, string>();
    for (const line of lines) {
      const colon = line.indexOf(":");
      const name = line.slice(0, colon).toLowerCase();
      const value = line.slice(colon + 1).trim();
      headers.set(name, headers.has(name) ? `${headers.get(name)}, ${value}` : value);
    }
    const length = Number(headers.get("content-length") ?? "0");
    while (this.#buf.length < end + 4 + length) {
      if (!await this.#more()) return null;
    }
    const body = this.#buf.slice(end + 4, end + 4 + length);
    this.#buf = this.#buf.slice(end + 4 + length);
    return { method, target, headers, head, body };
  }

  async write(data: string | Uint8Array): Promise<void> {
    const bytes = typeof data === "string" ? enc.encode(data) : data;
    let off = 0;
    while (off < bytes.length) off += await this.conn.write(bytes.subarray(off));
  }

  /** Writes one byte at a time, each its own TCP segment, so the client sees every split there is. */
  async writeBytewise(data: string): Promise<void> {
    for (const b of enc.encode(data)) {
      await this.write(new Uint8Array([b]));
      await delay(1);
    }
  }

  /** Resolves true when the client closes its end (EOF or reset) within `ms`. */
  async sawClose(ms = HANG_MS): Promise<boolean> {
    const deadline = Date.now() + ms;
    const timer = setTimeout(() => this.close(), ms);
    try {
      for (;;) {
        if (!await this.#more()) return Date.now() <= deadline;
      }
    } catch {
      return Date.now() <= deadline;
    } finally {
      clearTimeout(timer);
    }
  }

  close(): void {
    try {
      this.conn.close();
    } catch {
      // already closed
    }
  }
}

interface RawServer {
  port: number;
  /** TCP connections accepted so far */
  readonly connections: number;
  close(): Promise<void>;
}

/** A TCP server that hands each accepted connection to `handle` (with its 0-based index), closing it after. */
function rawServer(handle: (peer: RawPeer, index: number) => Promise<void>): RawServer {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const peers = new Set<RawPeer>();
  const handlers: Promise<void>[] = [];
  let connections = 0;
  const loop = (async () => {
    for (;;) {
      let conn: Deno.TcpConn;
      try {
        conn = await listener.accept();
      } catch {
        return;
      }
      const peer = new RawPeer(conn);
      peers.add(peer);
      const index = connections++;
      handlers.push(
        handle(peer, index).catch(() => {/* a client that went away mid-answer is some tests' point */})
          .finally(
            () => {
              peer.close();
              peers.delete(peer);
            },
          ),
      );
    }
  })();
  return {
    port: (listener.addr as Deno.NetAddr).port,
    get connections() {
      return connections;
    },
    async close() {
      listener.close();
      await loop;
      for (const p of peers) p.close();
      await Promise.all(handlers);
    },
  };
}

/** Answers every request on each connection with `respond`, until the client closes. */
function keepAliveServer(respond: (req: RawRequest, peer: RawPeer) => Promise<void>): RawServer {
  return rawServer(async (peer) => {
    for (;;) {
      const req = await peer.readRequest();
      if (req === null) return;
      await respond(req, peer);
    }
  });
}

function ok(body: string, extra = ""): string {
  return `HTTP/1.1 200 OK\r\nContent-Length: ${enc.encode(body).length}\r\n${extra}\r\n${body}`;
}

// ---------------------------------------------------------------------------------------------------------------
// Client helpers

function get(port: number, pathAndQuery = "/", extra: Partial<UpstreamRequest> = {}): UpstreamRequest {
  return { port, method: "GET", pathAndQuery, headers: [], body: null, ...extra };
}

async function text(res: UpstreamResponse): Promise<string> {
  if (res.bytes !== null) return dec.decode(res.bytes);
  assert(res.stream !== null, "a body");
  return await new Response(res.stream).text();
}

/** The rejection of `p`, which must reject. */
async function rejection(p: Promise<unknown>): Promise<unknown> {
  try {
    await p;
  } catch (err) {
    return err;
  }
  throw new Error("expected a rejection");
}

function assertUpstreamError(err: unknown, beforeResponse: boolean, message?: RegExp): void {
  assert(err instanceof UpstreamError, `an UpstreamError, got ${err}`);
  assertEquals(err.beforeResponse, beforeResponse, `beforeResponse of: ${err.message}`);
  if (message) assertMatch(err.message, message);
}

// ---------------------------------------------------------------------------------------------------------------
// Ordinary answers (Deno.serve)

Deno.test("upstream http1: small answers come whole, with the request as sent and the socket reused", async () => {
  const seen: { method: string; host: string | null; length: string | null; custom: string | null }[] = [];
  await withServe(async (req) => {
    const body = await req.text();
    seen.push({
      method: req.method,
      host: req.headers.get("host"),
      length: req.headers.get("content-length"),
      custom: req.headers.get("x-custom"),
    });
    const headers = new Headers({ "content-type": "application/json" });
    headers.append("set-cookie", "a=1");
    headers.append("set-cookie", "b=2");
    return new Response(JSON.stringify({ body, path: new URL(req.url).pathname + new URL(req.url).search }), {
      headers,
    });
  }, async (port) => {
    const pool = new UpstreamPool();
    try {
      const res = await pool.request({
        port,
        method: "POST",
        pathAndQuery: "/v1/echo?x=1",
        headers: [["Content-Type", "application/json"], ["X-Custom", "yes"], ["Content-Length", "999"]],
        body: enc.encode('{"a":1}'),
      });
      assertEquals(res.status, 200);
      assert(res.stream === null, "no stream for a small body");
      assertEquals(JSON.parse(await text(res)), { body: '{"a":1}', path: "/v1/echo?x=1" });
      assertEquals(res.headers.get("content-type"), "application/json");
      assertEquals(res.headers.get("content-length"), null, "framing headers are dropped");
      assertEquals(res.headers.getSetCookie(), ["a=1", "b=2"]);
      await res.done;

      const empty = await pool.request({ port, method: "POST", pathAndQuery: "/", headers: [], body: null });
      assertEquals(JSON.parse(await text(empty)).body, "");
      for (let i = 0; i < 20; i++) await text(await pool.request(get(port)));
      assertEquals(pool.idleCount(port), 1, "one socket carried every request");
      pool.close();
      assertEquals(pool.idleCount(port), 0);
    } finally {
      pool.close();
    }
    assertEquals(seen[0], { method: "POST", host: `127.0.0.1:${port}`, length: "7", custom: "yes" });
    assertEquals(seen[1].length, "0", "a POST without a body says Content-Length: 0");
    assertEquals(seen[2].length, null, "a GET has no Content-Length");
  });
});

Deno.test("upstream http1: a chunked stream passes each piece on as it arrives", async () => {
  const next = Promise.withResolvers<void>();
  await withServe(() => {
    let step = 0;
    const body = new ReadableStream<Uint8Array>({
      async pull(c) {
        step++;
        if (step === 1) c.enqueue(enc.encode("data: one\n\n"));
        else if (step === 2) {
          // The second event is only sent once the client has received the first: no coalescing can hide it.
          await next.promise;
          c.enqueue(enc.encode("data: two\n\n"));
        } else c.close();
      },
    });
    return new Response(body, { headers: { "content-type": "text/event-stream" } });
  }, async (port) => {
    const pool = new UpstreamPool();
    try {
      const res = await pool.request(get(port, "/events"));
      assertEquals(res.status, 200);
      assert(res.bytes === null && res.stream !== null, "a stream");
      assertEquals(res.headers.get("transfer-encoding"), null);
      const reader = res.stream.getReader();
      assertEquals(dec.decode((await reader.read()).value), "data: one\n\n");
      next.resolve();
      assertEquals(dec.decode((await reader.read()).value), "data: two\n\n");
      assertEquals((await reader.read()).done, true);
      await res.done;
      // an event stream's socket is closed (llama-server closes it) and a fresh one takes its place
      await waitFor(() => pool.idleCount(port) === 1, HANG_MS, "a fresh socket in place of the stream's");
      assertEquals(pool.stats(), { connects: 2, retries: 0, prewarmed: 1 });
    } finally {
      pool.close();
    }
  });
});

Deno.test("upstream http1: a Content-Length over maxBufferedBytes streams, then the socket is reused", async () => {
  const big = new Uint8Array(300_000).map((_, i) => i % 251);
  await withServe(() => new Response(big), async (port) => {
    const pool = new UpstreamPool({ maxBufferedBytes: 100_000 });
    try {
      const res = await pool.request(get(port));
      assert(res.bytes === null && res.stream !== null, "a stream");
      const got = new Uint8Array(await new Response(res.stream).arrayBuffer());
      assertEquals(got.length, big.length);
      assert(got.every((b, i) => b === big[i]), "every byte as sent");
      await res.done;
      assertEquals(pool.idleCount(port), 1);
      // Under the limit the same body comes whole.
      const wholePool = new UpstreamPool();
      const whole = await wholePool.request(get(port));
      wholePool.close();
      assertEquals(whole.bytes?.length, big.length);
    } finally {
      pool.close();
    }
  });
});

Deno.test("upstream http1: 204 and HEAD have no body, and the socket stays usable", async () => {
  const server = keepAliveServer(async (req, peer) => {
    if (req.target === "/none") await peer.write("HTTP/1.1 204 No Content\r\nX-A: 1\r\n\r\n");
    else if (req.method === "HEAD") await peer.write("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n");
    else await peer.write(ok("hello"));
  });
  const pool = new UpstreamPool();
  try {
    const none = await pool.request(get(server.port, "/none"));
    assertEquals([none.status, none.bytes, none.stream, none.headers.get("x-a")], [204, null, null, "1"]);
    const head = await pool.request(get(server.port, "/", { method: "HEAD" }));
    assertEquals([head.status, head.bytes, head.stream], [200, null, null]);
    assertEquals(await text(await pool.request(get(server.port))), "hello");
    assertEquals(server.connections, 1);
  } finally {
    pool.close();
    await server.close();
  }
});

// ---------------------------------------------------------------------------------------------------------------
// Framing edge cases (raw server)

Deno.test("upstream http1: chunked with extensions and trailers, every byte its own read", async () => {
  const server = keepAliveServer(async (req, peer) => {
    if (req.target === "/small") return await peer.write(ok("after"));
    await peer.writeBytewise(
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-Folded: a\r\n  b\r\nSet-Cookie: x=1\r\n" +
        "set-cookie: y=2\r\n\r\n" +
        '5;name=value;q="a b"\r\nhello\r\n' +
        "1 ; ext\r\n,\r\n" +
        "6\r\n world\r\n" +
        "0;last\r\nX-Trailer: t\r\nX-Other: u\r\n\r\n",
    );
  });
  const pool = new UpstreamPool();
  try {
    const res = await pool.request(get(server.port));
    assertEquals(res.headers.get("x-folded"), "a b", "an obs-fold line joins its field with a space");
    assertEquals(res.headers.getSetCookie(), ["x=1", "y=2"]);
    assertEquals(await text(res), "hello, world");
    await res.done;
    assertEquals(await text(await pool.request(get(server.port, "/small"))), "after");
    assertEquals(server.connections, 1, "the socket was reused after the trailers");
  } finally {
    pool.close();
    await server.close();
  }
});

Deno.test("upstream http1: header bytes above 0x7f come as fetch gives them", async () => {
  const server = keepAliveServer(async (_req, peer) => {
    const head = enc.encode("HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\nX-Name: caf");
    await peer.write(new Uint8Array([...head, 0xc3, 0xa9, 0x0d, 0x0a, 0x0d, 0x0a]));
  });
  const pool = new UpstreamPool();
  try {
    const viaFetch = await fetch(`http://127.0.0.1:${server.port}/`);
    await viaFetch.body?.cancel();
    const res = await pool.request(get(server.port));
    assertEquals(res.headers.get("x-name"), viaFetch.headers.get("x-name"));
    assertEquals(res.headers.get("x-name"), "caf\u00c3\u00a9");
  } finally {
    pool.close();
    await server.close();
  }
});

Deno.test("upstream http1: a head and a Content-Length body split byte by byte", async () => {
  const server = keepAliveServer(async (_req, peer) => {
    await peer.writeBytewise("HTTP/1.1 201 Created\nContent-Type: text/plain\nContent-Length: 3\n\nabc");
  });
  const pool = new UpstreamPool();
  try {
    const res = await pool.request(get(server.port));
    assertEquals([res.status, await text(res), res.headers.get("content-type")], [201, "abc", "text/plain"]);
  } finally {
    pool.close();
    await server.close();
  }
});

Deno.test("upstream http1: Connection: close from the server is honoured", async () => {
  const server = keepAliveServer(async (_req, peer) => {
    await peer.write(ok("bye", "Connection: close\r\n"));
  });
  const pool = new UpstreamPool();
  try {
    const res = await pool.request(get(server.port));
    assertEquals(await text(res), "bye");
    assertEquals(res.headers.get("connection"), null);
    assertEquals(pool.idleCount(server.port), 0);
    assertEquals(await text(await pool.request(get(server.port))), "bye");
    assertEquals(server.connections, 2);
  } finally {
    pool.close();
    await server.close();
  }
});

Deno.test("upstream http1: a body with neither length nor chunks runs until the close", async () => {
  const server = rawServer(async (peer) => {
    await peer.readRequest();
    await peer.write("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nfirst ");
    await delay(20);
    await peer.write("second");
    peer.close();
  });
  const pool = new UpstreamPool();
  try {
    const res = await pool.request(get(server.port));
    assert(res.stream !== null, "a stream");
    assertEquals(await text(res), "first second");
    await res.done;
    assertEquals(pool.idleCount(server.port), 0, "a close-delimited socket is never reused");
  } finally {
    pool.close();
    await server.close();
  }
});

Deno.test("upstream http1: an idle socket the server closed is retried once on a fresh one", async () => {
  // Like llama-server after its 100th request on a socket: answer, then close without a word.
  const closed = Array.from({ length: 5 }, () => Promise.withResolvers<void>());
  const server = rawServer(async (peer, index) => {
    const req = await peer.readRequest();
    if (req !== null) await peer.write(ok(req.target));
    peer.close();
    closed[index].resolve();
  });
  const pool = new UpstreamPool();
  try {
    for (let i = 0; i < 5; i++) {
      assertEquals(await text(await pool.request(get(server.port, `/${i}`))), `/${i}`);
      // The server has closed the socket (on loopback its FIN is here once close returns): the next request
      // finds the pooled socket dead.
      await closed[i].promise;
    }
    assertEquals(server.connections, 5);
    assertEquals(pool.stats(), { connects: 5, retries: 4, prewarmed: 0 });
  } finally {
    pool.close();
    await server.close();
  }
});

Deno.test("upstream http1: an idle socket older than idleTimeoutMs is not used", async () => {
  // The pool ages idle sockets by Date.now(): a clock that moves only when told makes "older" exact, where
  // real time would let a slow machine age a socket between two requests meant to be back to back.
  const realNow = Date.now;
  let now = realNow();
  Date.now = () => now;
  const server = keepAliveServer(async (_req, peer) => await peer.write(ok("x")));
  const pool = new UpstreamPool({ idleTimeoutMs: 30 });
  try {
    await text(await pool.request(get(server.port)));
    now += 30;
    await text(await pool.request(get(server.port)));
    assertEquals(server.connections, 1, "a socket idle for exactly idleTimeoutMs is still used");
    now += 31;
    await text(await pool.request(get(server.port)));
    assertEquals(server.connections, 2, "a socket idle for longer is not");
  } finally {
    Date.now = realNow;
    pool.close();
    await server.close();
  }
});

Deno.test("upstream http1: connection refused, or closed before any byte, is an error before the response", async () => {
  const closed = rawServer(async (peer) => {
    await peer.readRequest();
  });
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const deadPort = (listener.addr as Deno.NetAddr).port;
  listener.close();
  const pool = new UpstreamPool();
  try {
    assertUpstreamError(await rejection(pool.request(get(deadPort))), true, /connect/);
    // A fresh socket is never retried: the engine may have seen the request.
    assertUpstreamError(await rejection(pool.request(get(closed.port))), true, /before answering/);
    assertEquals(closed.connections, 1);
  } finally {
    pool.close();
    await closed.close();
  }
});

Deno.test("upstream http1: the engine going away mid-body is an error after the response", async () => {
  const closing = rawServer(async (peer) => {
    await peer.readRequest();
    await peer.write("HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n0123456789");
    await delay(20);
  });
  // Closed only once the client has read the first chunk: a reset can discard data not yet read.
  const helloRead = Promise.withResolvers<void>();
  const resetting = rawServer(async (peer) => {
    // The request stays unread, so the close after this makes Linux send a reset rather than a FIN.
    await peer.write("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n");
    await helloRead.promise;
  });
  const pool = new UpstreamPool();
  try {
    assertUpstreamError(
      await rejection(pool.request(get(closing.port))),
      false,
      /after 10 of 1000 body bytes/,
    );
    const res = await pool.request(get(resetting.port));
    const reader = res.stream!.getReader();
    assertEquals(dec.decode((await reader.read()).value), "hello");
    helloRead.resolve();
    assertUpstreamError(await rejection(reader.read()), false);
    await res.done;
    assertEquals(pool.idleCount(resetting.port), 0);
  } finally {
    helloRead.resolve();
    pool.close();
    await closing.close();
    await resetting.close();
  }
});

Deno.test("upstream http1: interim 1xx answers are skipped", async () => {
  const server = keepAliveServer(async (_req, peer) => {
    await peer.write(
      "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n" + ok("final"),
    );
  });
  const pool = new UpstreamPool();
  try {
    const res = await pool.request(get(server.port));
    assertEquals([res.status, await text(res), res.headers.get("link")], [200, "final", null]);
  } finally {
    pool.close();
    await server.close();
  }
});

Deno.test("upstream http1: malformed answers are UpstreamErrors and the socket is dropped", async () => {
  const cases: [string, string, RegExp][] = [
    ["/status", "HTTP/1.1 2000 OK\r\n\r\n", /status line/],
    ["/proto", "ICY 200 OK\r\n\r\n", /status line/],
    ["/lengths", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!", /conflicting/],
    ["/length", "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", /Content-Length/],
    ["/space", "HTTP/1.1 200 OK\r\nContent-Length : 2\r\n\r\nhi", /header name/],
    ["/size", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", /without a size/],
    ["/head", `HTTP/1.1 200 OK\r\nX-Big: ${"a".repeat(70_000)}\r\n\r\n`, /over 65536 bytes/],
  ];
  const server = keepAliveServer(async (req, peer) => {
    await peer.write(cases.find(([path]) => path === req.target)![1]);
  });
  const pool = new UpstreamPool();
  try {
    for (const [path, , message] of cases) {
      const res = pool.request(get(server.port, path));
      const err = await rejection(res.then((r) => text(r)));
      assertUpstreamError(err, false, message);
      assertEquals(pool.idleCount(server.port), 0, path);
    }
  } finally {
    pool.close();
    await server.close();
  }
});

Deno.test("upstream http1: bytes after a response mean the socket is not reused", async () => {
  const server = keepAliveServer(async (_req, peer) => await peer.write(ok("one") + "EXTRA"));
  const pool = new UpstreamPool();
  try {
    assertEquals(await text(await pool.request(get(server.port))), "one");
    assertEquals(pool.idleCount(server.port), 0);
  } finally {
    pool.close();
    await server.close();
  }
});

Deno.test("upstream http1: requests that would change the framing are refused before connecting", async () => {
  const pool = new UpstreamPool();
  const bad: Partial<UpstreamRequest>[] = [
    { headers: [["X-A", "1\r\nX-Injected: 1"]] },
    { headers: [["Bad Name", "1"]] },
    { pathAndQuery: "/a b" },
    { pathAndQuery: "/a\r\n" },
    { method: "GET /x" },
    { port: 70000 },
  ];
  for (const extra of bad) {
    const err = await rejection(pool.request(get(1, "/", extra)));
    assert(err instanceof InvalidUpstreamRequestError, `${JSON.stringify(extra)}: ${err}`);
  }
  pool.close();
});

Deno.test("upstream http1: the caller's framing fields never reach the engine", async () => {
  let seen: RawRequest | null = null;
  const server = keepAliveServer(async (req, peer) => {
    seen = req;
    await peer.write(ok("ok"));
  });
  const pool = new UpstreamPool();
  try {
    await text(
      await pool.request({
        port: server.port,
        method: "POST",
        pathAndQuery: "/",
        headers: [["host", "evil"], ["transfer-encoding", "chunked"], ["connection", "close"], [
          "x-keep",
          "1",
        ]],
        body: enc.encode("abc"),
      }),
    );
    const req = seen as RawRequest | null;
    assert(req !== null);
    assertEquals(req.headers.get("host"), `127.0.0.1:${server.port}`);
    assertEquals(req.headers.get("transfer-encoding"), undefined);
    assertEquals(req.headers.get("connection"), "keep-alive");
    assertEquals(req.headers.get("content-length"), "3");
    assertEquals(req.headers.get("x-keep"), "1");
    assertEquals(dec.decode(req.body), "abc");
  } finally {
    pool.close();
    await server.close();
  }
});

Deno.test("upstream http1: a big request body arrives whole", async () => {
  const body = new Uint8Array(200_000).map((_, i) => i % 7);
  await withServe(async (req) => new Response(String((await req.arrayBuffer()).byteLength)), async (port) => {
    const pool = new UpstreamPool();
    try {
      const res = await pool.request({ port, method: "POST", pathAndQuery: "/", headers: [], body });
      assertEquals(await text(res), "200000");
    } finally {
      pool.close();
    }
  });
});

// ---------------------------------------------------------------------------------------------------------------
// Abort and cancel

/**
 * A server that starts a chunked answer and keeps it open (or, for `/silent`, never answers); `closes` gets, per
 * connection, whether the client closed it (within `HANG_MS`, a bound on a hang only).
 */
function hangingStream(closes: Promise<boolean>[]): RawServer {
  return rawServer(async (peer) => {
    const req = await peer.readRequest();
    if (req?.target !== "/silent") {
      await peer.write("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n6\r\nfirst\n\r\n");
    }
    const closed = peer.sawClose();
    closes.push(closed);
    await closed;
  });
}

/** A pool and a server whose streams never end; `closes` gets, per connection, whether the client closed it. */
async function withHangingStream(
  fn: (
    server: ReturnType<typeof hangingStream>,
    pool: UpstreamPool,
    closes: Promise<boolean>[],
  ) => Promise<void>,
): Promise<void> {
  const closes: Promise<boolean>[] = [];
  const server = hangingStream(closes);
  const pool = new UpstreamPool();
  try {
    await fn(server, pool, closes);
  } finally {
    pool.close();
    await server.close();
  }
}

Deno.test("upstream http1: an abort mid-stream closes the socket and errors the stream", () =>
  withHangingStream(async (server, pool, closes) => {
    const ac = new AbortController();
    const res = await pool.request(get(server.port, "/", { signal: ac.signal }));
    const reader = res.stream!.getReader();
    assertEquals(dec.decode((await reader.read()).value), "first\n");
    const pending = reader.read();
    ac.abort();
    const err = await rejection(pending);
    assertEquals((err as DOMException).name, "AbortError");
    await res.done;
    // The server reads EOF: an engine would stop generating.
    await waitFor(() => closes.length === 1, HANG_MS, "the server waiting");
    assertEquals(await closes[0], true);
    assertEquals(pool.idleCount(server.port), 0);
  }));

Deno.test("upstream http1: cancelling the stream closes the socket", () =>
  withHangingStream(async (server, pool, closes) => {
    const res = await pool.request(get(server.port));
    const reader = res.stream!.getReader();
    await reader.read();
    await reader.cancel();
    await res.done;
    await waitFor(() => closes.length === 1, HANG_MS, "the server waiting");
    assertEquals(await closes[0], true);
    assertEquals(pool.idleCount(server.port), 0);
  }));

Deno.test("upstream http1: an abort before the answer rejects with the reason and closes the socket", () =>
  withHangingStream(async (server, pool, closes) => {
    const ac = new AbortController();
    const pending = pool.request(get(server.port, "/silent", { signal: ac.signal }));
    await waitFor(() => closes.length === 1, HANG_MS, "the request arrived");
    ac.abort(new Error("client left"));
    assertEquals(((await rejection(pending)) as Error).message, "client left");
    assertEquals(await closes[0], true);
    // An already aborted signal sends nothing.
    const again = await rejection(pool.request(get(server.port, "/", { signal: ac.signal })));
    assertEquals((again as Error).message, "client left");
    assertEquals(server.connections, 1);
  }));

// ---------------------------------------------------------------------------------------------------------------
// Pooling

Deno.test("upstream http1: the pool reuses sockets, one request at a time each, and caps the idle ones", async () => {
  const server = keepAliveServer(async (req, peer) => {
    await delay(2);
    await peer.write(ok(req.target));
  });
  const overlap = overlapCheckingServer();
  const pool = new UpstreamPool({ maxIdlePerPort: 3 });
  try {
    for (let i = 0; i < 50; i++) {
      assertEquals(await text(await pool.request(get(server.port, `/${i}`))), `/${i}`);
    }
    assertEquals(server.connections, 1, "50 sequential requests, one socket");
    assertEquals(pool.stats(), { connects: 1, retries: 0, prewarmed: 0 });
    const answers = await Promise.all(
      Array.from({ length: 8 }, (_, i) => pool.request(get(server.port, `/c${i}`)).then(text)),
    );
    assertEquals(answers, Array.from({ length: 8 }, (_, i) => `/c${i}`));
    assertEquals(server.connections, 8, "8 at once: 7 more sockets");
    assertEquals(pool.idleCount(server.port), 3, "idle sockets over maxIdlePerPort are closed");

    for (let round = 0; round < 5; round++) {
      await Promise.all(Array.from({ length: 16 }, () => pool.request(get(overlap.server.port)).then(text)));
    }
    assertEquals(overlap.overlapped(), false, "a second request was written before the first was answered");
  } finally {
    pool.close();
    await server.close();
    await overlap.server.close();
  }
});

/** A server that notes when a socket carries a second request before the first was answered. */
function overlapCheckingServer(): { server: RawServer; overlapped: () => boolean } {
  let overlapped = false;
  const server = rawServer(async (peer) => {
    let next = peer.readRequest();
    for (;;) {
      const req = await next;
      if (req === null) return;
      next = peer.readRequest();
      const early = await Promise.race([next.then(() => true, () => true), delay(3).then(() => false)]);
      if (early) overlapped = true;
      await peer.write(ok("x"));
    }
  });
  return { server, overlapped: () => overlapped };
}

Deno.test("upstream http1: closePort drops idle sockets and keeps in-flight ones from coming back", async () => {
  const [arrived, release] = [Promise.withResolvers<void>(), Promise.withResolvers<void>()];
  const server = keepAliveServer(async (req, peer) => {
    if (req.target === "/slow") {
      arrived.resolve();
      await release.promise;
    }
    await peer.write(ok("x"));
  });
  const pool = new UpstreamPool();
  try {
    await text(await pool.request(get(server.port)));
    assertEquals(pool.idleCount(server.port), 1);
    const slow = pool.request(get(server.port, "/slow"));
    // in flight on the pooled socket: the server has it
    await arrived.promise;
    pool.closePort(server.port);
    release.resolve();
    await text(await slow);
    assertEquals(pool.idleCount(server.port), 0);
    // The port works again afterwards, on a new socket.
    await text(await pool.request(get(server.port)));
    assertEquals(pool.idleCount(server.port), 1);
  } finally {
    pool.close();
    await server.close();
  }
});
