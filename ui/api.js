// @ts-check
/// <reference lib="dom" />
/**
 * Talking to the gateway: fetch with the stored API key, typed errors from the JSON error body, and
 * one shared "ask for a key" prompt when any call gets a 401.
 */

const KEY_STORAGE = "switchyard.apiKey";

/** An error answer from the gateway, `{"error":{"code","message","type"}}`, or a network failure. */
export class ApiError extends Error {
  /**
   * @param {number} status HTTP status, 0 for a network failure
   * @param {string} message
   * @param {string} [type]
   */
  constructor(status, message, type) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.type = type ?? "";
  }
}

/** @returns {string} */
export function getApiKey() {
  try {
    return localStorage.getItem(KEY_STORAGE) ?? "";
  } catch {
    return "";
  }
}

/** @param {string} key an empty key forgets the stored one */
export function setApiKey(key) {
  if (key) localStorage.setItem(KEY_STORAGE, key);
  else localStorage.removeItem(KEY_STORAGE);
  dispatchEvent(new Event("switchyard:key"));
}

/**
 * Asks the person for a key; resolves true once a new key is stored, false when they cancel.
 * @typedef {(reason: string) => Promise<boolean>} KeyPrompt
 */

/** @type {KeyPrompt} */
let keyPrompt = () => Promise.resolve(false);
/** @type {Promise<boolean> | null} */
let pendingPrompt = null;

/** @param {KeyPrompt} prompt */
export function setKeyPrompt(prompt) {
  keyPrompt = prompt;
}

/** @param {string} reason */
function askForKey(reason) {
  pendingPrompt ??= keyPrompt(reason).finally(() => (pendingPrompt = null));
  return pendingPrompt;
}

/**
 * Builds an ApiError from a failed response: the JSON error body when there is one, else its text.
 * @param {Response} res
 * @returns {Promise<ApiError>}
 */
export async function errorFrom(res) {
  const text = await res.text().catch(() => "");
  try {
    const body = JSON.parse(text);
    const err = body?.error;
    if (err && typeof err === "object" && typeof err.message === "string") {
      return new ApiError(res.status, err.message, err.type);
    }
    if (typeof err === "string") return new ApiError(res.status, err);
  } catch {
    // not JSON: fall through to the text
  }
  return new ApiError(res.status, text.trim() || `HTTP ${res.status} ${res.statusText}`.trim());
}

/**
 * fetch() with the API key. A 401 asks for a key (once for all callers waiting on it) and retries with
 * the new one; any other error status becomes an ApiError.
 * @param {string} path
 * @param {RequestInit} [init]
 * @returns {Promise<Response>}
 */
export async function apiFetch(path, init = {}) {
  for (let attempt = 0;; attempt++) {
    const key = getApiKey();
    const headers = new Headers(init.headers);
    if (key) headers.set("Authorization", `Bearer ${key}`);
    /** @type {Response} */
    let res;
    try {
      res = await fetch(path, { ...init, headers });
    } catch (e) {
      if (e instanceof DOMException && e.name === "AbortError") throw e;
      throw new ApiError(0, "Cannot reach the gateway. Is it running?");
    }
    if (res.status === 401 && attempt < 5) {
      const error = await errorFrom(res);
      if (getApiKey() !== key) continue; // someone already entered a new key
      if (await askForKey(key ? error.message : "")) continue;
      throw error;
    }
    if (!res.ok) throw await errorFrom(res);
    return res;
  }
}

/**
 * @param {string} path
 * @param {RequestInit} [init]
 * @returns {Promise<any>}
 */
export async function apiJson(path, init) {
  const res = await apiFetch(path, init);
  return res.json();
}

/**
 * @param {string} path
 * @param {unknown} body
 * @param {RequestInit} [init]
 * @returns {Promise<Response>}
 */
export function postJson(path, body, init = {}) {
  return apiFetch(path, {
    ...init,
    method: init.method ?? "POST",
    headers: { "Content-Type": "application/json", ...init.headers },
    body: JSON.stringify(body),
  });
}
