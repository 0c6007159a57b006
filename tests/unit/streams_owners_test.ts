/** The owner table of resumable streams (router/streams/owners.ts) on its own: no app, no engine. */
import { assert, assertEquals } from "../helpers/assert.ts";
import { ApiError } from "../../router/errors.ts";
import { CANCELLED_WHILE_LOADING, ConversationOwners } from "../../router/streams/owners.ts";

function assertCancelled(signal: AbortSignal, context: string): void {
  assert(signal.aborted, `${context}: cancelled`);
  const reason = signal.reason as ApiError;
  assert(reason instanceof ApiError, `${context}: an ApiError`);
  assertEquals([reason.status, reason.type, reason.message], [
    400,
    "invalid_request_error",
    CANCELLED_WHILE_LOADING,
  ]);
}

Deno.test("owners: a conversation maps to the model its latest POST was routed to", () => {
  const owners = new ConversationOwners();
  assertEquals(owners.ownerOf("c1"), undefined);
  const ticket = owners.remember("c1", "alias-a");
  ticket.routedTo("model-a");
  assertEquals(owners.ownerOf("c1"), "model-a", "the resolved id, not the alias");
  owners.remember("c1", "model-b");
  assertEquals(owners.ownerOf("c1"), "model-b", "a newer request moves the conversation");
  ticket.routedTo("model-c");
  assertEquals(owners.ownerOf("c1"), "model-b", "a replaced ticket no longer moves it");
});

Deno.test("owners: a stop cancels a parked request, not an admitted one", () => {
  const owners = new ConversationOwners();
  const parked = owners.remember("parked", "m");
  const admitted = owners.remember("admitted", "m");
  admitted.admitted();
  assert(owners.pending("parked") && !owners.pending("admitted"), "pending only while parked");
  owners.forget("parked");
  owners.forget("admitted");
  assertCancelled(parked.signal, "parked");
  assert(!admitted.signal.aborted, "an admitted request is the engine's to stop");
  assertEquals([owners.ownerOf("parked"), owners.ownerOf("admitted"), owners.size], [
    undefined,
    undefined,
    0,
  ]);
  let thrown: unknown;
  try {
    parked.admitted();
  } catch (err) {
    thrown = err;
  }
  assert(thrown instanceof ApiError && thrown.status === 400, "a cancelled request cannot be admitted");
});

Deno.test("owners: a newer request for the conversation cancels the one still parked", () => {
  const owners = new ConversationOwners();
  const first = owners.remember("c", "m");
  const second = owners.remember("c", "m");
  assertCancelled(first.signal, "first");
  assert(!second.signal.aborted && owners.pending("c"), "the newer one waits on");
});

Deno.test("owners: bounded, least recently used first out, without cancelling anything", () => {
  const owners = new ConversationOwners(3);
  const tickets = ["a", "b", "c"].map((c) => owners.remember(c, `m-${c}`));
  assertEquals(owners.ownerOf("a"), "m-a", "a use keeps 'a'");
  owners.remember("d", "m-d");
  assertEquals(owners.size, 3);
  assertEquals(["a", "b", "c", "d"].map((c) => owners.ownerOf(c)), ["m-a", undefined, "m-c", "m-d"]);
  assert(tickets.every((t) => !t.signal.aborted), "being forgotten for room is no stop");
});

Deno.test("owners: a model's removal forgets its conversations only", () => {
  const owners = new ConversationOwners();
  owners.remember("a1", "a");
  owners.remember("a2", "a");
  owners.remember("b1", "b");
  owners.forgetModel("a");
  assertEquals(["a1", "a2", "b1"].map((c) => owners.ownerOf(c)), [undefined, undefined, "b"]);
});
