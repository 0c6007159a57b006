// @ts-check
/// <reference lib="dom" />
/**
 * The model management dialog: state, failure reason, effective arguments, preset, the log as it is
 * written (followed while the dialog is open), and load / unload / delete.
 */
import { apiFetch } from "./api.js";
import { byId, h } from "./dom.js";
import { describe, stateOf } from "./models.js";
import { sseData } from "./sse.js";

/** Log lines the dialog keeps (the gateway keeps the last 200 of each model). */
const LOG_LINES_SHOWN = 1000;

/**
 * @typedef {import("./models.js").ModelStore} ModelStore
 * @typedef {import("./models.js").ModelEntry} ModelEntry
 */

/**
 * @typedef {object} DetailActions
 * @property {(id: string) => void} load
 * @property {(id: string) => void} unload
 * @property {(id: string) => Promise<boolean>} remove resolves true when the model was deleted
 * @property {(id: string) => void} use
 */

/**
 * Renders argv one flag per line, the way a person would write it in a shell script.
 * @param {string[]} args
 */
export function formatArgs(args) {
  if (!args.length) return "(none yet)";
  /** @param {string} a */
  const q = (a) => /^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, "'\\''")}'`;
  const lines = [q(args[0])];
  for (let i = 1; i < args.length; i++) {
    const a = args[i];
    const next = args[i + 1];
    if (a.startsWith("-") && next !== undefined && !next.startsWith("-")) {
      lines.push(`  ${q(a)} ${q(next)}`);
      i++;
    } else lines.push(`  ${q(a)}`);
  }
  return lines.join(" \\\n");
}

export class DetailsDialog {
  /** @type {string} */
  id = "";
  /** @type {AbortController | null} */
  #following = null;

  /**
   * @param {ModelStore} store
   * @param {DetailActions} actions
   */
  constructor(store, actions) {
    this.store = store;
    this.actions = actions;
    this.dialog = byId("model-dialog", HTMLDialogElement);
    this.dialog.querySelector("[data-close]")?.addEventListener("click", () => this.dialog.close());
    this.dialog.addEventListener("click", (e) => e.target === this.dialog && this.dialog.close()); // backdrop
    byId("md-load").addEventListener("click", () => this.actions.load(this.id));
    byId("md-unload").addEventListener("click", () => this.actions.unload(this.id));
    byId("md-use").addEventListener("click", () => {
      this.actions.use(this.id);
      this.dialog.close();
    });
    byId("md-delete").addEventListener("click", async () => {
      if (await this.actions.remove(this.id)) this.dialog.close();
    });
    this.dialog.addEventListener("close", () => this.#stopLogs());
    store.addEventListener("change", (e) => {
      const { id } = /** @type {CustomEvent} */ (e).detail;
      if (this.dialog.open && (id === null || id === this.id)) this.render();
    });
  }

  /** @param {string} id */
  open(id) {
    this.id = id;
    byId("md-logs").textContent = "Loading…";
    this.render();
    if (!this.dialog.open) this.dialog.showModal();
    this.#followLogs();
  }

  render() {
    const entry = this.store.models.get(this.id);
    byId("md-title").textContent = this.id;
    if (!entry) {
      byId("md-sub").textContent = "This model is no longer listed.";
      byId("md-state").replaceChildren();
      for (const b of ["md-load", "md-unload", "md-delete", "md-use"]) byId(b).hidden = true;
      return;
    }
    const d = describe(entry);
    const s = entry.status;
    byId("md-sub").textContent = [
      entry.source && `from ${entry.source === "models_dir" ? "the models folder" : `the ${entry.source}`}`,
      entry.aliases?.length ? `also known as ${entry.aliases.join(", ")}` : "",
    ].filter(Boolean).join(" · ");
    const bar = h("progress", { class: "bar", max: "1", "aria-label": "Progress" });
    if (d.progress !== null && !Number.isNaN(d.progress)) bar.value = d.progress;
    byId("md-state").replaceChildren(
      h(
        "span",
        { class: "model-state", "data-state": d.state },
        h("span", { class: "dot", "aria-hidden": "true" }),
        h("span", { text: d.label }),
      ),
      d.detail && d.state !== "failed" ? h("span", { class: "model-detail", text: d.detail }) : "",
      d.progress !== null ? bar : "",
    );
    byId("md-state").dataset.state = d.state;
    const failed = d.state === "failed";
    byId("md-error").hidden = !failed;
    if (failed) {
      byId("md-error-text").textContent = s.error ||
        (typeof s.exit_code === "number"
          ? `The engine exited with code ${s.exit_code}.`
          : "No reason was given.");
    }
    /** @type {[string, string][]} */
    const facts = [];
    if (entry.tags?.length) facts.push(["Tags", entry.tags.join(", ")]);
    if (typeof s.exit_code === "number") facts.push(["Last exit code", String(s.exit_code)]);
    byId("md-facts").replaceChildren(
      ...facts.flatMap(([k, v]) => [h("dt", { text: k }), h("dd", { text: v })]),
    );
    byId("md-facts").hidden = facts.length === 0;
    byId("md-args").textContent = formatArgs(Array.isArray(s.args) ? s.args : []);
    byId("md-preset-section").hidden = !s.preset;
    byId("md-preset").textContent = s.preset ?? "";
    const state = stateOf(entry);
    const running = state === "loading" || state === "loaded" || state === "sleeping";
    byId("md-load").hidden = !(state === "unloaded" || state === "failed");
    byId("md-load").textContent = failed ? "Retry load" : "Load";
    byId("md-unload").hidden = !(running || state === "downloading");
    byId("md-unload").textContent = state === "downloading"
      ? "Cancel download"
      : state === "loading"
      ? "Stop"
      : "Unload";
    byId("md-delete").hidden = !entry.can_remove;
    byId("md-use").hidden = state === "downloading" || state === "downloaded";
  }

  #stopLogs() {
    this.#following?.abort();
    this.#following = null;
  }

  /** Shows the model's recent lines, then each new one as the gateway logs it, until the dialog closes. */
  async #followLogs() {
    this.#stopLogs();
    const controller = new AbortController();
    this.#following = controller;
    const id = this.id;
    const pre = byId("md-logs");
    const state = byId("md-logs-state");
    /** @type {string[]} */
    let lines = [];
    const show = () => {
      // keep the view at the bottom only when it was there: someone reading up is not pulled down
      const atBottom = pre.scrollHeight - pre.scrollTop - pre.clientHeight < 24;
      pre.textContent = lines.length ? lines.join("\n") : "No log lines yet.";
      if (atBottom) pre.scrollTop = pre.scrollHeight;
    };
    state.textContent = "";
    try {
      const res = await apiFetch(`/models/logs?model=${encodeURIComponent(id)}&follow=1`, {
        signal: controller.signal,
      });
      if (!(res.headers.get("content-type") ?? "").includes("event-stream")) {
        // an answer that is not a stream (from an API that cannot follow) holds the recent lines only
        const body = await res.json();
        lines = Array.isArray(body?.lines) ? body.lines : [];
        return show();
      }
      state.textContent = "Live";
      for await (const data of sseData(/** @type {ReadableStream<Uint8Array>} */ (res.body))) {
        const event = JSON.parse(data);
        const more = Array.isArray(event.data?.lines) ? event.data.lines : [];
        lines = event.event === "snapshot" ? more : [...lines, ...more].slice(-LOG_LINES_SHOWN);
        show();
      }
      state.textContent = "";
    } catch (e) {
      if (controller.signal.aborted || id !== this.id) return;
      state.textContent = "";
      pre.textContent = `Could not read the log: ${/** @type {Error} */ (e).message}`;
    }
  }
}
