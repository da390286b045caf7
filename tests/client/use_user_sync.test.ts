// useUserSync in a DOM (happy-dom + @testing-library/react), driven by the real
// supabase-js against the local stack: start, sign-in, sign-out, a missing profile
// healed by one self-sync, two mounts sharing that one sync, update, unmount.
import assert from "node:assert/strict";
import { closeDom } from "./_dom.ts"; // first: the DOM must exist before React loads
const nativeFetch = globalThis.fetch;
import { createElement } from "react";
import { act, cleanup, render, screen, waitFor } from "@testing-library/react";
import { createClient, type SupabaseClient } from "@supabase/supabase-js";
import { useUserSync, type UseUserSyncResult } from "../../client/src/react/index.ts";
import {
  client,
  integration,
  password,
  testNoSecretsLogged,
  testStack,
  uniqueEmail,
} from "../functions/_helpers.ts";

const t = testStack();

/** A browser-like client (anon key, in-memory session) that counts self-sync calls. */
async function browserClient(): Promise<
  { supabase: SupabaseClient; syncCalls: () => number; restCalls: () => number }
> {
  const stack = await t.stack();
  let syncs = 0;
  let reads = 0;
  const counting: typeof fetch = (input, init) => {
    const url = input instanceof Request ? input.url : String(input);
    if (url.endsWith("/functions/v1/sync-all") && (init?.method ?? "GET") === "POST") syncs++;
    if (url.includes("/rest/v1/")) reads++;
    return nativeFetch(input, init);
  };
  const supabase = createClient(stack.url, stack.anonKey, {
    auth: { persistSession: false, autoRefreshToken: false, detectSessionInUrl: false },
    global: { fetch: counting },
  });
  return { supabase, syncCalls: () => syncs, restCalls: () => reads };
}

async function aUser(): Promise<{ id: string; email: string; password: string }> {
  const stack = await t.stack();
  const email = uniqueEmail("hook");
  const pw = password();
  const { data, error } = await client(stack, "service").auth.admin.createUser({
    email,
    password: pw,
    email_confirm: true,
  });
  if (error) throw error;
  return { id: data.user.id, email, password: pw };
}

const latest: Record<string, UseUserSyncResult> = {};
function Probe({ supabase, id }: { supabase: SupabaseClient; id: string }) {
  const state = useUserSync(supabase);
  latest[id] = state;
  const text = state.loading
    ? "loading"
    : state.error
    ? `error:${state.error.code}`
    : state.profile
    ? `profile:${state.profile.email}:${state.profile.name}`
    : "signed-out";
  return createElement("p", { "data-testid": id }, text);
}

const shows = (id: string, text: string) =>
  waitFor(
    () => assert.equal((screen.getByTestId(id) as { textContent?: string | null }).textContent, text),
    { timeout: 5000 },
  );

Deno.test({
  ...integration,
  name: "start signed out, sign in, sign out: the profile follows the session",
  async fn() {
    const { supabase, syncCalls } = await browserClient();
    const user = await aUser();
    render(createElement(Probe, { supabase, id: "a" }));
    await shows("a", "signed-out");
    await act(async () => {
      await supabase.auth.signInWithPassword({ email: user.email, password: user.password });
    });
    await shows("a", `profile:${user.email}:${user.email.split("@")[0]}`);
    assert.equal(syncCalls(), 0, "an existing profile needs no sync");
    await act(async () => {
      await supabase.auth.signOut();
    });
    await shows("a", "signed-out");
    cleanup();
  },
});

Deno.test({
  ...integration,
  name: "a session that exists at start is loaded at mount; update edits the name",
  async fn() {
    const { supabase } = await browserClient();
    const user = await aUser();
    await supabase.auth.signInWithPassword({ email: user.email, password: user.password });
    render(createElement(Probe, { supabase, id: "b" }));
    await shows("b", `profile:${user.email}:${user.email.split("@")[0]}`);
    await act(async () => {
      await latest.b.update({ name: "Edited In App" });
    });
    await shows("b", `profile:${user.email}:Edited In App`);
    const [row] = await t.db()`select name, name_edited_at from public.users where id = ${user.id}`;
    assert.equal(row.name, "Edited In App");
    assert.notEqual(row.name_edited_at, null);
    cleanup();
  },
});

Deno.test({
  ...integration,
  name: "a missing profile is healed by one self-sync, shared by two mounted components",
  async fn() {
    const { supabase, syncCalls } = await browserClient();
    const user = await aUser();
    // Signed in already (the sign-in itself re-creates a profile through the trigger);
    // then the profile goes missing behind the app's back.
    await supabase.auth.signInWithPassword({ email: user.email, password: user.password });
    await t.db()`delete from public.users where id = ${user.id}`;
    render(
      createElement("div", null, [
        createElement(Probe, { supabase, id: "c1", key: 1 }),
        createElement(Probe, { supabase, id: "c2", key: 2 }),
      ]),
    );
    const expected = `profile:${user.email}:${user.email.split("@")[0]}`;
    await shows("c1", expected);
    await shows("c2", expected);
    assert.equal(syncCalls(), 1, "two mounts, one sync");
    const rows = await t.db()`select 1 from public.users where id = ${user.id}`;
    assert.equal(rows.length, 1, "the profile exists again");
    cleanup();
  },
});

Deno.test({
  ...integration,
  name: "after unmount nothing runs: auth events no longer reach the hook",
  async fn() {
    const { supabase, syncCalls, restCalls } = await browserClient();
    const user = await aUser();
    const view = render(createElement(Probe, { supabase, id: "d" }));
    await shows("d", "signed-out");
    view.unmount();
    await supabase.auth.signInWithPassword({ email: user.email, password: user.password });
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(restCalls(), 0, "no profile load after unmount");
    assert.equal(syncCalls(), 0, "no sync after unmount");
    cleanup();
  },
});

Deno.test({
  ...integration,
  name: "useUserSync tests: teardown",
  async fn() {
    await closeDom();
  },
});

testNoSecretsLogged(t, "use-user-sync");
