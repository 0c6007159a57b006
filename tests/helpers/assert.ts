/** The few assertions the tests use, on `node:assert` (JSR's @std/assert cannot be fetched here). */
import nodeAssert from "node:assert/strict";

export function assert(condition: unknown, message?: string): asserts condition {
  nodeAssert.ok(condition, message);
}
export function assertEquals<T>(actual: T, expected: T, message?: string): void {
  nodeAssert.deepStrictEqual(actual, expected, message);
}
export function assertMatch(actual: string, pattern: RegExp, message?: string): void {
  nodeAssert.match(actual, pattern, message);
}
export async function assertRejects(fn: () => Promise<unknown>, message?: string): Promise<void> {
  await nodeAssert.rejects(fn, message);
}
