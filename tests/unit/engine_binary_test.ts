/**
 * Finding llama-server: the order of the places searched, the build lock, the message when nothing
 * can be built, and reading the version. No real build runs here.
 */
import { assert, assertEquals, assertMatch, assertRejects } from "../helpers/assert.ts";
import { HANG_MS, waitFor } from "../helpers/wait.ts";
import {
  buildEngine,
  EngineNotFoundError,
  engineVersion,
  resolveEngine,
} from "../../router/engine/binary.ts";

async function executable(path: string, script = "#!/bin/sh\nexit 0\n"): Promise<string> {
  await Deno.mkdir(path.slice(0, path.lastIndexOf("/")), { recursive: true });
  await Deno.writeTextFile(path, script);
  await Deno.chmod(path, 0o755);
  return path;
}

async function withTemp(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "switchyard-engine-" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("resolveEngine: --server-bin, then LLAMA_SERVER_BIN, then PATH, then the cached build", async () => {
  await withTemp(async (dir) => {
    const given = await executable(`${dir}/given/llama-server`);
    const fromEnv = await executable(`${dir}/env/llama-server`);
    const onPath = await executable(`${dir}/path/llama-server`);
    const cached = await executable(`${dir}/cache/switchyard/engine/build/bin/llama-server`);
    const env = {
      PATH: `${dir}/nothing:${dir}/path`,
      LLAMA_SERVER_BIN: fromEnv,
      XDG_CACHE_HOME: `${dir}/cache`,
    };
    assertEquals(await resolveEngine({ serverBin: given, env, build: false }), given);
    assertEquals(await resolveEngine({ env, build: false }), fromEnv);
    assertEquals(await resolveEngine({ env: { ...env, LLAMA_SERVER_BIN: undefined }, build: false }), onPath);
    assertEquals(
      await resolveEngine({ env: { XDG_CACHE_HOME: `${dir}/cache`, PATH: "" }, build: false }),
      cached,
    );
    // without XDG_CACHE_HOME the cache is under $HOME/.cache
    const home = await executable(`${dir}/home/.cache/switchyard/engine/build/bin/llama-server`);
    assertEquals(await resolveEngine({ env: { HOME: `${dir}/home`, PATH: "" }, build: false }), home);
  });
});

Deno.test("resolveEngine: a named binary that is not there is an error, not a fallback", async () => {
  await withTemp(async (dir) => {
    const err = await resolveEngine({ serverBin: `${dir}/missing`, env: {}, build: false }).catch((e) => e);
    assert(err instanceof EngineNotFoundError);
    assertMatch(err.message, /--server-bin/);
    const fromEnv = await resolveEngine({ env: { LLAMA_SERVER_BIN: `${dir}/missing` } }).catch((e) => e);
    assert(fromEnv instanceof EngineNotFoundError);
    assertMatch(fromEnv.message, /LLAMA_SERVER_BIN/);
    await assertRejects(() => resolveEngine({ env: { HOME: dir, PATH: "" }, build: false }));
  });
});

Deno.test("buildEngine: missing tools give the Debian packages to install", async () => {
  await withTemp(async (dir) => {
    await executable(`${dir}/bin/git`);
    await executable(`${dir}/bin/tar`);
    const err = await resolveEngine({ env: { HOME: dir, PATH: `${dir}/bin` }, log: () => {} }).catch((e) =>
      e
    );
    assert(err instanceof EngineNotFoundError, String(err));
    assertMatch(err.message, /missing cmake, g\+\+, make/);
    assertMatch(err.message, /apt-get install cmake g\+\+ make/);
    assertMatch(err.message, /--server-bin/);
  });
});

Deno.test("buildEngine: a second process waits for the build lock, then uses what the first built", async () => {
  await withTemp(async (dir) => {
    const engineDir = `${dir}/switchyard/engine`;
    await Deno.mkdir(engineDir, { recursive: true });
    const lock = await Deno.open(`${engineDir}/build.lock`, { create: true, write: true });
    await lock.lock(true);
    const lines: string[] = [];
    let settled = false;
    const waiting = resolveEngine({ env: { XDG_CACHE_HOME: dir, PATH: "" }, log: (l) => lines.push(l) })
      .finally(() => settled = true);
    // it says it waits for the lock, and does: neither that nor the binary appearing settles it
    await waitFor(() => lines.some((l) => /another process is building/.test(l)), HANG_MS, "the wait note");
    // the "first builder" finishes: binary and stamp appear, then the lock is released
    const bin = await executable(`${engineDir}/build/bin/llama-server`);
    assertEquals(settled, false);
    await Deno.writeTextFile(`${engineDir}/build/switchyard-engine.json`, "{}");
    await lock.unlock();
    lock.close();
    assertEquals(await waiting, bin);
    assertMatch(lines.join("\n"), /another process is building llama-server/);
    // buildEngine on its own returns the finished build at once
    assertEquals(await buildEngine({ env: { XDG_CACHE_HOME: dir, PATH: "" }, log: () => {} }), bin);
  });
});

Deno.test("engineVersion: reads build_info from --version", async () => {
  await withTemp(async (dir) => {
    const bin = await executable(
      `${dir}/llama-server`,
      "#!/bin/sh\necho 'version: 0.4.0-dev (build 6512, commit 80fb11a)' >&2\necho 'built with GNU 12.2.0 for Linux x86_64' >&2\n",
    );
    assertEquals(await engineVersion(bin), "b6512-80fb11a");
    const bad = await executable(`${dir}/bad`, "#!/bin/sh\necho nonsense\n");
    await assertRejects(() => engineVersion(bad));
  });
});

/** Fake build tools on a PATH of their own: cmake records its arguments and "links" the fitter. */
async function fakeTools(dir: string, cmake: string): Promise<string> {
  for (const tool of ["g++", "make", "git", "tar"]) await executable(`${dir}/tools/${tool}`);
  await executable(`${dir}/tools/cmake`, `#!/bin/sh\necho "$*" >> '${dir}/cmake.calls'\n${cmake}\n`);
  return `${dir}/tools`;
}

Deno.test("a cached build from before the fitter gets llama-fit-params built into its tree, once", async () => {
  await withTemp(async (dir) => {
    const engineDir = `${dir}/switchyard/engine`;
    const bin = await executable(`${engineDir}/build/bin/llama-server`);
    const before = (await Deno.stat(bin)).mtime;
    await Deno.writeTextFile(`${engineDir}/build/switchyard-engine.json`, JSON.stringify({ commit: "abc" }));
    const PATH = await fakeTools(
      dir,
      `printf '#!/bin/sh\\n' > build/bin/llama-fit-params; chmod +x build/bin/llama-fit-params`,
    );
    const lines: string[] = [];
    const env = { XDG_CACHE_HOME: dir, PATH };
    assertEquals(await resolveEngine({ env, log: (l) => lines.push(l) }), bin);
    assertEquals(await Deno.readTextFile(`${dir}/cmake.calls`), "--build build --target llama-fit-params\n");
    assertMatch(lines.join("\n"), /building llama-fit-params into the cached engine build/);
    const stamp = JSON.parse(await Deno.readTextFile(`${engineDir}/build/switchyard-engine.json`));
    assertEquals(stamp, { commit: "abc", targets: ["llama-server", "llama-fit-params"] });
    assertEquals((await Deno.stat(bin)).mtime, before, "llama-server is not rebuilt");
    // stamped: the next start finds both and builds nothing
    assertEquals(await resolveEngine({ env, log: (l) => lines.push(l) }), bin);
    assertEquals((await Deno.readTextFile(`${dir}/cmake.calls`)).split("\n").length, 2);
  });
});

Deno.test("a fitter that cannot be built leaves the engine usable, with the GGUF estimate named", async () => {
  await withTemp(async (dir) => {
    const engineDir = `${dir}/switchyard/engine`;
    const bin = await executable(`${engineDir}/build/bin/llama-server`);
    await Deno.writeTextFile(`${engineDir}/build/switchyard-engine.json`, "{}");
    const PATH = await fakeTools(dir, "echo 'no rule to make target' >&2; exit 2");
    const lines: string[] = [];
    assertEquals(await resolveEngine({ env: { XDG_CACHE_HOME: dir, PATH }, log: (l) => lines.push(l) }), bin);
    assertMatch(
      lines.join("\n"),
      /cannot build llama-fit-params \(\S+cmake --build build --target llama-fit-params failed \(exit 2\): no rule to make target\); memory projections use the GGUF estimate$/m,
    );
    // build: false never builds, not even the fitter
    assertEquals(await resolveEngine({ env: { XDG_CACHE_HOME: dir, PATH }, build: false }), bin);
    assertEquals((await Deno.readTextFile(`${dir}/cmake.calls`)).trim().split("\n").length, 1);
  });
});
