// @ts-check
/// <reference lib="dom" />
/**
 * The model picker: a radio group with one row per model, each showing its live state and progress,
 * a quick action (load, unload, cancel) and a button to open its details.
 */
import { h } from "./dom.js";
import { describe } from "./models.js";

/**
 * @typedef {import("./models.js").ModelEntry} ModelEntry
 * @typedef {import("./models.js").ModelStore} ModelStore
 */

/**
 * @typedef {object} PickerActions
 * @property {(id: string) => void} select
 * @property {(id: string) => void} load
 * @property {(id: string) => void} unload
 * @property {(id: string) => void} details
 */

/**
 * Splits an id for display: `owner/repo:TAG` → owner, repo, tag.
 * @param {string} id
 */
export function splitId(id) {
  const m = /^([^/]+)\/([^:]+)(?::(.+))?$/.exec(id);
  if (!m) return { owner: "", name: id, tag: "" };
  return { owner: m[1], name: m[2], tag: m[3] ?? "" };
}

/** The quick action for a state: [label, action] or null. */
const QUICK = /** @type {Record<string, [string, "load" | "unload"]>} */ ({
  unloaded: ["Load", "load"],
  failed: ["Retry", "load"],
  loading: ["Stop", "unload"],
  loaded: ["Unload", "unload"],
  sleeping: ["Unload", "unload"],
  downloading: ["Cancel", "unload"],
});

export class Picker {
  /** @type {Map<string, {row: HTMLElement, update: (e: ModelEntry, selected: boolean) => void}>} */
  #rows = new Map();
  #counter = 0;

  /**
   * @param {HTMLElement} list
   * @param {HTMLElement} empty
   * @param {ModelStore} store
   * @param {PickerActions} actions
   */
  constructor(list, empty, store, actions) {
    this.list = list;
    this.empty = empty;
    this.store = store;
    this.actions = actions;
    this.selected = "";
  }

  /** @param {string} id */
  setSelected(id) {
    this.selected = id;
    this.render();
  }

  /** Brings the rows in line with the store, reusing rows so focus and radios survive updates. */
  render() {
    const entries = this.store.list();
    const seen = new Set();
    let prev = /** @type {Element | null} */ (null);
    for (const entry of entries) {
      seen.add(entry.id);
      let row = this.#rows.get(entry.id);
      if (!row) {
        row = this.#makeRow(entry.id);
        this.#rows.set(entry.id, row);
      }
      row.update(entry, entry.id === this.selected);
      const want = prev ? prev.nextElementSibling : this.list.firstElementChild;
      if (want !== row.row) {
        if (prev) prev.after(row.row);
        else this.list.prepend(row.row);
      }
      prev = row.row;
    }
    for (const [id, row] of this.#rows) {
      if (!seen.has(id)) {
        row.row.remove();
        this.#rows.delete(id);
      }
    }
    this.empty.hidden = entries.length > 0;
    if (!entries.length) {
      this.empty.textContent = this.store.loaded
        ? "No models yet. Download one below, or start the gateway with --models-dir or a preset."
        : "Loading the model list…";
    }
  }

  /** Focuses the selected model's radio, or the first one. */
  focus() {
    const radio = /** @type {HTMLInputElement | null} */ (
      this.list.querySelector("input:checked") ?? this.list.querySelector("input")
    );
    radio?.focus();
  }

  /** @param {string} id */
  #makeRow(id) {
    const n = ++this.#counter;
    const parts = splitId(id);
    const radio = h("input", {
      type: "radio",
      name: "model",
      id: `model-${n}`,
      value: id,
      class: "model-radio",
      "aria-label": id,
      "aria-describedby": `model-${n}-state`,
    });
    radio.addEventListener("change", () => radio.checked && this.actions.select(id));
    const dot = h("span", { class: "dot", "aria-hidden": "true" });
    const stateLabel = h("span", { class: "state-label" });
    const detail = h("span", { class: "model-detail" });
    const bar = h("progress", { class: "bar", max: "1", "aria-label": `Progress for ${id}` });
    const state = h("span", { class: "model-state", id: `model-${n}-state` }, dot, stateLabel);
    const label = h(
      "label",
      { for: radio.id, class: "model-main" },
      h(
        "span",
        { class: "model-name", title: id },
        h("span", { class: "model-repo", text: parts.name }),
        parts.tag ? h("span", { class: "model-tag", text: parts.tag }) : null,
      ),
      h(
        "span",
        { class: "model-sub" },
        state,
        parts.owner ? h("span", { class: "model-owner", text: parts.owner }) : null,
      ),
      detail,
      bar,
    );
    const quick = h("button", { type: "button", class: "btn btn-small quick" });
    const more = h(
      "button",
      {
        type: "button",
        class: "icon-btn more",
        "aria-label": `Details and logs for ${id}`,
        title: "Details and logs",
      },
    );
    more.innerHTML =
      '<svg viewBox="0 0 24 24" aria-hidden="true"><circle cx="5" cy="12" r="1.6"/><circle cx="12" cy="12" r="1.6"/>' +
      '<circle cx="19" cy="12" r="1.6"/></svg>';
    more.addEventListener("click", () => this.actions.details(id));
    /** @type {"load" | "unload" | null} */
    let quickAction = null;
    quick.addEventListener("click", () => {
      if (quickAction === "load") {
        this.actions.select(id);
        this.actions.load(id);
      } else if (quickAction === "unload") this.actions.unload(id);
    });
    const row = h("div", { class: "model-row" }, radio, label, quick, more);
    // the whole row is a target, not only its text
    row.addEventListener("click", (e) => {
      if (!/** @type {HTMLElement} */ (e.target).closest("button, label, input")) radio.click();
    });
    /**
     * @param {ModelEntry} entry
     * @param {boolean} selected
     */
    const update = (entry, selected) => {
      const d = describe(entry);
      row.dataset.state = d.state;
      radio.checked = selected;
      stateLabel.textContent = d.label;
      detail.textContent = d.detail;
      detail.hidden = !d.detail;
      detail.title = d.state === "failed" ? entry.status.error ?? "" : "";
      bar.hidden = d.progress === null;
      if (d.progress !== null && !Number.isNaN(d.progress)) bar.value = d.progress;
      else bar.removeAttribute("value"); // indeterminate
      const q = QUICK[d.state];
      quickAction = q ? q[1] : null;
      quick.hidden = !q;
      if (q) {
        quick.textContent = q[0];
        quick.setAttribute("aria-label", `${q[0]} ${id}`);
      }
    };
    return { row, update };
  }
}
