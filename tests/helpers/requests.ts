/**
 * Requests with an API key, for the in-process tests (`app.request`) and the end-to-end ones
 * (`fetch` to a real gateway) alike: both take a `Send`.
 */
import type { HasUrl } from "./http.ts";
import { chatBody, expectError } from "./openai.ts";

export type Send = (path: string, init?: RequestInit) => Promise<Response>;

/** Requests over HTTP to a gateway that listens. */
export function overHttp(gw: HasUrl): Send {
  return (path, init) => fetch(gw.url + path, init);
}

export interface KeyedInit extends RequestInit {
  /** sent as a Bearer token, or as `X-Api-Key` when `header` says so */
  key?: string;
  header?: "bearer" | "x-api-key";
  /** sent as the JSON body */
  json?: unknown;
}

/** The `RequestInit` for `init`: its key in the header it names, its JSON body with a JSON Content-Type. */
export function keyed(init: KeyedInit = {}): RequestInit {
  const { key, header, json, ...rest } = init;
  const headers = new Headers(rest.headers);
  if (key !== undefined) {
    if (header === "x-api-key") headers.set("X-Api-Key", key);
    else headers.set("Authorization", `Bearer ${key}`);
  }
  const body = json === undefined ? rest.body : JSON.stringify(json);
  if (body && !headers.has("Content-Type")) headers.set("Content-Type", "application/json");
  return { ...rest, headers, body };
}

/** A short chat request for `model` with `key`. */
export function chatAs(
  send: Send,
  key: string,
  model: string,
  header?: KeyedInit["header"],
): Promise<Response> {
  return send("/v1/chat/completions", keyed({ method: "POST", key, header, json: chatBody(model) }));
}

/** Asserts that the gateway refuses this request: 401 authentication_error or 403 permission_error. */
export async function expectRefused(
  send: Send,
  status: 401 | 403,
  context: string,
  path: string,
  init: KeyedInit,
): Promise<void> {
  const type = status === 401 ? "authentication_error" : "permission_error";
  await expectError(await send(path, keyed(init)), status, context, { type });
}

/** The ids a model listing (`/models`, `/v1/models`) shows. */
export async function listedIds(res: Response): Promise<string[]> {
  const list = await res.json();
  return list.data.map((m: { id: string }) => m.id);
}
