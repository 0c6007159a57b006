// @ts-check
/// <reference lib="dom" />
/**
 * Switchyard's web page: wires the model feed, the picker, the model dialog and the chat together.
 */
import { ActivityView } from "./activity.js";
import { ApiError, apiFetch, apiJson, postJson, setKeyPrompt } from "./api.js";
import { Conversation } from "./chat.js";
import { ChatView } from "./chatview.js";
import { DetailsDialog } from "./details.js";
import { askApiKey, confirmDialog } from "./dialogs.js";
import { announce, byId, h } from "./dom.js";
import { describe, ModelStore, reasonOf, stateOf, waitForState, watchModels } from "./models.js";
import { Picker, splitId } from "./picker.js";

const MODEL_STORAGE = "switchyard.model";
const narrow = matchMedia("(max-width: 860px)");

const store = new ModelStore();
const conversation = new Conversation();
setKeyPrompt(askApiKey);

let selected = localStorage.getItem(MODEL_STORAGE) ?? "";
/** from GET /props: false when the gateway runs with --no-models-autoload */
let autoload = true;

/** @param {string} id */
function select(id) {
  selected = id;
  localStorage.setItem(MODEL_STORAGE, id);
  picker.setSelected(id);
  renderCurrent();
  renderWelcome();
}

/** Shows a short-lived notice; errors stay until dismissed. @param {string} text @param {boolean} [isError] */
function toast(text, isError = false) {
  const box = h("div", { class: `toast${isError ? " is-error" : ""}`, role: isError ? "alert" : "status" });
  const close = h("button", { type: "button", class: "icon-btn", "aria-label": "Dismiss" });
  close.innerHTML = '<svg viewBox="0 0 24 24" aria-hidden="true"><path d="M6 6l12 12M18 6 6 18"/></svg>';
  close.addEventListener("click", () => box.remove());
  box.append(h("span", { text }), close);
  toasts.append(box);
  if (!isError) setTimeout(() => box.remove(), 4000);
}
const toasts = h("div", { class: "toasts" });
document.body.append(toasts);

/** @param {unknown} e */
const messageOf = (e) => e instanceof Error ? e.message : String(e);

/** @param {string} id */
async function load(id) {
  try {
    await postJson("/models/load", { model: id });
    announce(`Loading ${id}.`);
  } catch (e) {
    if (e instanceof ApiError && /already running/i.test(e.message)) return;
    toast(`Could not load ${id}: ${messageOf(e)}`, true);
  }
}

/** @param {string} id */
async function unload(id) {
  try {
    await postJson("/models/unload", { model: id });
  } catch (e) {
    if (e instanceof ApiError && /not running/i.test(e.message)) return;
    toast(`Could not unload ${id}: ${messageOf(e)}`, true);
  }
}

/** @param {string} id */
async function remove(id) {
  const ok = await confirmDialog({
    title: "Delete this model?",
    text: `${id} will be stopped and its files removed from the cache. You can download it again later.`,
    confirm: "Delete",
  });
  if (!ok) return false;
  try {
    await apiFetch(`/models?model=${encodeURIComponent(id)}`, { method: "DELETE" });
    store.apply({ model: id, event: "model_remove" });
    toast(`Deleted ${id}.`);
    return true;
  } catch (e) {
    toast(`Could not delete ${id}: ${messageOf(e)}`, true);
    return false;
  }
}

const picker = new Picker(byId("model-list"), byId("models-empty"), store, {
  select,
  load,
  unload,
  details: (id) => details.open(id),
});
const details = new DetailsDialog(store, {
  load,
  unload,
  remove,
  use: (id) => {
    select(id);
    closeSidebar();
    byId("composer-input").focus();
  },
});

// ---- the sidebar: a column on wide screens, a drawer on phones ----
const sidebar = byId("sidebar");
const scrim = byId("scrim");
const opener = byId("open-sidebar");

function openSidebar() {
  if (!narrow.matches) {
    picker.focus();
    return;
  }
  sidebar.classList.add("is-open");
  scrim.hidden = false;
  opener.setAttribute("aria-expanded", "true");
  picker.focus();
}

function closeSidebar() {
  if (!sidebar.classList.contains("is-open")) return;
  sidebar.classList.remove("is-open");
  scrim.hidden = true;
  opener.setAttribute("aria-expanded", "false");
  opener.focus();
}

opener.addEventListener(
  "click",
  () => sidebar.classList.contains("is-open") ? closeSidebar() : openSidebar(),
);
byId("close-sidebar").addEventListener("click", closeSidebar);
scrim.addEventListener("click", closeSidebar);
sidebar.addEventListener("keydown", (e) => {
  if (e.key === "Escape" && sidebar.classList.contains("is-open")) {
    e.stopPropagation();
    closeSidebar();
  }
});
// a tap on a model picks it and closes the drawer; arrow keys (click events with detail 0) do not
byId("model-list").addEventListener("click", (e) => {
  const t = /** @type {HTMLElement} */ (e.target);
  if (e.detail > 0 && t.closest(".model-main")) setTimeout(closeSidebar, 150);
});
narrow.addEventListener("change", () => {
  sidebar.classList.remove("is-open");
  scrim.hidden = true;
  opener.setAttribute("aria-expanded", "false");
});

// ---- the header: the chosen model and its state ----
function renderCurrent() {
  const entry = selected ? store.get(selected) : undefined;
  const name = byId("current-name");
  const state = byId("current-state");
  const loadNow = byId("current-load", HTMLButtonElement);
  if (!selected) {
    name.textContent = "Choose a model";
    state.textContent = "";
    opener.dataset.state = "none";
    loadNow.hidden = true;
    return;
  }
  const parts = splitId(selected);
  name.textContent = parts.name + (parts.tag ? `:${parts.tag}` : "");
  name.title = selected;
  if (!entry) {
    state.textContent = store.loaded ? "not available" : "";
    opener.dataset.state = "unknown";
    loadNow.hidden = true;
    return;
  }
  const d = describe(entry);
  state.textContent = d.label;
  opener.dataset.state = d.state;
  loadNow.hidden = !(d.state === "unloaded" || d.state === "failed");
  loadNow.textContent = d.state === "failed" ? "Retry load" : "Load now";
}
byId("current-load").addEventListener("click", () => selected && load(selected));

function renderWelcome() {
  const models = store.list();
  const ready = models.filter((m) => stateOf(m) === "loaded").length;
  const text = byId("welcome-text");
  if (!store.loaded) return;
  if (!models.length) {
    text.textContent = "No models are available yet. Download one from the model list to get started.";
    return;
  }
  const pick = selected && store.get(selected)
    ? `Ask ${splitId(selected).name} anything.`
    : narrow.matches
    ? "Pick a model with the button above."
    : "Pick a model from the list.";
  text.textContent =
    `${pick} ${models.length} model${models.length === 1 ? "" : "s"} available, ${ready} ready. ` +
    "A model loads when you send it a message, or right away with Load.";
}

// ---- announcements for state changes worth hearing about ----
store.addEventListener("change", (e) => {
  const { id, before } = /** @type {CustomEvent<import("./models.js").ModelChange>} */ (e).detail;
  picker.render();
  renderCurrent();
  renderWelcome();
  if (!id) {
    if (!selected && store.models.size) {
      const first = store.list().find((m) => stateOf(m) === "loaded") ??
        (store.models.size === 1 ? store.list()[0] : null);
      if (first) select(first.id);
    }
    return;
  }
  const entry = store.models.get(id);
  const now = stateOf(entry);
  if (before === now || !entry) return;
  if (now === "loaded" && before === "loading") announce(`${id} is ready.`);
  else if (now === "failed" && before === "loading") {
    const reason = reasonOf(entry.status.error ?? "");
    announce(`${id} failed to load${reason ? `: ${reason}` : "."}`);
  } else if (now === "unloaded" && before !== "unloaded") announce(`${id} was unloaded.`);
  trackDownload(id, now, entry);
});

store.addEventListener("feed", () => {
  const feed = byId("feed");
  feed.dataset.state = store.feed;
  byId("feed-text").textContent = store.feed === "live"
    ? "Live"
    : store.feed === "connecting"
    ? "Connecting…"
    : "Offline, retrying";
  feed.title = store.feedError;
});

// ---- downloads ----
const downloadMsg = byId("download-msg");
/** @type {Set<string>} */
const downloads = new Set();

/**
 * @param {string} id
 * @param {string} state
 * @param {import("./models.js").ModelEntry} entry
 */
function trackDownload(id, state, entry) {
  if (!downloads.has(id)) return;
  if (state === "failed") {
    downloads.delete(id);
    downloadMsg.dataset.kind = "error";
    downloadMsg.textContent = `Download of ${id} failed: ${entry.status.error ?? "unknown error"}`;
  } else if (state === "downloaded") {
    downloads.delete(id);
    downloadMsg.dataset.kind = "ok";
    downloadMsg.textContent = `${id} is downloaded. It appears in the list under its cache name.`;
    announce(`${id} downloaded.`);
  }
}

byId("download-form", HTMLFormElement).addEventListener("submit", async (e) => {
  e.preventDefault();
  const input = byId("download-name", HTMLInputElement);
  const name = input.value.trim();
  if (!/^[^/\s:]+\/[^/\s:]+(:[^\s/]+)?$/.test(name)) {
    downloadMsg.dataset.kind = "error";
    downloadMsg.textContent =
      "Use the form owner/repo or owner/repo:quant, e.g. ggml-org/gemma-3-1b-it-GGUF:Q4_K_M.";
    input.focus();
    return;
  }
  const button = /** @type {HTMLButtonElement} */ (e.target instanceof HTMLFormElement
    ? e.target.querySelector("button[type=submit]")
    : null);
  if (button) {
    button.disabled = true;
  }
  try {
    await postJson("/models", { model: name });
    downloads.add(name);
    downloadMsg.dataset.kind = "ok";
    downloadMsg.textContent = `Downloading ${name}… progress shows in the list.`;
    input.value = "";
  } catch (err) {
    downloadMsg.dataset.kind = "error";
    downloadMsg.textContent = `Could not start the download: ${messageOf(err)}`;
  } finally {
    if (button) {
      button.disabled = false;
    }
  }
});

// ---- chat ----
const chat = new ChatView({
  conversation,
  store,
  log: byId("messages"),
  welcome: byId("welcome"),
  form: byId("composer", HTMLFormElement),
  input: byId("composer-input", HTMLTextAreaElement),
  send: byId("send", HTMLButtonElement),
  model: () => selected,
  needModel: () => {
    toast("Choose a model first.");
    openSidebar();
  },
  askKey: askApiKey,
  prepare: async (model, signal) => {
    // With autoload on, the gateway loads the model for the request. Without it, load it here first.
    const state = stateOf(store.get(model));
    if (autoload || !["unloaded", "failed", "loading"].includes(state)) return;
    if (state !== "loading") await postJson("/models/load", { model }, { signal });
    const end = await waitForState(store, model, (s) => s !== "loading" && s !== "unloaded", signal);
    if (end === "failed") {
      throw new ApiError(500, `model name=${model} failed to load`);
    }
  },
});

byId("new-chat").addEventListener("click", async () => {
  if (conversation.messages.length) {
    const ok = await confirmDialog({
      title: "Start a new chat?",
      text: "The current conversation will be cleared from this browser.",
      confirm: "New chat",
    });
    if (!ok) return;
  }
  chat.stop();
  conversation.clear();
  byId("composer-input").focus();
});

byId("key-btn").addEventListener("click", () => askApiKey("manual"));
const activity = new ActivityView();
byId("activity-btn").addEventListener("click", () => activity.open());

// ---- start ----
picker.render();
renderCurrent();
watchModels(store);
apiJson("/props").then((props) => {
  autoload = props?.models_autoload !== false;
  const info = [props?.build_info, props?.max_instances ? `up to ${props.max_instances} loaded` : ""];
  byId("build-info").textContent = info.filter(Boolean).join(" · ");
}).catch(() => {});
if (!narrow.matches) byId("composer-input").focus();
