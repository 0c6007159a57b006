/**
 * Which model owns each resumable stream. llama.cpp's router learns it from the `X-Conversation-Id`
 * header of the POSTs it proxies, so that `/v1/stream`, `/v1/streams/lookup` and `DELETE /v1/stream` go
 * straight to the engine that holds the session instead of asking every engine. Best effort, as there:
 * a stale entry only makes an engine answer "not found", and the client starts over.
 *
 * Unlike llama.cpp's map, this one is bounded: least recently used first out, so a client that sends a
 * fresh conversation id with every request cannot grow it without limit.
 */
import { badRequest } from "../errors.ts";

/** Conversations remembered at most; the UI keeps a handful live, this is for many clients at once. */
export const OWNERS_CAPACITY = 10_000;

/** llama.cpp's answer to a POST whose conversation was stopped while it waited for its model. */
export const CANCELLED_WHILE_LOADING = "request cancelled by a stop while the model was loading";

/**
 * A POST that carries a conversation id, from its arrival until it reaches its engine ("parked").
 * While parked, a stop (`DELETE /v1/stream`) or a newer request for the same conversation cancels it:
 * its signal aborts with llama.cpp's 400. Once admitted, a stop is the engine's business.
 */
export interface ConversationTicket {
  /** aborts, with the 400 as its reason, when the parked request is cancelled; never after `admitted()` */
  readonly signal: AbortSignal;
  /** the model the request ended up routed to (an alias resolved, a hub pull's cache id) */
  routedTo(model: string): void;
  /** the request goes to its engine now; throws the 400 if it was cancelled first */
  admitted(): void;
}

class Ticket implements ConversationTicket {
  readonly #controller = new AbortController();
  #parked = true;

  constructor(readonly entry: Entry) {}

  get signal(): AbortSignal {
    return this.#controller.signal;
  }
  get parked(): boolean {
    return this.#parked && !this.#controller.signal.aborted;
  }
  routedTo(model: string): void {
    // a newer request or a stop may have replaced the entry: only this ticket's own entry follows it
    this.entry.model = model;
  }
  admitted(): void {
    this.#controller.signal.throwIfAborted();
    this.#parked = false;
  }
  cancel(): void {
    if (this.#parked) this.#controller.abort(badRequest(CANCELLED_WHILE_LOADING));
  }
}

interface Entry {
  model: string;
  ticket?: Ticket;
}

export class ConversationOwners {
  readonly #entries = new Map<string, Entry>();

  constructor(readonly capacity: number = OWNERS_CAPACITY) {}

  get size(): number {
    return this.#entries.size;
  }

  /** Records that `conversation`'s stream is `model`'s now; a request still parked for it is cancelled. */
  remember(conversation: string, model: string): ConversationTicket {
    const entry: Entry = { model };
    const ticket = new Ticket(entry);
    entry.ticket = ticket;
    this.#entries.get(conversation)?.ticket?.cancel();
    this.#entries.delete(conversation);
    this.#entries.set(conversation, entry);
    // the oldest go first; one that is still parked is not cancelled (being forgotten is no stop)
    while (this.#entries.size > this.capacity) this.#entries.delete(this.#entries.keys().next().value!);
    return ticket;
  }

  /** The model that owns `conversation`'s stream, if known; counts as a use. */
  ownerOf(conversation: string): string | undefined {
    const entry = this.#entries.get(conversation);
    if (!entry) return undefined;
    this.#entries.delete(conversation);
    this.#entries.set(conversation, entry);
    return entry.model;
  }

  /** Whether a request for `conversation` is still on its way to its engine. */
  pending(conversation: string): boolean {
    return this.#entries.get(conversation)?.ticket?.parked ?? false;
  }

  /** Forgets `conversation` (its stream is being stopped); a request still parked for it is cancelled. */
  forget(conversation: string): void {
    this.#entries.get(conversation)?.ticket?.cancel();
    this.#entries.delete(conversation);
  }

  /** Forgets every conversation `model` owns (the model is gone from the table). */
  forgetModel(model: string): void {
    for (const [conversation, entry] of this.#entries) {
      if (entry.model === model) this.#entries.delete(conversation);
    }
  }
}
