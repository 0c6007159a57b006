/**
 * The web pages without a browser: `--webui`, `--no-webui` and `--path` as the CLI reads them and as
 * the whole app (in process) answers them; llama.cpp's web UI served from a build in a private cache
 * (a fake one: no npm runs here), with llama-server's headers; its API alias under `/llamacpp/`; and
 * what a missing npm or `--offline` leave of it.
 */
import { Hono } from "hono";
import { CliError, parseCli } from "../../router/cli.ts";
import { buildWebui, WebuiUnavailableError } from "../../router/engine/webui.ts";
import { llamacppApiAlias, type UiOptions, uiRoutes } from "../../router/routes/ui.ts";
import { assert, assertEquals, assertMatch } from "../helpers/assert.ts";
import { withInProcess } from "../helpers/in_process.ts";

/** The error `fn` throws (or rejects with), checked to be a `type` whose message matches `pattern`. */
async function failure<E extends Error>(
  fn: () => unknown,
  type: new (...args: never[]) => E,
  pattern = /./,
): Promise<E> {
  try {
    await fn();
  } catch (err) {
    assert(err instanceof type, `expected ${type.name}, got ${err}`);
    assertMatch(err.message, pattern);
    return err;
  }
  throw new Error(`expected ${type.name}, nothing was thrown`);
}

const html = (text: string) => `<!doctype html><title>${text}</title>`;

Deno.test("cli: --webui keeps llama-server's switch and also names the page at /", async () => {
  const cfg = (args: string[], env: Record<string, string> = {}) => parseCli(args, env).config;
  assertEquals(cfg([]).webui, "switchyard");
  assertEquals(cfg([]).uiEnabled, true);
  assertEquals(cfg(["--webui", "llamacpp"]).webui, "llamacpp");
  assertEquals(cfg(["--ui=llamacpp"]).webui, "llamacpp");
  assertEquals(cfg(["--webui", "switchyard"]).webui, "switchyard");
  // bare, as llama-server has it: the next argument is not swallowed
  const bare = cfg(["--webui", "-c", "512"]);
  assertEquals([bare.uiEnabled, bare.webui, bare.passthrough.get("--ctx-size")], [true, "switchyard", "512"]);
  for (const off of [["--no-webui"], ["--no-ui"], ["--webui=off"]]) {
    const c = cfg(off);
    assertEquals(c.uiEnabled, false, off.join(" "));
    // the gateway's switch, not the engines'
    assertEquals(c.passthrough.has("--webui"), false, off.join(" "));
  }
  assertEquals(cfg([], { LLAMA_ARG_UI: "llamacpp" }).webui, "llamacpp");
  assertEquals(cfg([], { LLAMA_ARG_UI: "0" }).uiEnabled, false);
  assertEquals(cfg(["--webui", "switchyard"], { LLAMA_ARG_UI: "llamacpp" }).webui, "switchyard");
  await failure(() => cfg([], { LLAMA_ARG_UI: "maybe" }), CliError);
  await failure(() => cfg(["--no-webui", "llamacpp"]), CliError, /invalid argument: llamacpp/);
});

Deno.test("cli: --path is the gateway's, and must be a folder unless pages are off", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const c = parseCli(["--path", dir], {}).config;
    assertEquals([c.staticPath, c.passthrough.has("--path")], [dir, false]);
    assertEquals(parseCli([], { LLAMA_ARG_STATIC_PATH: dir }).config.staticPath, dir);
    await failure(() => parseCli(["--path", `${dir}/none`], {}), CliError, /static assets path not found/);
    assertEquals(parseCli(["--no-webui", "--path", `${dir}/none`], {}).config.uiEnabled, false);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("--no-webui: no page anywhere, llama-server's 404; the API is untouched", async () => {
  await withInProcess(["alpha"], { args: ["--no-webui"] }, async (gw) => {
    for (const path of ["/", "/switchyard/", "/ui/app.js", "/llamacpp/", "/llamacpp/v1/models"]) {
      const res = await gw.send(path);
      assertEquals(res.status, 404, path);
      assertEquals(await res.json(), {
        error: { code: 404, message: "File Not Found", type: "not_found_error" },
      });
    }
    assertEquals((await gw.send("/v1/models")).status, 200);
  });
});

Deno.test("--path DIR: files as llama-server serves them, before the routes, no SPA fallback", async () => {
  const dir = await Deno.makeTempDir({ prefix: "switchyard-static-" });
  const outside = await Deno.makeTempFile();
  try {
    await Deno.writeTextFile(`${dir}/index.html`, html("custom"));
    await Deno.mkdir(`${dir}/docs`);
    await Deno.writeTextFile(`${dir}/docs/index.html`, html("docs"));
    await Deno.writeTextFile(`${dir}/app.js`, "console.log(1)");
    await Deno.writeTextFile(`${dir}/health`, "a file, not the route");
    await Deno.symlink(outside, `${dir}/escape.txt`);
    await withInProcess(["alpha"], { args: ["--path", dir] }, async (gw) => {
      const root = await gw.send("/");
      assertEquals([root.status, root.headers.get("content-type")], [200, "text/html"]);
      assertEquals(await root.text(), html("custom"));
      const etag = root.headers.get("etag")!;
      assertMatch(etag, /^W\/"[0-9a-f]+-[0-9a-f]+"$/);
      assertEquals((await gw.send("/", { headers: { "If-None-Match": etag } })).status, 304);

      const js = await gw.send("/app.js");
      assertEquals(js.headers.get("content-type"), "text/javascript");
      await js.body?.cancel();
      const folder = await gw.send("/docs");
      assertEquals([folder.status, folder.headers.get("location")], [301, "/docs/"]);
      assertEquals(await (await gw.send("/docs/")).text(), html("docs"));
      // a GET for a file of DIR wins over a route, as in cpp-httplib
      assertEquals(await (await gw.send("/health")).text(), "a file, not the route");
      assertEquals((await gw.send("/escape.txt")).status, 403);
      for (const miss of ["/missing.html", "/docs/../../etc/passwd", "/%2e%2e/etc/passwd", "/chat/123"]) {
        const res = await gw.send(miss);
        assertEquals(res.status, 404, miss);
        await res.body?.cancel();
      }
      assertEquals((await gw.send("/v1/models")).status, 200);
      // our own page stays where it always is
      const ours = await gw.send("/switchyard/");
      assertEquals(
        await ours.text(),
        await Deno.readTextFile(new URL("../../ui/index.html", import.meta.url)),
      );
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
    await Deno.remove(outside);
  }
});

/** A cache holding a finished build of llama.cpp's UI (the files a real build has, not their contents). */
async function fakeBuiltUi(): Promise<string> {
  const cache = await Deno.makeTempDir({ prefix: "switchyard-webui-cache-" });
  const dist = `${cache}/switchyard/webui/dist`;
  await Deno.mkdir(`${dist}/_app/immutable`, { recursive: true });
  await Deno.writeTextFile(`${dist}/index.html`, html("llama.cpp").repeat(50));
  await Deno.writeTextFile(`${dist}/_app/immutable/bundle.abc.js`, "export const x = 1;\n".repeat(500));
  await Deno.writeTextFile(`${dist}/_app/version.json`, `{"version":"1"}`);
  await Deno.writeTextFile(`${dist}/sw.js`, "self;");
  await Deno.writeTextFile(`${dist}/pwa-64x64.png`, "png");
  await Deno.writeTextFile(
    `${cache}/switchyard/webui/switchyard-webui.json`,
    JSON.stringify({ commit: "abc", source: "x", builtAt: "", seconds: 1 }),
  );
  return cache;
}

function pages(options: UiOptions): Hono {
  const app = new Hono();
  app.route("/", uiRoutes({ log: () => {}, ...options }));
  app.get("/v1/models", (c) => c.json({ data: [], path: c.req.path }));
  app.get("/p/v1/models", (c) => c.json({ data: [], path: c.req.path }));
  llamacppApiAlias(app, options.apiPrefix ?? "");
  return app;
}

Deno.test("llama.cpp's UI at / (--webui llamacpp): llama-server's headers, gzip, 304; ours at /switchyard/", async () => {
  const cache = await fakeBuiltUi();
  try {
    const app = pages({ home: "llamacpp", env: { XDG_CACHE_HOME: cache, PATH: "" } });
    const page = await app.request("/", { headers: { "Accept-Encoding": "gzip, deflate" } });
    assertEquals(page.status, 200);
    assertEquals(page.headers.get("content-type"), "text/html; charset=utf-8");
    assertEquals(page.headers.get("cache-control"), "no-cache");
    assertEquals(page.headers.get("cross-origin-embedder-policy"), "require-corp");
    assertEquals(page.headers.get("cross-origin-opener-policy"), "same-origin");
    assertEquals(page.headers.get("content-encoding"), "gzip");
    const unzipped = page.body!.pipeThrough(new DecompressionStream("gzip"));
    assertEquals(await new Response(unzipped).text(), html("llama.cpp").repeat(50));
    const etag = page.headers.get("etag")!;
    const again = await app.request("/", { headers: { "Accept-Encoding": "gzip", "If-None-Match": etag } });
    assertEquals(again.status, 304);

    const plain = await app.request("/index.html");
    assertEquals([plain.headers.get("content-encoding"), await plain.text()], [
      null,
      html("llama.cpp").repeat(50),
    ]);
    const bundle = await app.request("/_app/immutable/bundle.abc.js");
    assertEquals(bundle.headers.get("content-type"), "application/javascript");
    assertEquals(bundle.headers.get("cache-control"), "public, max-age=31536000, immutable");
    await bundle.body?.cancel();
    const sw = await app.request("/sw.js");
    assertEquals([sw.headers.get("cache-control"), sw.headers.get("etag")], ["no-cache", null]);
    await sw.body?.cancel();
    assertEquals((await app.request("/pwa-64x64.png")).headers.get("content-type"), "image/png");
    // the API is not shadowed, and the page's own path works too
    assertEquals((await (await app.request("/v1/models")).json()).path, "/v1/models");
    assertEquals((await app.request("/llamacpp/")).status, 200);
    const ours = await app.request("/switchyard/");
    assertMatch(await ours.text(), /<title>Switchyard<\/title>/);
  } finally {
    await Deno.remove(cache, { recursive: true });
  }
});

Deno.test("llama.cpp's UI at /llamacpp/ (default): its API calls are answered below it, as at /", async () => {
  const cache = await fakeBuiltUi();
  try {
    const app = pages({ env: { XDG_CACHE_HOME: cache, PATH: "" } });
    assertMatch(await (await app.request("/")).text(), /<title>Switchyard<\/title>/);
    const bare = await app.request("/llamacpp");
    assertEquals([bare.status, bare.headers.get("location")], [301, "/llamacpp/"]);
    assertEquals(await (await app.request("/llamacpp/")).text(), html("llama.cpp").repeat(50));
    assertEquals((await app.request("/llamacpp/_app/version.json")).headers.get("cache-control"), "no-cache");
    // /llamacpp/v1/models is /v1/models: the request the routes see has no /llamacpp in it
    assertEquals(await (await app.request("/llamacpp/v1/models?x=1")).json(), {
      data: [],
      path: "/v1/models",
    });
    const prefixed = pages({ apiPrefix: "/p", env: { XDG_CACHE_HOME: cache, PATH: "" } });
    assertEquals((await (await prefixed.request("/p/llamacpp/v1/models")).json()).path, "/p/v1/models");
    assertEquals((await prefixed.request("/p/llamacpp/")).status, 200);
  } finally {
    await Deno.remove(cache, { recursive: true });
  }
});

Deno.test("llama.cpp's UI not built: no npm or --offline say so; at / our own page stands in", async () => {
  const cache = await Deno.makeTempDir({ prefix: "switchyard-webui-none-" });
  try {
    const env = { XDG_CACHE_HOME: cache, PATH: "" };
    await failure(() => buildWebui({ env, log: () => {} }), WebuiUnavailableError, /npm is not on PATH/);

    const logs: string[] = [];
    const home = pages({ home: "llamacpp", env, log: (l) => logs.push(l) });
    // the start-up build fails at once without npm: / is our page, and the log says why
    const first = await home.request("/");
    const text = await first.text();
    if (first.status === 503) assertMatch(text, /Building/); // the build had not given up yet
    for (let i = 0; i < 50 && !logs.some((l) => l.includes("own page instead")); i++) {
      await new Promise((r) => setTimeout(r, 20));
    }
    assertMatch(await (await home.request("/")).text(), /<title>Switchyard<\/title>/);
    assert(logs.some((l) => /npm is not on PATH/.test(l)), logs.join("\n"));
    const mounted = await home.request("/llamacpp/");
    assertEquals(mounted.status, 503);
    assertMatch(await mounted.text(), /npm is not on PATH/);

    const offline = pages({ offline: true, env: { XDG_CACHE_HOME: cache }, log: () => {} });
    const res = await offline.request("/llamacpp/");
    assertEquals(res.status, 503);
    assertMatch(await res.text(), /--offline/);
    // a file below it is simply not there
    assertEquals((await offline.request("/llamacpp/sw.js")).status, 404);
  } finally {
    await Deno.remove(cache, { recursive: true });
  }
});
