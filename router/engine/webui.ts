/**
 * llama.cpp's own web UI (`tools/ui` of the pinned llama.cpp source, a SvelteKit app), built with
 * npm into a cache beside the engine's, so the gateway can serve it as llama-server serves its
 * embedded copy. The engine is built without it (the prebuilt download needs the network at cmake
 * time, and an npm build inside cmake has no progress), hence this separate, cached build.
 * `deno task webui` prints the built folder's path, building it if needed.
 */
import {
  engineCacheDir,
  ensureSource,
  type Env,
  exists,
  holdBuildLock,
  join,
  onPath,
  output,
  run,
  switchyardCacheDir,
} from "./binary.ts";

/** Where the UI's sources sit in a llama.cpp tree. */
const UI_IN_SOURCE = "tools/ui";
const STAMP = "switchyard-webui.json";

/** No npm (or no source and no way to fetch it): the UI cannot be built here. */
export class WebuiUnavailableError extends Error {
  override name = "WebuiUnavailableError";
}

/** npm failed while building the UI; the message ends with the tail of its output. */
export class WebuiBuildError extends Error {
  override name = "WebuiBuildError";
}

/** What the stamp file records about a finished build. */
export interface WebuiStamp {
  /** llama.cpp commit the UI was built from */
  commit: string;
  source: string;
  builtAt: string;
  seconds: number;
}

export interface WebuiOptions {
  env: Env;
  /** where build progress goes (default: stderr) */
  log?: (line: string) => void;
}

/** `${XDG_CACHE_HOME:-$HOME/.cache}/switchyard/webui`: the npm work tree, `dist/`, log, lock and stamp. */
export function webuiCacheDir(env: Env): string {
  return join(switchyardCacheDir(env), "webui");
}

/** The folder holding the built UI's `index.html`. */
export function webuiDistDir(env: Env): string {
  return join(webuiCacheDir(env), "dist");
}

/**
 * The engine's checkout of the pinned source when it has one (nothing is written into it), else
 * null: a gateway given its llama-server by path never fetched the source.
 */
async function engineSource(env: Env): Promise<string | null> {
  const src = join(engineCacheDir(env), "src");
  return await exists(join(src, UI_IN_SOURCE, "package.json")) ? src : null;
}

async function readStamp(dir: string): Promise<WebuiStamp | null> {
  try {
    return JSON.parse(await Deno.readTextFile(join(dir, STAMP))) as WebuiStamp;
  } catch {
    return null;
  }
}

async function commitOf(src: string): Promise<string> {
  return await output("git", ["rev-parse", "HEAD"], src);
}

/**
 * The built UI's folder, or null when there is none, or when it was built from another commit than
 * the engine's source now is. Never builds.
 */
export async function findWebui(env: Env): Promise<string | null> {
  const dir = webuiCacheDir(env);
  const stamp = await readStamp(dir);
  if (!stamp || !await exists(join(dir, "dist", "index.html"))) return null;
  const src = await engineSource(env);
  if (src && await commitOf(src).catch(() => stamp.commit) !== stamp.commit) return null;
  return join(dir, "dist");
}

/** The built UI's folder, building it first (about a minute and a half on 2 cores) when needed. */
export async function ensureWebui(options: WebuiOptions): Promise<string> {
  return await findWebui(options.env) ?? await buildWebui(options);
}

/**
 * Builds the UI into `webuiCacheDir(env)/dist` under a lock (a second process waits for the first),
 * as llama.cpp's cmake does it (`npm ci`, then `npm run build` with `LLAMA_UI_OUT_DIR`), but from
 * a copy of the sources: the engine's tree is never written to.
 */
export async function buildWebui(options: WebuiOptions): Promise<string> {
  const { env } = options;
  const log = options.log ?? ((line: string) => console.error(line));
  const dir = webuiCacheDir(env);
  const dist = join(dir, "dist");
  const release = await holdBuildLock(dir, "llama.cpp's web UI", log);
  try {
    if (!await onPath("npm", env)) {
      throw new WebuiUnavailableError(
        "llama.cpp's web UI is built with npm, and npm is not on PATH (Debian: apt-get install npm)",
      );
    }
    const src = await engineSource(env) ?? await ownSource(dir, env, log);
    const commit = await commitOf(src);
    const stamp = await readStamp(dir);
    if (stamp?.commit === commit && await exists(join(dist, "index.html"))) return dist;

    const started = Date.now();
    log(
      `switchyard: building llama.cpp's web UI (${UI_IN_SOURCE} at ${commit.slice(0, 7)}) with npm; ` +
        `about 1–2 minutes; done once, cached in ${dir}`,
    );
    const work = join(dir, "work");
    await stageSources(join(src, UI_IN_SOURCE), work);
    const logFile = await Deno.open(join(dir, "build.log"), { create: true, write: true, truncate: true });
    const staged = join(dir, "dist.tmp");
    const progress = (line: string) => {
      if (BUILD_PROGRESS.test(line)) log(`  ui| ${line.trim()}`);
    };
    try {
      log("switchyard: installing the UI's npm packages (npm ci)");
      await run("npm", ["ci", "--no-audit", "--no-fund"], { cwd: work, logFile, onLine: progress });
      log("switchyard: building the UI (npm run build)");
      await Deno.remove(staged, { recursive: true }).catch(() => {});
      await run("npm", ["run", "build"], {
        cwd: work,
        logFile,
        env: {
          LLAMA_UI_OUT_DIR: staged,
          LLAMA_BUILD_NUMBER: await output("git", ["rev-list", "--count", "HEAD"], src),
        },
        onLine: progress,
      });
      if (!await exists(join(staged, "index.html"))) {
        throw new WebuiBuildError(`npm run build finished but wrote no ${staged}/index.html`);
      }
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      throw new WebuiBuildError(`${message}\n(full log: ${join(dir, "build.log")})`);
    } finally {
      logFile.close();
      // node_modules is 700 MB; npm's own cache makes the next `npm ci` quick anyway
      await Deno.remove(work, { recursive: true }).catch(() => {});
    }
    await Deno.remove(join(dir, STAMP)).catch(() => {});
    await Deno.remove(dist, { recursive: true }).catch(() => {});
    await Deno.rename(staged, dist);
    const done: WebuiStamp = {
      commit,
      source: join(src, UI_IN_SOURCE),
      builtAt: new Date().toISOString(),
      seconds: Math.round((Date.now() - started) / 1000),
    };
    await Deno.writeTextFile(join(dir, STAMP), JSON.stringify(done, null, 2) + "\n");
    log(`switchyard: llama.cpp's web UI built in ${done.seconds} s: ${dist}`);
    return dist;
  } finally {
    await release();
  }
}

/** npm's and vite's lines worth showing as progress; everything goes to the build log. */
const BUILD_PROGRESS = /^\s*(> |✓|vite v|transforming|rendering|computing|Relativized|Created|PWA|added \d)/;

/** A clone of our own, for a gateway whose engine came without its source (fetched like the engine's). */
async function ownSource(dir: string, env: Env, log: (line: string) => void): Promise<string> {
  log("switchyard: the engine's llama.cpp source is not in the cache; fetching it for the web UI");
  try {
    await ensureSource(dir, env, log);
  } catch (error) {
    throw new WebuiUnavailableError(
      `cannot get llama.cpp's source for its web UI: ${(error as Error).message}`,
    );
  }
  return join(dir, "src");
}

/** A fresh copy of `ui` at `work`, without what an earlier build or install left in either. */
async function stageSources(ui: string, work: string): Promise<void> {
  await Deno.remove(work, { recursive: true }).catch(() => {});
  await Deno.mkdir(work, { recursive: true });
  for await (const entry of Deno.readDir(ui)) {
    if (entry.name === "node_modules" || entry.name === "dist" || entry.name === ".svelte-kit") continue;
    await run("cp", ["-R", join(ui, entry.name), join(work, entry.name)]);
  }
}

if (import.meta.main) {
  try {
    console.log(await ensureWebui({ env: Deno.env.toObject() }));
  } catch (error) {
    console.error(error instanceof Error ? error.message : String(error));
    Deno.exit(1);
  }
}
