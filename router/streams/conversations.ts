/**
 * The gateway's one owner table (see owners.ts), shared by the proxied POSTs that fill it and the
 * stream routes that read it. It belongs to the model table it points into, so it is found through the
 * scheduler: every app built on one scheduler sees the same table, and no wiring outside this module
 * has to carry it.
 */
import type { GatewayDeps } from "../deps.ts";
import type { Scheduler } from "../scheduler/scheduler.ts";
import { ConversationOwners, type ConversationTicket } from "./owners.ts";

/** The header llama.cpp's web UI sends with every chat request (`<conversation>` or `<conversation>::<model>`). */
export const CONVERSATION_HEADER = "x-conversation-id";

const tables = new WeakMap<Scheduler, ConversationOwners>();

export function ownersOf(deps: GatewayDeps): ConversationOwners {
  let owners = tables.get(deps.scheduler);
  if (!owners) {
    const table = owners = new ConversationOwners();
    tables.set(deps.scheduler, table);
    // a removed model's sessions died with its engine; a reload that drops one only leaves stale entries
    deps.events.subscribe((e) => e.event === "model_remove" && table.forgetModel(e.model));
  }
  return owners;
}

/**
 * For a POST carrying `X-Conversation-Id`: records that `model` owns that conversation's stream and
 * returns the request's ticket; undefined for any other request. llama.cpp registers it before the
 * request waits for its model, so that a stop during the load can cancel the request.
 */
export function conversationTicket(
  req: Request,
  deps: GatewayDeps,
  model: string,
): ConversationTicket | undefined {
  if (req.method !== "POST") return undefined;
  const conversation = req.headers.get(CONVERSATION_HEADER);
  return conversation ? ownersOf(deps).remember(conversation, model) : undefined;
}
