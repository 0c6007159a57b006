// @ts-check
/// <reference lib="dom" />
/**
 * The conversation on screen and the composer: sending, streaming into the page, stopping, retrying,
 * and showing why an answer failed.
 */
import { ApiError } from "./api.js";
import { streamChat } from "./chat.js";
import { announce, copyText, h } from "./dom.js";
import { renderMarkdown } from "./markdown.js";
import { describe, reasonOf, stateOf } from "./models.js";
import { splitId } from "./picker.js";

/**
 * @typedef {import("./chat.js").Message} Message
 * @typedef {import("./chat.js").Conversation} Conversation
 * @typedef {import("./models.js").ModelStore} ModelStore
 */

/**
 * @typedef {object} ChatOptions
 * @property {Conversation} conversation
 * @property {ModelStore} store
 * @property {HTMLElement} log the role=log container
 * @property {HTMLElement} welcome shown while the conversation is empty
 * @property {HTMLFormElement} form
 * @property {HTMLTextAreaElement} input
 * @property {HTMLButtonElement} send
 * @property {() => string} model the chosen model, "" when none
 * @property {() => void} needModel called when a message is sent with no model chosen
 * @property {(reason: string) => Promise<boolean>} askKey
 * @property {(model: string, signal: AbortSignal) => Promise<void>} prepare runs before each request (loads
 *   the model first where the gateway does not autoload)
 */

export class ChatView {
  /** @type {AbortController | null} */
  #abort = null;
  /** @type {Map<string, HTMLElement>} */
  #els = new Map();
  /** @type {Set<string>} */
  #dirty = new Set();
  #frame = 0;
  #stick = true;

  /** @param {ChatOptions} o */
  constructor(o) {
    this.o = o;
    const { conversation, store, log, form, input } = o;
    conversation.addEventListener("change", (e) => {
      const { id } = /** @type {CustomEvent} */ (e).detail;
      this.#schedule(id);
    });
    store.addEventListener("change", () => this.#onModels());
    log.addEventListener("scroll", () => {
      this.#stick = log.scrollHeight - log.scrollTop - log.clientHeight < 48;
    });
    log.addEventListener("click", (e) => this.#onClick(e));
    form.addEventListener("submit", (e) => {
      e.preventDefault();
      if (this.streaming) this.stop();
      else this.submit();
    });
    input.addEventListener("keydown", (e) => {
      if (e.key === "Enter" && !e.shiftKey && !e.isComposing && !e.altKey && !e.ctrlKey && !e.metaKey) {
        e.preventDefault();
        if (!this.streaming) this.submit();
      }
    });
    input.addEventListener("input", () => this.#autosize());
    document.addEventListener("keydown", (e) => {
      if (e.key === "Escape" && this.streaming && !document.querySelector("dialog[open]")) {
        e.preventDefault();
        this.stop();
      }
    });
    this.#schedule(null);
  }

  get streaming() {
    return this.#abort !== null;
  }

  /** Sends what is in the composer. */
  submit() {
    const text = this.o.input.value.trim();
    if (!text) return;
    const model = this.o.model();
    if (!model) {
      this.o.needModel();
      return;
    }
    this.o.input.value = "";
    this.#autosize();
    this.o.conversation.add({ role: "user", content: text });
    this.#stick = true;
    this.#answer(model);
  }

  stop() {
    this.#abort?.abort();
  }

  /**
   * Replaces an answer with a new one from the chosen model.
   * @param {string} id
   */
  retry(id) {
    if (this.streaming) return;
    const model = this.o.model();
    if (!model) {
      this.o.needModel();
      return;
    }
    this.o.conversation.truncateFrom(id);
    this.#answer(model);
  }

  /** @param {string} model */
  async #answer(model) {
    const { conversation, store } = this.o;
    const messages = conversation.history();
    const msg = conversation.add({ role: "assistant", content: "", model, pending: true });
    const abort = new AbortController();
    this.#abort = abort;
    this.#setStreaming(true);
    let content = "";
    let reasoning = "";
    /** @type {Partial<Message>} */
    let end = {};
    try {
      await this.o.prepare(model, abort.signal);
      await streamChat({
        model,
        messages,
        signal: abort.signal,
        onDelta: (d) => {
          if (d.content) content += d.content;
          if (d.reasoning) reasoning += d.reasoning;
          /** @type {Partial<Message>} */
          const patch = { content, reasoning: reasoning || undefined };
          if (d.stats) patch.stats = d.stats;
          conversation.update(msg.id, patch, false);
        },
      });
      announce(`${model} answered.`);
    } catch (e) {
      if (abort.signal.aborted) {
        end = { stopped: true };
        announce("Stopped.");
      } else {
        const err = e instanceof ApiError ? e : new ApiError(0, /** @type {Error} */ (e).message);
        end = { error: err.message, needsKey: err.status === 401 };
        const entry = store.get(model);
        if (entry && stateOf(entry) === "failed" && entry.status.error) end.errorDetail = entry.status.error;
        announce(`The answer failed: ${err.message}`);
      }
    } finally {
      this.#abort = null;
      conversation.update(msg.id, { ...end, pending: false });
      this.#setStreaming(false);
    }
  }

  /** @param {boolean} on */
  #setStreaming(on) {
    const { send, log } = this.o;
    send.classList.toggle("is-stop", on);
    send.setAttribute("aria-label", on ? "Stop the answer" : "Send");
    log.setAttribute("aria-busy", String(on));
  }

  #autosize() {
    const input = this.o.input;
    input.style.height = "auto";
    input.style.height = `${Math.min(input.scrollHeight, innerHeight * 0.4)}px`;
  }

  #onModels() {
    const { conversation, store } = this.o;
    for (const m of conversation.messages) {
      if (m.pending && !m.content) this.#schedule(m.id); // shows load progress while waiting
    }
    // the failure reason can arrive on the feed just after the HTTP error: attach it to the answer
    const last = conversation.messages[conversation.messages.length - 1];
    if (last?.error && !last.errorDetail && last.model) {
      const entry = store.get(last.model);
      if (entry && stateOf(entry) === "failed" && entry.status.error) {
        conversation.update(last.id, { errorDetail: entry.status.error });
      }
    }
  }

  /** @param {string | null} id */
  #schedule(id) {
    if (id === null) this.#dirty.add("*");
    else this.#dirty.add(id);
    if (!this.#frame) this.#frame = requestAnimationFrame(() => this.#flush());
  }

  #flush() {
    this.#frame = 0;
    const { log, welcome, conversation } = this.o;
    const all = this.#dirty.has("*");
    const dirty = this.#dirty;
    this.#dirty = new Set();
    const stick = this.#stick;
    if (all) {
      const keep = new Set(conversation.messages.map((m) => m.id));
      for (const [id, el] of this.#els) {
        if (!keep.has(id)) {
          el.remove();
          this.#els.delete(id);
        }
      }
    }
    const last = conversation.messages[conversation.messages.length - 1];
    for (const m of conversation.messages) {
      let el = this.#els.get(m.id);
      if (!el) {
        el = h("article", { class: `msg msg-${m.role}`, "data-id": m.id });
        this.#els.set(m.id, el);
        log.append(el);
        this.#fill(el, m, m === last);
      } else if (all || dirty.has(m.id)) {
        this.#fill(el, m, m === last);
      }
    }
    welcome.hidden = conversation.messages.length > 0;
    if (stick) log.scrollTop = log.scrollHeight;
  }

  /**
   * @param {HTMLElement} el
   * @param {Message} m
   * @param {boolean} isLast
   */
  #fill(el, m, isLast) {
    if (m.role === "user") {
      el.setAttribute("aria-label", "You said");
      el.replaceChildren(h("div", { class: "bubble", text: m.content }));
      return;
    }
    const model = m.model ?? "unknown model";
    el.setAttribute("aria-label", `Answer from ${model}`);
    el.classList.toggle("is-pending", !!m.pending);
    el.classList.toggle("has-error", !!m.error);
    const parts = splitId(model);
    /** @type {(Node | string)[]} */
    const meta = [
      h("span", { class: "msg-model", title: model }, parts.name + (parts.tag ? `:${parts.tag}` : "")),
    ];
    if (m.stopped) meta.push(h("span", { class: "msg-flag", text: "stopped" }));
    /** @type {HTMLElement[]} */
    const children = [h("div", { class: "msg-meta" }, ...meta)];
    if (m.reasoning) {
      const r = h("details", { class: "reasoning" }, h("summary", { text: "Reasoning" }));
      if (m.pending && !m.content) r.open = true;
      const body = h("div", { class: "md" });
      body.innerHTML = renderMarkdown(m.reasoning);
      r.append(body);
      children.push(r);
    }
    if (m.content) {
      const body = h("div", { class: "md msg-body" });
      body.innerHTML = renderMarkdown(m.content);
      if (m.pending) body.append(h("span", { class: "caret", "aria-hidden": "true" }));
      children.push(body);
    } else if (m.pending && !m.reasoning) {
      children.push(this.#waiting(model));
    }
    if (m.error) children.push(this.#error(m));
    if (!m.pending) {
      const foot = h("div", { class: "msg-foot" });
      if (m.content) {
        foot.append(h("button", { type: "button", class: "chip-btn", "data-act": "copy", text: "Copy" }));
      }
      if (isLast) {
        foot.append(h("button", {
          type: "button",
          class: "chip-btn",
          "data-act": "retry",
          text: m.error ? "Try again" : "Regenerate",
        }));
      }
      if (m.stats?.perSecond) {
        foot.append(h("span", {
          class: "msg-stats",
          text: `${m.stats.tokens ?? "?"} tokens · ${m.stats.perSecond.toFixed(1)} tok/s`,
        }));
      }
      if (foot.childElementCount) children.push(foot);
    }
    el.replaceChildren(...children);
  }

  /** @param {string} model */
  #waiting(model) {
    const entry = this.o.store.get(model);
    const d = entry ? describe(entry) : null;
    if (d && (d.state === "loading" || d.state === "unloaded" || d.state === "failed")) {
      const bar = h("progress", { class: "bar", max: "1", "aria-label": "Loading progress" });
      if (d.progress !== null && !Number.isNaN(d.progress)) bar.value = d.progress;
      const text = d.state === "loading"
        ? `Loading ${splitId(model).name}${
          d.progress !== null && !Number.isNaN(d.progress) ? ` · ${Math.round(d.progress * 100)}%` : "…"
        }`
        : `Starting ${splitId(model).name}…`;
      return h("div", { class: "msg-waiting" }, h("span", { text }), bar);
    }
    if (d?.state === "sleeping") return h("div", { class: "msg-waiting", text: "Waking the model…" });
    return h(
      "div",
      { class: "msg-waiting typing", "aria-label": "Thinking" },
      h("span"),
      h("span"),
      h("span"),
    );
  }

  /** @param {Message} m */
  #error(m) {
    const box = h("div", { class: "msg-error", role: "alert" });
    const full = m.error ?? "";
    // a gateway message may carry the engine's log after its first clause: show the clause, fold the rest
    const long = full.length > 160 || full.includes("\n");
    const head = long ? full.split(/;\s|\n/)[0] : full;
    const title = m.needsKey
      ? "The gateway needs an API key."
      : head.length > 160
      ? head.slice(0, 157) + "…"
      : head;
    box.append(h("p", { class: "msg-error-title", text: title }));
    const detail = m.errorDetail ?? (long ? full : "");
    if (detail) {
      const reason = reasonOf(detail);
      if (reason && reason !== title) box.append(h("p", { class: "msg-error-reason", text: reason }));
      box.append(h(
        "details",
        {},
        h("summary", { text: "Engine output" }),
        h("pre", { class: "mono-block", text: detail }),
      ));
    }
    if (m.needsKey) {
      box.append(
        h("button", { type: "button", class: "btn btn-small", "data-act": "key", text: "Enter API key" }),
      );
    }
    return box;
  }

  /** @param {MouseEvent} e */
  async #onClick(e) {
    const target = /** @type {HTMLElement} */ (e.target);
    const button = target.closest("button");
    if (!button) return;
    if (button.classList.contains("copy-code")) {
      const code = button.closest(".code-block")?.querySelector("code")?.textContent ?? "";
      if (await copyText(code)) flash(button, "Copied");
      return;
    }
    const id = button.closest("article")?.getAttribute("data-id");
    if (!id) return;
    const act = button.dataset.act;
    const m = this.o.conversation.messages.find((x) => x.id === id);
    if (!m) return;
    if (act === "copy" && (await copyText(m.content))) flash(button, "Copied");
    if (act === "retry") this.retry(id);
    if (act === "key" && (await this.o.askKey("manual"))) this.retry(id);
  }
}

/**
 * @param {HTMLElement} button
 * @param {string} text
 */
function flash(button, text) {
  const old = button.textContent;
  button.textContent = text;
  announce(text);
  setTimeout(() => (button.textContent = old), 1200);
}
