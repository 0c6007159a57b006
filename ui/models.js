// @ts-check
/// <reference lib="dom" />
/**
 * The live model table: filled from GET /v1/models, kept current by the /models/sse feed (read with
 * fetch so that the API key can be sent), never polled.
 */
import { ApiError, apiFetch, apiJson } from "./api.js";
import { sseData } from "./sse.js";

/**
 * @typedef {object} ModelStatus
 * @property {string} value unloaded | loading | loaded | sleeping | downloading | downloaded
 * @property {string[]} [args]
 * @property {string} [preset]
 * @property {boolean} [failed]
 * @property {number} [exit_code]
 * @property {string} [error]
 * @property {{value?: number, done?: number, total?: number}} [progress]
 */

/**
 * @typedef {object} ModelEntry
 * @property {string} id
 * @property {string[]} [aliases]
 * @property {string[]} [tags]
 * @property {string} [source]
 * @property {boolean} [can_remove]
 * @property {ModelStatus} status
 */

/**
 * @typedef {object} ModelChange
 * @property {string | null} id the model that changed, null for the whole table
 * @property {string} [event] the feed event behind it
 * @property {string} [before] the shown state before, for announcements
 */

/** @typedef {"connecting" | "live" | "offline"} FeedState */

export class ModelStore extends EventTarget {
  /** @type {Map<string, ModelEntry>} */
  models = new Map();
  /** @type {FeedState} */
  feed = "connecting";
  feedError = "";
  loaded = false;

  /** @returns {ModelEntry[]} */
  list() {
    return [...this.models.values()].sort((a, b) => a.id.localeCompare(b.id));
  }

  /**
   * Finds a model by id or alias.
   * @param {string} name
   */
  get(name) {
    return this.models.get(name) ?? this.list().find((m) => m.aliases?.includes(name));
  }

  /** @param {ModelEntry[]} entries */
  replaceAll(entries) {
    this.models = new Map(
      entries.filter((e) => e && typeof e.id === "string").map((e) => [e.id, normalize(e)]),
    );
    this.loaded = true;
    this.#emit({ id: null });
  }

  /**
   * @param {FeedState} state
   * @param {string} [error]
   */
  setFeed(state, error = "") {
    if (this.feed === state && this.feedError === error) return;
    this.feed = state;
    this.feedError = error;
    this.dispatchEvent(new CustomEvent("feed"));
  }

  /** Re-lists the models from GET /v1/models. */
  async refresh() {
    const body = await apiJson("/v1/models");
    this.replaceAll(Array.isArray(body?.data) ? body.data : []);
  }

  /**
   * Applies one feed message `{model, event, data}`.
   * @param {{model?: string, event?: string, data?: any}} msg
   * @returns {boolean} false when the table must be re-listed (unknown model, reload)
   */
  apply(msg) {
    const { model: id = "*", event = "", data = {} } = msg;
    if (event === "snapshot") {
      this.replaceAll(Array.isArray(data?.models) ? data.models : []);
      return true;
    }
    if (event === "models_reload") return false;
    if (event === "model_remove") {
      this.models.delete(id);
      this.#emit({ id, event });
      return true;
    }
    let entry = this.models.get(id);
    const known = !!entry;
    if (!entry) {
      if (id === "*") return false;
      entry = { id, status: { value: "unloaded" } };
      this.models.set(id, entry);
    }
    const before = stateOf(entry);
    const status = entry.status;
    const next = /** @type {ModelStatus} */ ({ ...status });
    if (event === "model_status" || event === "status_change" || event === "status_update") {
      const s = data?.status;
      if (s && typeof s === "object") {
        // a whole status object replaces the old one (args and preset stay when it leaves them out)
        for (const k of Object.keys(next)) {
          if (k !== "args" && k !== "preset") delete next[/** @type {keyof ModelStatus} */ (k)];
        }
        Object.assign(next, s);
      } else if (typeof s === "string") {
        next.value = s;
        // Switchyard sends the engine's argv (with its real port) once it is known
        if (Array.isArray(data.args)) next.args = data.args;
        if (s === "loading" || s === "downloading") {
          delete next.failed;
          delete next.exit_code;
          delete next.error;
          if (s !== status.value) delete next.progress;
        }
        if (s === "loading" && data.progress && typeof data.progress === "object") {
          if (typeof data.progress.value === "number") next.progress = { value: data.progress.value };
        }
        if (s === "loaded" || s === "sleeping" || s === "unloaded") delete next.progress;
        if (s === "unloaded") {
          if (typeof data.exit_code === "number") next.exit_code = data.exit_code;
          const failed = data.failed ?? (typeof data.exit_code === "number" && data.exit_code !== 0);
          if (failed) next.failed = true;
          else delete next.failed;
          if (typeof data.error === "string") next.error = data.error;
          else if (!failed) delete next.error;
        }
      }
    } else if (event === "download_progress") {
      let done = 0, total = 0;
      for (const p of Object.values(data?.progress ?? {})) {
        done += Number(/** @type {any} */ (p)?.done) || 0;
        total += Number(/** @type {any} */ (p)?.total) || 0;
      }
      next.value = "downloading";
      next.progress = { done, total };
    } else if (event === "download_finished") {
      next.value = "downloaded";
      delete next.progress;
    } else if (event === "download_failed") {
      next.value = "downloaded";
      next.failed = true;
      next.error = typeof data?.error === "string" ? data.error : "download failed";
      delete next.progress;
    } else {
      return known;
    }
    entry.status = next;
    this.#emit({ id, event, before });
    return known && event !== "download_finished";
  }

  /** @param {ModelChange} change */
  #emit(change) {
    this.dispatchEvent(new CustomEvent("change", { detail: change }));
  }
}

/**
 * @param {ModelEntry} e
 * @returns {ModelEntry}
 */
function normalize(e) {
  return { ...e, status: e.status && typeof e.status === "object" ? e.status : { value: "unloaded" } };
}

/**
 * The state to show: the status value, or "failed" for a model whose last run or download failed.
 * @param {ModelEntry | undefined} entry
 * @returns {string}
 */
export function stateOf(entry) {
  if (!entry) return "unknown";
  const s = entry.status;
  if (s.failed && (s.value === "unloaded" || s.value === "downloaded")) return "failed";
  return s.value || "unloaded";
}

/** @type {Record<string, string>} */
const LABELS = {
  unloaded: "Not loaded",
  loading: "Loading",
  loaded: "Ready",
  sleeping: "Sleeping",
  downloading: "Downloading",
  downloaded: "Downloaded",
  failed: "Failed",
  unknown: "Unknown",
};

/**
 * What a model's state looks like: a short label, an optional detail line, and a progress fraction
 * (null when there is no bar, NaN for an indeterminate one).
 * @param {ModelEntry} entry
 * @returns {{state: string, label: string, detail: string, progress: number | null}}
 */
export function describe(entry) {
  const state = stateOf(entry);
  const p = entry.status.progress;
  let label = LABELS[state] ?? state;
  let detail = "";
  /** @type {number | null} */
  let progress = null;
  if (state === "loading") {
    progress = typeof p?.value === "number" ? clamp(p.value) : NaN;
    if (!Number.isNaN(progress)) label = `Loading ${Math.round(progress * 100)}%`;
  } else if (state === "downloading") {
    if (p && typeof p.total === "number" && p.total > 0) {
      progress = clamp((p.done ?? 0) / p.total);
      label = `Downloading ${Math.round(progress * 100)}%`;
      detail = `${formatBytes(p.done ?? 0)} of ${formatBytes(p.total)}`;
    } else {
      progress = NaN;
    }
  } else if (state === "failed") {
    detail = reasonOf(entry.status.error ?? "") ||
      (typeof entry.status.exit_code === "number" ? `exited with code ${entry.status.exit_code}` : "");
  }
  return { state, label, detail, progress };
}

/**
 * Resolves with the model's state once `done(state)` holds; rejects with an AbortError on `signal`.
 * @param {ModelStore} store
 * @param {string} id
 * @param {(state: string) => boolean} done
 * @param {AbortSignal} signal
 * @returns {Promise<string>}
 */
export function waitForState(store, id, done, signal) {
  return new Promise((resolve, reject) => {
    const check = () => {
      const state = stateOf(store.get(id));
      if (!done(state)) return;
      stop();
      resolve(state);
    };
    const abort = () => {
      stop();
      reject(new DOMException("stopped", "AbortError"));
    };
    const stop = () => {
      store.removeEventListener("change", check);
      signal.removeEventListener("abort", abort);
    };
    store.addEventListener("change", check);
    signal.addEventListener("abort", abort);
    check();
  });
}

/** @param {number} v */
function clamp(v) {
  return Math.min(1, Math.max(0, v));
}

const LOG_PREFIX = /^\s*(?:\d+(?:\.\d+)+\s+)?(?:[EWID]\s+)?/;
const LOG_ERROR = /^\s*\d+(?:\.\d+)+\s+E\s/;
const ERRORISH = /error|invalid|failed|cannot|can't|unable|not found|no such|out of memory|denied/i;

/**
 * The most telling line of an engine's failure output: the first line logged at error level, else the
 * first that reads like an error, else the last; without llama.cpp's timestamp and level prefix.
 * @param {string} text
 * @returns {string}
 */
export function reasonOf(text) {
  const lines = text.split("\n").filter((l) => l.trim());
  const pick = lines.find((l) => LOG_ERROR.test(l)) ?? lines.find((l) => ERRORISH.test(l)) ??
    lines[lines.length - 1];
  return (pick ?? "").replace(LOG_PREFIX, "").trim();
}

/** @param {number} n */
export function formatBytes(n) {
  const units = ["B", "KB", "MB", "GB", "TB"];
  let i = 0;
  while (n >= 1000 && i < units.length - 1) {
    n /= 1000;
    i++;
  }
  return `${n >= 100 || i === 0 ? Math.round(n) : n.toFixed(1)} ${units[i]}`;
}

/**
 * Keeps `store` current: lists the models, then follows /models/sse, reconnecting with backoff.
 * Returns a function that stops watching.
 * @param {ModelStore} store
 * @returns {() => void}
 */
export function watchModels(store) {
  let stopped = false;
  /** @type {AbortController | null} */
  let ctrl = null;
  /** @type {ReturnType<typeof setTimeout> | undefined} */
  let relist;
  const scheduleRefresh = () => {
    clearTimeout(relist);
    relist = setTimeout(() => store.refresh().catch(() => {}), 150);
  };
  (async () => {
    let delay = 1000;
    while (!stopped) {
      ctrl = new AbortController();
      let snapshot = false;
      /** @type {ReturnType<typeof setTimeout> | undefined} */
      let fallback;
      try {
        store.setFeed("connecting");
        const res = await apiFetch("/models/sse", {
          signal: ctrl.signal,
          headers: { Accept: "text/event-stream" },
        });
        if (!res.body) throw new ApiError(0, "empty event stream");
        store.setFeed("live");
        delay = 1000;
        // llama.cpp sends no snapshot: list the models unless Switchyard's snapshot comes first.
        fallback = setTimeout(() => !snapshot && scheduleRefresh(), 400);
        for await (const data of sseData(res.body)) {
          /** @type {any} */
          let msg;
          try {
            msg = JSON.parse(data);
          } catch {
            continue;
          }
          if (!msg || typeof msg !== "object") continue;
          if (msg.event === "snapshot") snapshot = true;
          if (!store.apply(msg)) scheduleRefresh();
        }
        throw new ApiError(0, "the event stream ended");
      } catch (e) {
        clearTimeout(fallback);
        if (stopped) break;
        const err = /** @type {Error} */ (e);
        store.setFeed("offline", err.message);
        if (err instanceof ApiError && err.status === 401) {
          await new Promise((r) => addEventListener("switchyard:key", r, { once: true }));
          continue;
        }
      }
      await new Promise((r) => setTimeout(r, delay));
      delay = Math.min(delay * 2, 10_000);
    }
  })();
  return () => {
    stopped = true;
    ctrl?.abort();
  };
}
