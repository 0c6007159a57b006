/**
 * API keys: llama.cpp's `--api-key` / `--api-key-file` (Bearer or `X-Api-Key`, `/health` public), plus
 * what a shared gateway needs: several keys, admin keys for model management, and a per-key list of
 * the models a key may use. Keys are compared in constant time and never reach an engine.
 *
 * A key file has one key per line, optionally followed by `models=a,b,c`; `#` starts a comment:
 *
 *     sk-team-a  models=qwen2.5-7b,llama-3.2-3b
 *     sk-ci
 */
import type { Context, MiddlewareHandler } from "hono";
import { timingSafeEqual } from "hono/utils/buffer";
import { ApiError } from "./errors.ts";

export interface ApiKey {
  key: string;
  /** may load, unload, download, delete and reload models */
  admin: boolean;
  /** ids or aliases this key may use; undefined: every model */
  models?: Set<string>;
}

export class KeyFileError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "KeyFileError";
  }
}

/** Parses a key file (see the module comment). */
export function parseKeyFile(text: string, file: string, admin: boolean): ApiKey[] {
  const keys: ApiKey[] = [];
  text.split(/\r?\n/).forEach((raw, i) => {
    const line = raw.replace(/#.*$/, "").trim();
    if (!line) return;
    const [key, ...rest] = line.split(/\s+/);
    const entry: ApiKey = { key, admin };
    for (const field of rest) {
      const m = field.match(/^models=(.+)$/);
      if (!m) throw new KeyFileError(`${file}:${i + 1}: unknown field '${field}' (expected models=a,b,...)`);
      entry.models = new Set(m[1].split(",").map((s) => s.trim()).filter(Boolean));
    }
    keys.push(entry);
  });
  return keys;
}

const PUBLIC_PATHS = new Set(["/health", "/v1/health"]);
const KEY_VAR = "apiKey";

/**
 * Rejects requests without a valid key (401) and remembers which key was used. `/health` is public
 * wherever the API is mounted (at `--api-prefix`, and under a web UI's path).
 */
export function keyAuth(keys: ApiKey[]): MiddlewareHandler {
  return async (c, next) => {
    const path = c.req.path;
    const isPublic = [...PUBLIC_PATHS].some((p) => path === p || path.endsWith(p));
    if (c.req.method === "OPTIONS" || isPublic) return next();
    const header = c.req.header("authorization") ?? c.req.header("x-api-key") ?? "";
    const given = header.replace(/^Bearer\s+/i, "").trim();
    let match: ApiKey | undefined;
    // every key is compared, so the time taken says nothing about which key came close
    for (const candidate of keys) if (await timingSafeEqual(given, candidate.key)) match ??= candidate;
    if (!match) throw new ApiError("authentication_error", "Invalid API Key");
    c.set(KEY_VAR as never, match as never);
    await next();
  };
}

function keyOf(c: Context): ApiKey | undefined {
  return c.get(KEY_VAR as never) as ApiKey | undefined;
}

/** Model management needs an admin key when admin keys are configured. */
export function requireAdmin(c: Context, adminKeysConfigured: boolean): void {
  const key = keyOf(c);
  if (key && adminKeysConfigured && !key.admin) {
    throw new ApiError("permission_error", "this action needs an admin API key");
  }
}

/** Is the request's key allowed to use this model (by id or one of its aliases)? */
export function requireModelAllowed(c: Context, names: string[]): void {
  const allowed = keyOf(c)?.models;
  if (allowed && !names.some((n) => allowed.has(n))) {
    throw new ApiError("permission_error", `this API key may not use model '${names[0]}'`);
  }
}

/** For listings: may the request's key see this model? */
export function modelVisible(c: Context, names: string[]): boolean {
  const allowed = keyOf(c)?.models;
  return !allowed || names.some((n) => allowed.has(n));
}
