/** Shared pieces of the hub tests: fake model bytes, a throwaway cache, and a view of what is in it. */
import { join, relative } from "node:path";
import type { HubOptions } from "../../router/hub/options.ts";
import { type FakeHub, type FakeRepo, startFakeHub } from "../fixtures/fake_hub.ts";

/** Deterministic bytes that differ per seed, so every fake file has its own hash. */
export function bytes(n: number, seed: number): Uint8Array {
  const out = new Uint8Array(n);
  let x = seed * 2654435761 >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}

/** Every file and link under `dir`, relative, with links shown as `path -> target`. */
export async function listCache(dir: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (d: string): Promise<void> => {
    for await (const e of Deno.readDir(d)) {
      const p = join(d, e.name);
      if (e.isDirectory) await walk(p);
      else if (e.isSymlink) out.push(`${relative(dir, p)} -> ${await Deno.readLink(p)}`);
      else out.push(relative(dir, p));
    }
  };
  await walk(dir);
  return out.sort();
}

export interface HubEnv {
  hub: FakeHub;
  cacheDir: string;
  opts: HubOptions;
  [Symbol.asyncDispose](): Promise<void>;
}

/** A fake hub and an empty cache, both gone at the end of the `await using` scope. */
export async function hubEnv(repos: Record<string, FakeRepo>, treePageSize?: number): Promise<HubEnv> {
  const hub = await startFakeHub({ repos, treePageSize });
  const cacheDir = await Deno.makeTempDir({ prefix: "switchyard-hub-" });
  return {
    hub,
    cacheDir,
    opts: { endpoint: hub.url, cacheDir },
    async [Symbol.asyncDispose]() {
      await hub.close();
      await Deno.remove(cacheDir, { recursive: true });
    },
  };
}

/** The resolve GETs the hub saw (the CDN hop after each redirect is not counted). */
export function fileGets(hub: FakeHub, path?: string): string[] {
  return hub.requests.filter((r) => r.method === "GET" && r.path.includes("/resolve/"))
    .map((r) => r.path)
    .filter((p) => path === undefined || p.endsWith(`/${path}`));
}

// deno-lint-ignore no-explicit-any
type ErrorClass<E> = new (...args: any[]) => E;

/** Awaits a rejection of class `cls` (whose message matches `re`, if given) and returns the error. */
export async function rejectsWith<E extends Error>(
  p: Promise<unknown>,
  cls: ErrorClass<E>,
  re?: RegExp,
): Promise<E> {
  const err = await p.then(() => undefined, (e: unknown) => e);
  if (!(err instanceof cls)) throw new Error(`expected ${cls.name}, got ${err}`, { cause: err });
  if (re && !re.test(err.message)) {
    throw new Error(`${cls.name} message ${JSON.stringify(err.message)} !~ ${re}`);
  }
  return err;
}
