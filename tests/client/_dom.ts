// A DOM for React tests under Deno: happy-dom's window, adding to globalThis only what
// Deno lacks (Deno's own fetch, Event, EventTarget, timers... stay, so supabase-js talks
// to the local stack for real). Import this module before react / @testing-library.
// happy-dom's own typings bring @types/node, at odds with Deno's node types in the
// type check of the whole suite: the few types used here come from happy_dom.d.ts.
// @ts-types="./happy_dom.d.ts"
import { Window } from "happy-dom";
const dom = new Window({ url: "http://localhost:3000" });
const added: string[] = [];
const names = new Set<string>();
for (let o: object | null = dom; o && o !== Object.prototype; o = Object.getPrototypeOf(o)) {
  for (const key of Object.getOwnPropertyNames(o)) names.add(key);
}
for (const key of names) {
  if (key in globalThis || key.startsWith("_") || key === "constructor") continue;
  Object.defineProperty(globalThis, key, {
    configurable: true,
    writable: true,
    value: (dom as unknown as Record<string, unknown>)[key],
  });
  added.push(key);
}
// deno-lint-ignore no-explicit-any
(globalThis as any).window = dom;
// deno-lint-ignore no-explicit-any
(globalThis as any).IS_REACT_ACT_ENVIRONMENT = true;

/** Removes what was added and closes the window. */
export async function closeDom(): Promise<void> {
  for (const key of added) delete (globalThis as Record<string, unknown>)[key];
  await dom.happyDOM.close();
}
