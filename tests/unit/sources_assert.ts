/**
 * Assertions for the sources tests: the shared ones, and error checks by class and message fragments.
 */
import nodeAssert from "node:assert/strict";

export { assert, assertEquals } from "../helpers/assert.ts";

// deno-lint-ignore no-explicit-any
type ErrorClass<E> = new (...args: any[]) => E;

/** Asserts `fn` throws an `ErrorClass` whose message contains each of `fragments`; returns it. */
export function assertThrows<E extends Error>(
  fn: () => unknown,
  cls: ErrorClass<E>,
  ...fragments: string[]
): E {
  try {
    fn();
  } catch (e) {
    return checkError(e, cls, fragments);
  }
  throw new nodeAssert.AssertionError({ message: `expected ${cls.name} to be thrown` });
}

/** Asserts `fn` rejects with an `ErrorClass` whose message contains each of `fragments`; returns it. */
export async function assertRejects<E extends Error>(
  fn: () => Promise<unknown>,
  cls: ErrorClass<E>,
  ...fragments: string[]
): Promise<E> {
  try {
    await fn();
  } catch (e) {
    return checkError(e, cls, fragments);
  }
  throw new nodeAssert.AssertionError({ message: `expected ${cls.name} to be thrown` });
}

function checkError<E extends Error>(e: unknown, cls: ErrorClass<E>, fragments: string[]): E {
  nodeAssert.ok(e instanceof cls, `expected ${cls.name}, got ${e}`);
  for (const fragment of fragments) {
    nodeAssert.ok(e.message.includes(fragment), `'${e.message}' lacks '${fragment}'`);
  }
  return e;
}
