// @ts-check
/// <reference lib="dom" />
/**
 * The conversation (kept in localStorage) and streaming chat completions.
 */
import { ApiError, postJson } from "./api.js";
import { sseData } from "./sse.js";

const STORAGE = "switchyard.conversation.v1";

/**
 * @typedef {object} Message
 * @property {string} id
 * @property {"user" | "assistant"} role
 * @property {string} content
 * @property {string} [reasoning] the model's reasoning_content, shown folded
 * @property {string} [model] which model answered
 * @property {string} [error] why the answer failed
 * @property {string} [errorDetail] more about the failure (the engine's last log lines)
 * @property {boolean} [needsKey] the failure was a missing or wrong API key
 * @property {boolean} [stopped] the person stopped the answer
 * @property {boolean} [pending] the answer is streaming now
 * @property {{tokens?: number, perSecond?: number}} [stats]
 */

export class Conversation extends EventTarget {
  /** @type {Message[]} */
  messages = [];
  /** @type {ReturnType<typeof setTimeout> | undefined} */
  #saveTimer;

  constructor() {
    super();
    try {
      const saved = JSON.parse(localStorage.getItem(STORAGE) ?? "null");
      if (Array.isArray(saved?.messages)) {
        this.messages = saved.messages.filter(isMessage).map((/** @type {Message} */ m) => {
          // an answer that was streaming when the page closed is cut short, not pending forever
          if (m.pending) return { ...m, pending: false, stopped: true };
          return m;
        });
      }
    } catch {
      this.messages = [];
    }
  }

  save() {
    try {
      localStorage.setItem(STORAGE, JSON.stringify({ messages: this.messages }));
    } catch {
      // storage full or blocked: the conversation lives on in memory
    }
  }

  /** @param {Omit<Message, "id">} message */
  add(message) {
    const m = { id: crypto.randomUUID(), ...message };
    this.messages.push(m);
    this.#changed(m.id, true);
    return m;
  }

  /**
   * @param {string} id
   * @param {Partial<Message>} patch
   * @param {boolean} [persist]
   */
  update(id, patch, persist = true) {
    const m = this.messages.find((x) => x.id === id);
    if (!m) return;
    Object.assign(m, patch);
    this.#changed(id, persist);
  }

  /** Drops the message and every one after it. @param {string} id */
  truncateFrom(id) {
    const i = this.messages.findIndex((x) => x.id === id);
    if (i < 0) return;
    this.messages.splice(i);
    this.#changed(null, true);
  }

  clear() {
    this.messages = [];
    this.#changed(null, true);
  }

  /**
   * What is sent to the model: the turns so far, without failed or empty answers, roles alternating.
   * @param {string} [beforeId] stop before this message
   * @returns {{role: string, content: string}[]}
   */
  history(beforeId) {
    /** @type {{role: string, content: string}[]} */
    const out = [];
    for (const m of this.messages) {
      if (m.id === beforeId) break;
      if (m.role === "assistant" && (m.error || !m.content)) continue;
      const prev = out[out.length - 1];
      // a failed answer leaves two user turns in a row; many chat templates insist that roles alternate
      if (prev?.role === m.role) prev.content += "\n\n" + m.content;
      else out.push({ role: m.role, content: m.content });
    }
    return out;
  }

  /**
   * @param {string | null} id null when the whole list changed
   * @param {boolean} persist
   */
  #changed(id, persist) {
    if (persist) {
      clearTimeout(this.#saveTimer);
      this.#saveTimer = undefined;
      this.save();
    } else {
      // while streaming: save now and then, not on every token
      this.#saveTimer ??= setTimeout(() => {
        this.#saveTimer = undefined;
        this.save();
      }, 1000);
    }
    this.dispatchEvent(new CustomEvent("change", { detail: { id } }));
  }
}

/** @param {any} m */
function isMessage(m) {
  return m && typeof m.id === "string" && (m.role === "user" || m.role === "assistant") &&
    typeof m.content === "string";
}

/**
 * @typedef {object} Delta
 * @property {string} [content]
 * @property {string} [reasoning]
 * @property {{tokens?: number, perSecond?: number}} [stats]
 */

/**
 * Streams one chat completion. Calls `onDelta` for each piece; rejects with ApiError on an error
 * status or an error event in the stream, and with an AbortError when `signal` fires.
 * @param {{model: string, messages: {role: string, content: string}[], signal: AbortSignal,
 *   onDelta: (d: Delta) => void}} req
 */
export async function streamChat({ model, messages, signal, onDelta }) {
  const res = await postJson("/v1/chat/completions", { model, messages, stream: true }, { signal });
  const type = res.headers.get("Content-Type") ?? "";
  if (!type.includes("text/event-stream") || !res.body) {
    const body = await res.json(); // a server that ignored stream:true
    onDelta({ content: body?.choices?.[0]?.message?.content ?? "" });
    return;
  }
  for await (const data of sseData(res.body)) {
    if (data.trim() === "[DONE]") break;
    /** @type {any} */
    let chunk;
    try {
      chunk = JSON.parse(data);
    } catch {
      continue;
    }
    if (chunk?.error) {
      const e = chunk.error;
      throw new ApiError(e.code ?? 500, typeof e === "string" ? e : e.message ?? "the stream failed", e.type);
    }
    const delta = chunk?.choices?.[0]?.delta ?? {};
    /** @type {Delta} */
    const out = {};
    if (typeof delta.content === "string" && delta.content) out.content = delta.content;
    if (typeof delta.reasoning_content === "string" && delta.reasoning_content) {
      out.reasoning = delta.reasoning_content;
    }
    const t = chunk?.timings;
    if (t && typeof t.predicted_per_second === "number") {
      out.stats = { tokens: t.predicted_n, perSecond: t.predicted_per_second };
    } else if (chunk?.usage?.completion_tokens) {
      out.stats = { tokens: chunk.usage.completion_tokens };
    }
    if (out.content || out.reasoning || out.stats) onDelta(out);
  }
}
