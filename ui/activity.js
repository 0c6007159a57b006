// @ts-check
/// <reference lib="dom" />
/**
 * The activity view: the last requests the gateway relayed and, per model, how fast it generated,
 * live from `GET /activity?follow=1` while the dialog is open (nothing is polled, and nothing is
 * fetched while it is closed). Every figure is the gateway's own (router/activity/ring.ts).
 */
import { apiFetch } from "./api.js";
import { byId, h } from "./dom.js";
import { sseData } from "./sse.js";

/**
 * @typedef {object} ActivityEntry
 * @property {string} time
 * @property {string | null} model
 * @property {string} endpoint
 * @property {number} status
 * @property {boolean} streamed
 * @property {number | null} queue_wait_ms
 * @property {number | null} ttft_ms
 * @property {number} duration_ms
 * @property {number | null} prompt_tokens
 * @property {number | null} generated_tokens
 * @property {number | null} tokens_per_s
 */

/**
 * @typedef {object} ModelSummary
 * @property {string} model
 * @property {number} requests
 * @property {number} generated generated tokens, over the requests shown
 * @property {number | null} tokensPerSecond the mean of the requests' tokens per second
 * @property {number | null} ttftMs the median time to first token of its streamed requests
 */

/** Requests the view keeps (the gateway keeps more). */
const SHOWN = 200;

/** @param {number[]} xs */
function median(xs) {
  if (!xs.length) return null;
  const sorted = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

/**
 * Per model, over the entries given: requests, generated tokens, mean tokens per second, median
 * time to first token. Requests that reached no model are left out. Sorted by model.
 * @param {ActivityEntry[]} entries
 * @returns {ModelSummary[]}
 */
export function summarize(entries) {
  /** @type {Map<string, ActivityEntry[]>} */
  const byModel = new Map();
  for (const e of entries) {
    if (e.model === null) continue;
    byModel.set(e.model, [...byModel.get(e.model) ?? [], e]);
  }
  return [...byModel.entries()].sort(([a], [b]) => a.localeCompare(b)).map(([model, list]) => {
    const speeds = list.flatMap((e) => e.tokens_per_s === null ? [] : [e.tokens_per_s]);
    return {
      model,
      requests: list.length,
      generated: list.reduce((n, e) => n + (e.generated_tokens ?? 0), 0),
      tokensPerSecond: speeds.length ? speeds.reduce((a, b) => a + b, 0) / speeds.length : null,
      ttftMs: median(list.flatMap((e) => e.ttft_ms === null ? [] : [e.ttft_ms])),
    };
  });
}

/** @param {number | null} ms */
const duration = (ms) =>
  ms === null ? "—" : ms < 1000 ? `${ms.toFixed(ms < 10 ? 1 : 0)} ms` : `${(ms / 1000).toFixed(2)} s`;
/** @param {number | null} x */
const rate = (x) => x === null ? "—" : x.toFixed(x < 100 ? 1 : 0);
/** @param {string} iso */
const clock = (iso) => new Date(iso).toLocaleTimeString([], { hour12: false });

export class ActivityView {
  /** @type {ActivityEntry[]} newest first */
  entries = [];
  /** @type {AbortController | null} */
  #following = null;
  #drawPending = false;

  constructor() {
    this.dialog = byId("activity-dialog", HTMLDialogElement);
    this.dialog.querySelector("[data-close]")?.addEventListener("click", () => this.dialog.close());
    this.dialog.addEventListener("click", (e) => e.target === this.dialog && this.dialog.close()); // backdrop
    this.dialog.addEventListener("close", () => this.#stop());
  }

  open() {
    if (!this.dialog.open) this.dialog.showModal();
    this.#follow();
  }

  #stop() {
    this.#following?.abort();
    this.#following = null;
  }

  async #follow() {
    this.#stop();
    const controller = new AbortController();
    this.#following = controller;
    const status = byId("ad-status");
    status.dataset.kind = "";
    status.textContent = "Connecting…";
    try {
      const res = await apiFetch("/activity?follow=1", { signal: controller.signal });
      for await (const data of sseData(/** @type {ReadableStream<Uint8Array>} */ (res.body))) {
        const event = JSON.parse(data);
        /** @type {ActivityEntry[]} */
        const entries = Array.isArray(event.data) ? event.data : [];
        // the snapshot is newest first; a later event brings the newest last
        this.entries = event.event === "snapshot" ? entries : [...entries.reverse(), ...this.entries];
        this.entries.length = Math.min(this.entries.length, SHOWN);
        status.textContent = "Live";
        this.#draw();
      }
    } catch (e) {
      if (controller.signal.aborted) return;
      status.dataset.kind = "error";
      status.textContent = `Could not follow the activity: ${/** @type {Error} */ (e).message}`;
    }
  }

  /** Draws at the next frame, once for any number of events that came before it. */
  #draw() {
    if (this.#drawPending) return;
    this.#drawPending = true;
    requestAnimationFrame(() => {
      this.#drawPending = false;
      this.render();
    });
  }

  render() {
    const summary = summarize(this.entries);
    byId("ad-models").replaceChildren(
      ...summary.map((s) =>
        h(
          "tr",
          { "data-model": s.model },
          h("th", { scope: "row", text: s.model }),
          h("td", { class: "num", text: String(s.requests) }),
          h("td", { class: "num", "data-field": "tokens-per-s", text: rate(s.tokensPerSecond) }),
          h("td", { class: "num", text: String(s.generated) }),
          h("td", { class: "num", text: duration(s.ttftMs) }),
        )
      ),
    );
    byId("ad-models-empty").hidden = summary.length > 0;
    byId("ad-requests").replaceChildren(
      ...this.entries.map((e) =>
        h(
          "tr",
          { "data-status": String(e.status), class: e.status >= 400 ? "is-error" : "" },
          h("td", { text: clock(e.time), title: e.time }),
          h("td", { class: "model-cell", text: e.model ?? "—", title: e.model ?? "" }),
          h("td", { text: e.endpoint + (e.streamed ? " ⇢" : ""), title: e.streamed ? "streamed" : "" }),
          h("td", { class: "num", text: String(e.status) }),
          h("td", { class: "num", text: duration(e.queue_wait_ms) }),
          h("td", { class: "num", text: duration(e.ttft_ms) }),
          h("td", { class: "num", text: duration(e.duration_ms) }),
          h("td", {
            class: "num",
            text: e.prompt_tokens === null && e.generated_tokens === null
              ? "—"
              : `${e.prompt_tokens ?? "—"} / ${e.generated_tokens ?? "—"}`,
          }),
          h("td", { class: "num", text: rate(e.tokens_per_s) }),
        )
      ),
    );
    byId("ad-requests-empty").hidden = this.entries.length > 0;
  }
}
