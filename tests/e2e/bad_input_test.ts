/**
 * Bad input, end to end, where only the real thing can judge it: bodies llama-server itself refuses
 * (relayed in the `{"error":{"code","message","type"}}` shape), request heads too big for Deno's HTTP
 * server or for llama-server's, and bad start-up configurations (each must make `main.ts` exit
 * non-zero with a message that says what is wrong and where). The table of bad requests the gateway
 * judges itself runs in process, on every machine, in tests/unit/http_errors_test.ts.
 */
import { join } from "node:path";
import { assert, assertEquals } from "../helpers/assert.ts";
import { type ErrorRow, errorRowFailures } from "../helpers/error_rows.ts";
import { fakeServerBin, runMain, withGateway } from "../helpers/gateway.ts";
import { engineAvailable, getJson, postJson } from "../helpers/http.ts";
import { chatBody } from "../helpers/openai.ts";
import type { Send } from "../helpers/requests.ts";

const skip = await engineAvailable();

// ---- what only the real engine judges ----------------------------------------------------------------

const chat = (model: unknown) => chatBody(model, { max_tokens: 2 });

/** The gateway routes these by a good model name; the engine refuses the rest of the body. */
const ENGINE_ROWS: ErrorRow[] = [
  {
    name: "messages not an array (engine)",
    path: "/v1/chat/completions",
    body: { model: "alpha", messages: "hi" },
    status: 400,
  },
  {
    name: "messages missing (engine)",
    path: "/v1/chat/completions",
    body: { model: "alpha" },
    status: 400,
  },
  {
    name: "max_tokens is a string (engine)",
    path: "/v1/chat/completions",
    body: { ...chat("alpha"), max_tokens: "lots" },
    status: 400,
  },
  {
    name: "content is a number (engine)",
    path: "/v1/chat/completions",
    body: { model: "alpha", messages: [{ role: "user", content: 3 }] },
    status: 400,
  },
];

Deno.test({
  name: "bad bodies the engine refuses reach the client in the OpenAI error shape; big headers are refused",
  ignore: !!skip,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn(t) {
    await withGateway(["alpha"], { args: ["-c", "256", "-np", "1"] }, async (gw) => {
      const send: Send = (path, init) =>
        fetch(gw.url + path, { ...init, signal: AbortSignal.timeout(30_000) });
      assertEquals(await errorRowFailures(send, ENGINE_ROWS), [], "rows that did not get the expected error");

      await t.step("a 100 KB header is refused with a 4xx, and the gateway still answers", async () => {
        for (const path of ["/health", "/v1/models"]) {
          const res = await fetch(gw.url + path, { headers: { Cookie: `big=${"x".repeat(100_000)}` } });
          await res.body?.cancel();
          assert(res.status >= 400 && res.status < 500, `${path} with a 100 KB cookie: ${res.status}`);
        }
        const res = await postJson(gw, "/v1/chat/completions", chat("alpha"), {
          "X-Big": "y".repeat(100_000),
        });
        await res.body?.cancel();
        assert(res.status >= 400 && res.status < 500, `chat with a 100 KB header: ${res.status}`);
        assertEquals(await getJson(gw, "/health"), { status: "ok" });
      });

      await t.step(
        "a 10 KB cookie (a browser on the web UI's origin) does not break a proxied request",
        async () => {
          // llama-server refuses request heads over 8 KB: the cookie must stay with the gateway
          const res = await postJson(gw, "/tokenize", { model: "alpha", content: "hello" }, {
            Cookie: `session=${"c".repeat(10_000)}`,
          });
          const text = await res.text();
          assertEquals(
            res.status,
            200,
            `tokenize with a 10 KB cookie: body ${JSON.stringify(text.slice(0, 200))}`,
          );
          assert(JSON.parse(text).tokens.length > 0);
        },
      );

      await t.step("the gateway is healthy and alpha still serves", async () => {
        assertEquals(await getJson(gw, "/health"), { status: "ok" });
        const res = await postJson(gw, "/tokenize", { model: "alpha", content: "x" });
        assertEquals(res.status, 200);
        await res.body?.cancel();
      });
    });
  },
});

// ---- bad configurations at start-up ------------------------------------------------------------------

interface StartupCase {
  name: string;
  /** preset text, written to <tmp>/preset.ini and passed with --models-preset */
  preset?: string;
  /** key file text, written to <tmp>/keys.txt and passed with --api-key-file */
  keyFile?: string;
  args?: string[];
  /** what the log must say; `FILE` stands for the file's path */
  expect: RegExp[];
}

const STARTUP_CASES: StartupCase[] = [
  {
    name: "preset: unknown key",
    preset: "[alpha]\nmodel = /models/alpha.gguf\nctx-size = 512\nbogus-key = 1\n",
    expect: [/FILE:4\b/, /bogus-key/, /not a llama-server option/],
  },
  {
    name: "preset: duplicate section",
    preset: "[alpha]\nmodel = /models/alpha.gguf\n\n[alpha]\nmodel = /models/other.gguf\n",
    expect: [/FILE:4\b/, /duplicate section \[alpha\]/, /first at line 1/],
  },
  {
    name: "preset: section without a model source",
    preset: "[*]\nctx-size = 512\n\n[lonely]\nctx-size = 1024\n",
    expect: [/FILE:4\b/, /\[lonely\]/, /no model source/],
  },
  {
    name: "preset: bad stop-timeout",
    preset: "[alpha]\nmodel = /models/alpha.gguf\nstop-timeout = soon\n",
    expect: [/FILE:3\b/, /stop-timeout/, /soon/],
  },
  {
    name: "preset: negative stop-timeout",
    preset: "[alpha]\nmodel = /models/alpha.gguf\nstop-timeout = -5\n",
    expect: [/FILE:3\b/, /stop-timeout/],
  },
  {
    name: "preset: priority not an integer",
    preset: "[alpha]\nmodel = /models/alpha.gguf\npriority = high\n",
    expect: [/FILE:3\b/, /'priority'/, /must be an integer/],
  },
  {
    name: "preset: ttl not whole seconds",
    preset: "[alpha]\nmodel = /models/alpha.gguf\nttl = 10m\n",
    expect: [/FILE:3\b/, /'ttl'/, /whole number of seconds/],
  },
  {
    name: "preset: pin not a boolean",
    preset: "[alpha]\nmodel = /models/alpha.gguf\npin = forever\n",
    expect: [/FILE:3\b/, /'pin'/, /boolean/],
  },
  {
    name: "preset: switch with a non-boolean value",
    preset: "[alpha]\nmodel = /models/alpha.gguf\nno-mmap = maybe\n",
    expect: [/FILE:3\b/, /no-mmap/, /boolean/],
  },
  {
    name: "preset: indented key",
    preset: "[alpha]\n  model = /models/alpha.gguf\n",
    expect: [/FILE:2\b/, /column 0/],
  },
  {
    name: "preset: unsafe section name",
    preset: "[../../etc/passwd]\nmodel = /models/alpha.gguf\n",
    expect: [/FILE:1\b/, /not a safe model name/],
  },
  {
    name: "preset: file missing",
    args: ["--models-preset", "/nonexistent/switchyard/preset.ini"],
    expect: [/\/nonexistent\/switchyard\/preset\.ini/],
  },
  {
    name: "--api-key-file: unknown field",
    keyFile: "sk-good\nsk-bad foo=bar\n",
    expect: [/FILE:2\b/, /unknown field 'foo=bar'/],
  },
  {
    name: "--api-key-file: missing file",
    args: ["--api-key-file", "/nonexistent/switchyard/keys.txt"],
    expect: [/cannot read --api-key-file/, /\/nonexistent\/switchyard\/keys\.txt/],
  },
  { name: "unknown flag", args: ["--bogus-flag"], expect: [/invalid argument: --bogus-flag/, /usage:/] },
  {
    name: "flag without its value",
    args: ["--models-max"],
    expect: [/missing value for argument: --models-max/],
  },
  {
    name: "--models-max not a number",
    args: ["--models-max", "lots"],
    expect: [/--models-max expects an integer/],
  },
  { name: "--port out of range", args: ["--port", "70000"], expect: [/invalid --port 70000/] },
  {
    name: "--body-limit 0",
    args: ["--body-limit", "0"],
    expect: [/--body-limit expects a positive integer/],
  },
  { name: "--queue-max -1", args: ["--queue-max", "-1"], expect: [/--queue-max expects a positive integer/] },
  { name: "switch given a value", args: ["--offline=perhaps"], expect: [/--offline takes no value/] },
  {
    name: "--models-memory not a size",
    args: ["--models-memory", "plenty"],
    expect: [/--models-memory: 'plenty'/, /invalid size/],
  },
  {
    name: "--models-memory naming a device the engine does not list",
    args: ["--models-memory", "host=8G,CUDA3=20G"],
    expect: [/--models-memory: unknown device 'CUDA3' \(devices: host\)/],
  },
  {
    name: "--models-ttl not whole seconds",
    args: ["--models-ttl", "1h"],
    expect: [/--models-ttl expects a whole number of seconds \(0 = never\), got '1h'/],
  },
  {
    name: "--server-bin not executable",
    args: ["--server-bin", "/nonexistent/llama-server"],
    expect: [/--server-bin/],
  },
];

Deno.test({
  name: "bad start-up configurations exit non-zero with a message naming the file, line and key",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const tmp = await Deno.makeTempDir({ prefix: "switchyard-bad-startup-" });
    try {
      const { bin } = await fakeServerBin("exit 1", tmp);
      const models = join(tmp, "models");
      await Deno.mkdir(models);
      const failures: string[] = [];
      for (const c of STARTUP_CASES) {
        let file = "";
        const args = ["--models-dir", models, "--server-bin", bin, "--port", "0"];
        if (c.preset !== undefined) {
          file = join(tmp, "preset.ini");
          await Deno.writeTextFile(file, c.preset);
          args.push("--models-preset", file);
        }
        if (c.keyFile !== undefined) {
          file = join(tmp, "keys.txt");
          await Deno.writeTextFile(file, c.keyFile);
          args.push("--api-key-file", file);
        }
        // last, so that a flag missing its value is the last argument; later values win
        args.push(...c.args ?? []);
        const { code, out } = await runMain(args, { LLAMA_CACHE: join(tmp, "cache") });
        const problems: string[] = [];
        if (code !== 1) problems.push(`exit code ${code}, expected 1`);
        if (/listening on/.test(out)) problems.push("it started listening");
        for (const re of c.expect) {
          const pattern = new RegExp(re.source.replace("FILE", file.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&")));
          if (!pattern.test(out)) problems.push(`no ${pattern}`);
        }
        if (problems.length) {
          failures.push(`${c.name}: ${problems.join("; ")}; output:\n${out.slice(0, 600)}`);
        }
      }
      assertEquals(failures, [], "start-up cases that did not fail as expected");
    } finally {
      await Deno.remove(tmp, { recursive: true });
    }
  },
});
