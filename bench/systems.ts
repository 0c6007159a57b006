/** The three systems under test as the phases see them: where they listen, their processes, what they are sent. */
import type { TestGateway } from "../tests/helpers/gateway.ts";
import { type Exchange, percentile } from "./http_client.ts";
import { childrenOf, cmdline, type Server } from "./procs.ts";
import { type Key, KEYS } from "./results.ts";

export const MODEL = "tiny";

export interface System {
  key: Key;
  port: number;
  url: string;
  /** the process clients talk to: the engine itself, Switchyard's gateway, or the llama.cpp router */
  frontPid: number;
}

export const tokenizeBody = { model: MODEL, content: "hello world" };
export const completionBody = { model: MODEL, prompt: "hello", n_predict: 4 };
export const chatStreamBody = {
  model: MODEL,
  messages: [{ role: "user", content: "hello" }],
  max_tokens: 16,
  stream: true,
};
export const coldBody = { model: MODEL, prompt: "hello", n_predict: 4, stream: true };

/** One fresh value per system, keys in the order the results list them. */
export function perSystem<T>(make: (k: Key) => T): Record<Key, T> {
  return Object.fromEntries(KEYS.map((k) => [k, make(k)])) as Record<Key, T>;
}

export const log = (line: string) =>
  console.error(`[bench ${new Date().toISOString().slice(11, 19)}] ${line}`);
export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
export const median = (xs: number[]) => percentile([...xs].sort((a, b) => a - b), 50);
export const mean = (xs: number[]) => xs.reduce((a, x) => a + x, 0) / xs.length;

export async function getJson(url: string): Promise<Record<string, unknown>> {
  const res = await fetch(url);
  const body = await res.json();
  if (!res.ok) throw new Error(`GET ${url}: ${res.status} ${JSON.stringify(body)}`);
  return body;
}

export async function postJson(url: string, body: unknown): Promise<Response> {
  return await fetch(url, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body),
  });
}

export function expectOk(ex: Exchange, what: string): Exchange {
  if (ex.status !== 200) {
    throw new Error(
      `${what}: HTTP ${ex.status} ${ex.body ? new TextDecoder().decode(ex.body).slice(0, 300) : ""}`,
    );
  }
  return ex;
}

export interface Procs {
  direct: { engine: number };
  switchyard: { gateway: number; runner: number; engine: number; spares: number[] };
  router: { router: number; engine: number };
}

/** Which pid is which in each system, once the model is loaded in both routers. */
export function findProcs(direct: Server, gw: TestGateway, router: Server): Procs {
  const isRunner = (pid: number) => /runners\/runner\.ts|--switchyard-runner/.test(cmdline(pid));
  const isEngine = (pid: number) => cmdline(pid).includes("llama-server");
  const runners = childrenOf(gw.pid).filter(isRunner);
  const withEngine = runners.find((r) => childrenOf(r).some(isEngine));
  if (withEngine === undefined) throw new Error("Switchyard: no runner with a running engine");
  const routerEngine = childrenOf(router.pid).find(isEngine);
  if (routerEngine === undefined) throw new Error("llama.cpp router: no running model instance");
  return {
    direct: { engine: direct.pid },
    switchyard: {
      gateway: gw.pid,
      runner: withEngine,
      engine: childrenOf(withEngine).find(isEngine)!,
      spares: runners.filter((r) => r !== withEngine),
    },
    router: { router: router.pid, engine: routerEngine },
  };
}

export function portOf(pid: number): number {
  const m = cmdline(pid).match(/--port (\d+)/);
  if (!m) throw new Error(`no --port in ${cmdline(pid)}`);
  return Number(m[1]);
}
