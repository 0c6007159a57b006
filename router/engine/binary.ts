/**
 * Finds llama-server, or builds it once from the llama.cpp release that node-llama-cpp pins (its npm
 * package carries the source as a git bundle), so the gateway never depends on what a distribution
 * ships. The same tree builds `llama-fit-params`, the engine's own memory projection, next to it.
 * `deno task engine` prints the binary's path, building it if needed.
 */
import { forEachLine } from "../../runners/lines.ts";
import { FIT_PARAMS_BUILD } from "../memory/fit_params.ts";

/** The npm package whose `llama/gitRelease.bundle` is the pinned llama.cpp source. */
export const ENGINE_PACKAGE = "node-llama-cpp@3.21.1";
/** npm's integrity string for that tarball: the bundle is verified before anything is built from it. */
const ENGINE_PACKAGE_INTEGRITY =
  "sha512-E3N0Ev2Va0wzydvXYFwM9Hvyo07PoWjt8T/9GMc43Cvt8YkV/NU/tYUgEMC1grTPv2o9PRjQi0G3Wb5P/awiMg==";
const BUNDLE_IN_PACKAGE = "package/llama/gitRelease.bundle";

const CMAKE_FLAGS = [
  "-DCMAKE_BUILD_TYPE=Release",
  "-DBUILD_SHARED_LIBS=OFF",
  "-DLLAMA_USE_PREBUILT_UI=OFF",
  "-DLLAMA_OPENSSL=OFF",
  "-DLLAMA_BUILD_TESTS=OFF",
  "-DLLAMA_BUILD_EXAMPLES=OFF",
];

// Plain joins: node:path would make `deno check` want @types/node, which the project does not install.
export function join(...parts: string[]): string {
  return parts.join("/").replace(/\/+/g, "/");
}

/** Environment as `Deno.env.toObject()` gives it. */
export type Env = Record<string, string | undefined>;

export interface ResolveEngineOptions {
  /** `--server-bin PATH`: used as is, never searched for or built */
  serverBin?: string;
  env: Env;
  /** where build progress goes (default: stderr) */
  log?: (line: string) => void;
  /** false: never build; throw `EngineNotFoundError` when no binary exists (default true) */
  build?: boolean;
}

/** The binary asked for does not exist, or the tools to build one are missing. */
export class EngineNotFoundError extends Error {
  override name = "EngineNotFoundError";
}

/** Building llama-server failed; the message ends with the tail of the build log. */
export class EngineBuildError extends Error {
  override name = "EngineBuildError";
}

/** `${XDG_CACHE_HOME:-$HOME/.cache}/switchyard`: what Switchyard builds lives under it, outside the repo. */
export function switchyardCacheDir(env: Env): string {
  return join(env.XDG_CACHE_HOME || join(env.HOME ?? "/tmp", ".cache"), "switchyard");
}

/** `${XDG_CACHE_HOME:-$HOME/.cache}/switchyard/engine`: source, build tree, log, lock and stamp. */
export function engineCacheDir(env: Env): string {
  return join(switchyardCacheDir(env), "engine");
}

export async function isExecutable(path: string): Promise<boolean> {
  try {
    const info = await Deno.stat(path);
    return info.isFile && (info.mode === null || (info.mode & 0o111) !== 0);
  } catch {
    return false;
  }
}

export async function onPath(name: string, env: Env): Promise<string | null> {
  for (const dir of (env.PATH ?? "").split(":")) {
    if (dir && await isExecutable(join(dir, name))) return join(dir, name);
  }
  return null;
}

/**
 * The llama-server to run: `serverBin`, else `$LLAMA_SERVER_BIN`, else `llama-server` on PATH, else
 * the cached build, else a fresh build (10–20 minutes, once).
 */
export async function resolveEngine(options: ResolveEngineOptions): Promise<string> {
  const { env } = options;
  for (
    const [given, origin] of [[options.serverBin, "--server-bin"], [env.LLAMA_SERVER_BIN, "LLAMA_SERVER_BIN"]]
  ) {
    if (!given) continue;
    if (await isExecutable(given)) return given;
    throw new EngineNotFoundError(`${origin} ${given} is not an executable file`);
  }
  const found = await onPath("llama-server", env);
  if (found) return found;
  const cached = join(engineCacheDir(env), "build", "bin", "llama-server");
  if (await isExecutable(cached)) {
    // A binary under a held build lock may be half-linked: wait for that build (buildEngine does).
    // A build from before the fitter was part of it gets the fitter added, in seconds.
    if (options.build === false) return cached;
    if (!await buildInProgress(engineCacheDir(env)) && await fitterBuilt(engineCacheDir(env))) return cached;
  } else if (options.build === false) {
    throw new EngineNotFoundError(
      `no llama-server: not given (--server-bin, LLAMA_SERVER_BIN), not on PATH, not built in ${cached}`,
    );
  }
  return await buildEngine({ env, log: options.log });
}

export async function buildInProgress(dir: string): Promise<boolean> {
  let lock: Deno.FsFile;
  try {
    lock = await Deno.open(join(dir, "build.lock"), { read: true });
  } catch {
    return false;
  }
  try {
    const free = await lock.tryLock(false);
    if (free) await lock.unlock();
    return !free;
  } finally {
    lock.close();
  }
}

const DEBIAN_PACKAGE: Record<string, string> = {
  cmake: "cmake",
  "g++": "g++",
  make: "make",
  git: "git",
  tar: "tar",
};

async function checkBuildTools(env: Env): Promise<void> {
  const missing: string[] = [];
  for (const tool of Object.keys(DEBIAN_PACKAGE)) {
    if (!await onPath(tool, env)) missing.push(tool);
  }
  if (missing.length === 0) return;
  const packages = missing.map((tool) => DEBIAN_PACKAGE[tool]).join(" ");
  throw new EngineNotFoundError(
    `llama-server was not found and cannot be built: missing ${missing.join(", ")}.\n` +
      `On Debian/Ubuntu: sudo apt-get install ${packages}\n` +
      `Or point to an existing binary with --server-bin PATH or LLAMA_SERVER_BIN.`,
  );
}

export interface RunOptions {
  cwd?: string;
  /** added to the inherited environment */
  env?: Record<string, string>;
  logFile?: Deno.FsFile;
  onLine?: (line: string) => void;
}

const encoder = new TextEncoder();

/** Runs a build step, appending its output to the build log; throws with the log's tail on failure. */
export async function run(cmd: string, args: string[], options: RunOptions = {}): Promise<void> {
  const tail: string[] = [];
  const child = new Deno.Command(cmd, {
    args,
    cwd: options.cwd,
    env: options.env,
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const onLine = (line: string) => {
    options.logFile?.writeSync(encoder.encode(line + "\n"));
    tail.push(line);
    if (tail.length > 25) tail.shift();
    options.onLine?.(line);
  };
  const [status] = await Promise.all([
    child.status,
    forEachLine(child.stdout, onLine),
    forEachLine(child.stderr, onLine),
  ]);
  if (!status.success) {
    throw new EngineBuildError(`${cmd} ${args.join(" ")} failed (exit ${status.code}):\n${tail.join("\n")}`);
  }
}

export async function output(cmd: string, args: string[], cwd?: string): Promise<string> {
  const out = await new Deno.Command(cmd, { args, cwd, stdout: "piped", stderr: "piped" }).output();
  if (!out.success) {
    throw new EngineBuildError(`${cmd} ${args.join(" ")} failed: ${new TextDecoder().decode(out.stderr)}`);
  }
  return new TextDecoder().decode(out.stdout).trim();
}

async function sha512Integrity(path: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-512", await Deno.readFile(path));
  return "sha512-" + btoa(String.fromCharCode(...new Uint8Array(digest)));
}

/** Fetches the pinned package tarball into `dir` with npm, so npm's own registry and proxy settings apply. */
async function fetchPackage(dir: string, env: Env, log: (line: string) => void): Promise<string> {
  const tarball = join(dir, "node-llama-cpp-3.21.1.tgz");
  if (!await onPath("npm", env)) {
    throw new EngineNotFoundError(
      `building llama-server needs npm to fetch ${ENGINE_PACKAGE} (Debian: apt-get install npm), ` +
        "or give a llama-server with --server-bin / LLAMA_SERVER_BIN",
    );
  }
  log(`switchyard: downloading ${ENGINE_PACKAGE} with npm pack`);
  await run("npm", ["pack", ENGINE_PACKAGE, "--silent", "--pack-destination", dir]);
  const integrity = await sha512Integrity(tarball);
  if (integrity !== ENGINE_PACKAGE_INTEGRITY) {
    throw new EngineBuildError(`${tarball} does not match the pinned integrity (got ${integrity})`);
  }
  return tarball;
}

/** Puts the pinned llama.cpp source at `<dir>/src`, unless a checkout is already there. */
export async function ensureSource(dir: string, env: Env, log: (line: string) => void): Promise<void> {
  const src = join(dir, "src");
  if (await exists(join(src, "CMakeLists.txt"))) return;
  const staging = join(dir, "download.tmp");
  await Deno.remove(staging, { recursive: true }).catch(() => {});
  await Deno.mkdir(staging, { recursive: true });
  try {
    const tarball = await fetchPackage(staging, env, log);
    await run("tar", ["-xzf", tarball, "-C", staging, BUNDLE_IN_PACKAGE]);
    // Clone next to the final place and rename, so an interrupted clone never looks like a source tree.
    const cloned = join(staging, "src");
    await run("git", ["clone", "--quiet", join(staging, BUNDLE_IN_PACKAGE), cloned]);
    await Deno.remove(src, { recursive: true }).catch(() => {});
    await Deno.rename(cloned, src);
  } finally {
    await Deno.remove(staging, { recursive: true }).catch(() => {});
  }
}

export async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch {
    return false;
  }
}

/** What the stamp file records about a finished build. */
export interface EngineStamp {
  package: string;
  commit: string;
  cmakeFlags: string[];
  builtAt: string;
  /** the targets built and linked; a stamp from before the fitter was built has none (llama-server) */
  targets?: string[];
}

/** The engine and its memory fitter (router/memory/fit_params.ts), built from one cmake tree. */
const SERVER_TARGET = "llama-server";
const FITTER_TARGET = FIT_PARAMS_BUILD.target;

/** The stamp of a finished build; undefined when there is none. It is written only after a build succeeded. */
async function readStamp(stampFile: string): Promise<Partial<EngineStamp> | undefined> {
  let text: string;
  try {
    text = await Deno.readTextFile(stampFile);
  } catch {
    return undefined;
  }
  try {
    return JSON.parse(text) as Partial<EngineStamp>;
  } catch {
    // written by an older version, or cut short: the build it stamps had still finished
    return {};
  }
}

/** Whether the cached build's fitter is there and was finished (the stamp lists it). */
async function fitterBuilt(dir: string): Promise<boolean> {
  const stamp = await readStamp(join(dir, "build", "switchyard-engine.json"));
  return !!stamp?.targets?.includes(FITTER_TARGET) &&
    await isExecutable(join(dir, "build", "bin", FITTER_TARGET));
}

/**
 * Builds llama-server into `engineCacheDir(env)/build/bin` under a lock (a second process waits for
 * the first instead of building too), streaming cmake's `[NN%]` lines to `log`.
 */
export async function buildEngine(options: { env: Env; log?: (line: string) => void }): Promise<string> {
  const { env } = options;
  const log = options.log ?? ((line: string) => console.error(line));
  const dir = engineCacheDir(env);
  const bin = join(dir, "build", "bin", "llama-server");
  const release = await holdBuildLock(dir, "llama-server", log);
  try {
    const stampFile = join(dir, "build", "switchyard-engine.json");
    const finished = await isExecutable(bin) ? await readStamp(stampFile) : undefined;
    if (finished) {
      if (!await fitterBuilt(dir)) await addFitter(dir, finished, env, log);
      return bin;
    }
    await checkBuildTools(env);
    const jobs = Math.max(1, navigator.hardwareConcurrency || 1);
    log(
      `switchyard: building llama-server from the pinned llama.cpp release (${ENGINE_PACKAGE}); ` +
        `about 10–20 minutes on 2 cores (using ${jobs}); done once, cached in ${dir}`,
    );
    await ensureSource(dir, env, log);
    const logFile = await Deno.open(join(dir, "build.log"), { create: true, write: true, truncate: true });
    try {
      log("switchyard: configuring (cmake)");
      await run("cmake", ["-S", "src", "-B", "build", ...CMAKE_FLAGS], { cwd: dir, logFile });
      await run("cmake", [...FIT_PARAMS_BUILD.cmakeBuildArgs, `-j${jobs}`], {
        cwd: dir,
        logFile,
        onLine: (line) => {
          if (/^\[\s*\d+%\]/.test(line)) log(line);
        },
      });
    } catch (error) {
      if (error instanceof EngineBuildError) {
        throw new EngineBuildError(`${error.message}\n(full log: ${join(dir, "build.log")})`);
      }
      throw error;
    } finally {
      logFile.close();
    }
    const stamp: EngineStamp = {
      package: ENGINE_PACKAGE,
      commit: await output("git", ["rev-parse", "HEAD"], join(dir, "src")),
      cmakeFlags: CMAKE_FLAGS,
      builtAt: new Date().toISOString(),
      targets: [SERVER_TARGET, FITTER_TARGET],
    };
    await writeStamp(stampFile, stamp);
    log(`switchyard: llama-server built: ${bin}`);
    return bin;
  } finally {
    await release();
  }
}

async function writeStamp(stampFile: string, stamp: EngineStamp): Promise<void> {
  await Deno.writeTextFile(stampFile, JSON.stringify(stamp, null, 2) + "\n");
}

/**
 * Builds the fitter into a finished tree (under the build lock held by the caller): its libraries are
 * built already, so this compiles one file and links, seconds. llama-server is never rebuilt for it:
 * only the fitter's target is asked for. Without the tools or on a failure the engine still works
 * (projections then come from the GGUF estimate), so this logs instead of throwing.
 */
async function addFitter(
  dir: string,
  stamp: Partial<EngineStamp>,
  env: Env,
  log: (line: string) => void,
): Promise<void> {
  try {
    await checkBuildTools(env);
    log(`switchyard: building ${FITTER_TARGET} into the cached engine build (seconds)`);
    const logFile = await Deno.open(join(dir, "build.log"), { create: true, append: true });
    try {
      // the cmake checkBuildTools found, which is the one the tree was configured with on this PATH
      const cmake = await onPath("cmake", env) ?? "cmake";
      await run(cmake, ["--build", "build", "--target", FITTER_TARGET], { cwd: dir, logFile });
    } finally {
      logFile.close();
    }
    const targets = [...new Set([...stamp.targets ?? [SERVER_TARGET], FITTER_TARGET])];
    await writeStamp(join(dir, "build", "switchyard-engine.json"), { ...stamp, targets } as EngineStamp);
  } catch (error) {
    // the command that failed and the build's last word
    const lines = (error as Error).message.split("\n").filter(Boolean);
    const reason = lines.length > 1 ? `${lines[0]} ${lines[lines.length - 1]}` : lines[0];
    log(`switchyard: cannot build ${FITTER_TARGET} (${reason}); memory projections use the GGUF estimate`);
  }
}

/**
 * Takes `<dir>/build.lock` (creating `dir`), waiting with a note to `log` while another process
 * builds `what` there, so two builds never share a tree. Resolves with the function that releases it.
 */
export async function holdBuildLock(
  dir: string,
  what: string,
  log: (line: string) => void,
): Promise<() => Promise<void>> {
  await Deno.mkdir(dir, { recursive: true });
  const lock = await Deno.open(join(dir, "build.lock"), { create: true, write: true });
  try {
    if (!await lock.tryLock(true)) {
      log(`switchyard: another process is building ${what} in ${dir}; waiting for it`);
      await lock.lock(true);
    }
  } catch (error) {
    lock.close();
    throw error;
  }
  return async () => {
    await lock.unlock().catch(() => {});
    lock.close();
  };
}

const versions = new Map<string, Promise<string>>();

/**
 * The engine's `build_info` (`b<N>-<hash>`, what its /props and `system_fingerprint` report), from
 * one `--version` run per binary.
 */
export function engineVersion(bin: string): Promise<string> {
  let version = versions.get(bin);
  if (!version) {
    version = (async () => {
      const out = await new Deno.Command(bin, { args: ["--version"], stdout: "piped", stderr: "piped" })
        .output();
      const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
      // llama_print_build_info: "version: <v> (build <N>, commit <hash>)"; older builds: "version: <N> (<hash>)"
      const match = /\(build (\d+), commit ([^)\s]+)\)/.exec(text) ??
        /version: (\d+) \(([0-9a-f]+)\)/.exec(text);
      if (!match) throw new Error(`cannot read the version of ${bin}: ${text.slice(0, 300)}`);
      return `b${match[1]}-${match[2]}`;
    })();
    versions.set(bin, version);
    version.catch(() => versions.delete(bin));
  }
  return version;
}

function argValue(args: string[], name: string): string | undefined {
  const i = args.indexOf(name);
  if (i >= 0) return args[i + 1];
  return args.find((arg) => arg.startsWith(name + "="))?.slice(name.length + 1);
}

if (import.meta.main) {
  try {
    const bin = await resolveEngine({
      serverBin: argValue(Deno.args, "--server-bin"),
      env: Deno.env.toObject(),
    });
    console.log(bin);
    console.error(`switchyard: ${await engineVersion(bin)}`);
  } catch (error) {
    console.error(error instanceof Error ? error.message : String(error));
    Deno.exit(1);
  }
}
