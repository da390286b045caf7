// The local Data API stand-in (platform/data_api.ts): each request as PostgREST runs it
// (the JWT's role, its claims, one transaction), PostgREST-shaped answers, and a 501
// naming the feature for everything it does not serve.
import assert from "node:assert/strict";
import {
  client,
  integration,
  signedInUser,
  testNoSecretsLogged,
  testStack,
} from "../functions/_helpers.ts";
import type { LocalStack } from "../../platform/gateway.ts";

const t = testStack();

async function rest(
  stack: LocalStack,
  path: string,
  init: RequestInit & { token?: string } = {},
  // deno-lint-ignore no-explicit-any
): Promise<{ status: number; body: any; headers: Headers }> {
  const headers = new Headers(init.headers);
  if (!headers.has("apikey")) headers.set("apikey", stack.anonKey);
  if (init.token) headers.set("authorization", `Bearer ${init.token}`);
  const res = await fetch(`${stack.url}/rest/v1${path}`, { ...init, headers });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : null, headers: res.headers };
}

function assertPostgrestError(body: unknown, code: string | null): void {
  const b = body as Record<string, unknown>;
  assert.deepEqual(Object.keys(b).sort(), ["code", "details", "hint", "message"]);
  assert.equal(b.code, code);
  assert.equal(typeof b.message, "string");
}

Deno.test({
  ...integration,
  name: "requests run as the JWT's role with its claims: RLS decides, anon gets 401",
  async fn() {
    const stack = await t.stack();
    const user = await signedInUser(stack);
    const anon = await rest(stack, "/users?select=id");
    assert.equal(anon.status, 401, "anon has no grant on public.users");
    assertPostgrestError(anon.body, "42501");
    const mine = await rest(stack, "/users?select=id,email", { token: user.accessToken });
    assert.equal(mine.status, 200);
    assert.deepEqual(mine.body, [{ id: user.id, email: user.email }]);
    const service = await rest(stack, "/users?select=id&limit=2", {
      headers: { apikey: stack.serviceRoleKey, authorization: `Bearer ${stack.serviceRoleKey}` },
    });
    assert.equal(service.body.length, 2, "service_role bypasses RLS");
  },
});

Deno.test({
  ...integration,
  name: "bad credentials: no key, an unknown key, a forged token",
  async fn() {
    const stack = await t.stack();
    const user = await signedInUser(stack);
    const none = await fetch(`${stack.url}/rest/v1/users`);
    assert.equal(none.status, 401);
    await none.body?.cancel();
    const unknown = await rest(stack, "/users", { headers: { apikey: "sb_publishable_nope" } });
    assert.equal(unknown.status, 401);
    const [h, p] = user.accessToken.split(".");
    const forged = await rest(stack, "/users", { token: `${h}.${p}.c2lnbmF0dXJl` });
    assert.equal(forged.status, 401);
    assertPostgrestError(forged.body, "PGRST301");
  },
});

Deno.test({
  ...integration,
  name: "filters, or-trees, order, limit/offset, Range and counts answer like PostgREST",
  async fn() {
    const stack = await t.stack();
    const admin = await signedInUser(stack, "admin");
    const m = `da${crypto.randomUUID().slice(0, 8)}`;
    const service = client(stack, "service");
    const ids: string[] = [];
    for (const name of ["Ava", "Bo", "Cal"]) {
      const { data, error } = await service.auth.admin.createUser({
        email: `${m}-${name.toLowerCase()}@example.test`,
        user_metadata: { full_name: `${name} ${m}` },
      });
      if (error) throw error;
      ids.push(data.user.id);
    }
    const q = (s: string, headers: Record<string, string> = {}) =>
      rest(stack, s, { token: admin.accessToken, headers });
    const page = await q(`/users?select=name&email=ilike.${m}*&order=name.desc&limit=2`, {
      prefer: "count=exact",
    });
    assert.deepEqual(page.body, [{ name: `Cal ${m}` }, { name: `Bo ${m}` }]);
    assert.equal(page.headers.get("content-range"), "0-1/3");
    const ranged = await q(`/users?select=id&email=ilike.${m}*&order=email.asc`, {
      range: "1-5",
      prefer: "count=exact",
    });
    assert.deepEqual(ranged.body.map((r: { id: string }) => r.id), [ids[1], ids[2]]);
    assert.equal(ranged.headers.get("content-range"), "1-2/3");
    const tree = await q(
      `/users?select=id&or=(name.eq.Ava%20${m},and(email.ilike.*${m}-bo*,name.neq.x))&order=email`,
    );
    assert.deepEqual(tree.body.map((r: { id: string }) => r.id), [ids[0], ids[1]]);
    const inList = await q(`/users?select=id&id=in.(${ids[0]},"${ids[2]}")&order=email`);
    assert.deepEqual(inList.body.map((r: { id: string }) => r.id), [ids[0], ids[2]]);
    const notIn = await q(`/users?select=id&email=ilike.${m}*&id=not.in.(${ids[0]})&deleted_at=is.null`);
    assert.equal(notIn.body.length, 2);
    const alias = await q(`/users?select=who:email&id=eq.${ids[0]}`);
    assert.deepEqual(alias.body, [{ who: `${m}-ava@example.test` }]);
    const planned = await q(`/users?select=id&limit=1`, { prefer: "count=planned" });
    assert.match(planned.headers.get("content-range") ?? "", /^0-0\/\d+$/);
    const beyond = await q(`/users?select=id&email=ilike.${m}*&offset=10`, { prefer: "count=exact" });
    assert.equal(beyond.status, 416);
    assertPostgrestError(beyond.body, "PGRST103");
    const one = await q(`/users?select=email&id=eq.${ids[0]}`, {
      accept: "application/vnd.pgrst.object+json",
    });
    assert.deepEqual(one.body, { email: `${m}-ava@example.test` });
    const none = await q(`/users?id=eq.${crypto.randomUUID()}`, {
      accept: "application/vnd.pgrst.object+json",
    });
    assert.equal(none.status, 406);
    assertPostgrestError(none.body, "PGRST116");
    const badColumn = await q(`/users?select=nope`);
    assert.equal(badColumn.status, 400);
    assertPostgrestError(badColumn.body, "42703");
    const badTable = await q(`/nope`);
    assert.equal(badTable.status, 404);
    assertPostgrestError(badTable.body, "PGRST205");
  },
});

Deno.test({
  ...integration,
  name: "PATCH is one transaction: representation, minimal, and a rollback when .single() fails",
  async fn() {
    const stack = await t.stack();
    const [admin, a, b] = await Promise.all([
      signedInUser(stack, "admin"),
      signedInUser(stack),
      signedInUser(stack),
    ]);
    const patch = (query: string, body: unknown, headers: Record<string, string> = {}) =>
      rest(stack, `/users?${query}`, {
        method: "PATCH",
        token: admin.accessToken,
        headers: { "content-type": "application/json", ...headers },
        body: JSON.stringify(body),
      });
    const rep = await patch(`id=eq.${a.id}&select=id,name`, { name: "Renamed A" }, {
      prefer: "return=representation",
    });
    assert.equal(rep.status, 200);
    assert.deepEqual(rep.body, [{ id: a.id, name: "Renamed A" }]);
    const minimal = await patch(`id=eq.${b.id}`, { name: "Renamed B" });
    assert.equal(minimal.status, 204);
    const both = await patch(`id=in.(${a.id},${b.id})`, { name: "Both" }, {
      prefer: "return=representation",
      accept: "application/vnd.pgrst.object+json",
    });
    assert.equal(both.status, 406);
    const names = await t.db()`select name from public.users where id in (${a.id}, ${b.id}) order by name`;
    assert.deepEqual(names.map((r) => r.name), ["Renamed A", "Renamed B"], "rolled back");
    const guarded = await rest(stack, `/users?id=eq.${a.id}`, {
      method: "PATCH",
      token: a.accessToken,
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ role: "admin" }),
    });
    assert.equal(guarded.status, 403);
    assertPostgrestError(guarded.body, "42501");
    const unknownColumn = await patch(`id=eq.${a.id}`, { nope: 1 });
    assert.equal(unknownColumn.status, 400);
    assertPostgrestError(unknownColumn.body, "PGRST204");
  },
});

Deno.test({
  ...integration,
  name: "RPC: named arguments, scalar / set / void results, the caller's claims and grants",
  async fn() {
    const stack = await t.stack();
    const user = await signedInUser(stack);
    const db = t.db();
    await db.unsafe(`
      create or replace function public.data_api_test_whoami(greeting text, n int default 1)
      returns text language sql stable set search_path = '' as
      $$ select repeat(greeting, n) || ' ' || current_user || ' ' || coalesce((select auth.uid())::text, '-') $$;
      create or replace function public.data_api_test_series(upto int)
      returns setof int language sql immutable set search_path = '' as $$ select generate_series(1, upto) $$;
      create or replace function public.data_api_test_noop() returns void language sql set search_path = '' as $$ select $$;
      revoke execute on function public.data_api_test_noop() from public, anon;
      grant execute on function public.data_api_test_noop() to authenticated;`);
    try {
      const who = await rest(stack, "/rpc/data_api_test_whoami", {
        method: "POST",
        token: user.accessToken,
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ greeting: "hi", n: 2 }),
      });
      assert.equal(who.status, 200);
      assert.equal(who.body, `hihi authenticated ${user.id}`);
      const { data, error } = await client(stack).rpc("data_api_test_series", { upto: 3 });
      assert.equal(error, null);
      assert.deepEqual(data, [1, 2, 3]);
      const noop = await user.client.rpc("data_api_test_noop");
      assert.equal(noop.status, 204);
      assert.equal(noop.error, null);
      const denied = await client(stack).rpc("data_api_test_noop");
      assert.equal(denied.status, 401);
      assert.equal(denied.error?.code, "42501");
      const missing = await client(stack).rpc("data_api_test_whoami", { nope: 1 });
      assert.equal(missing.status, 404);
      assert.equal(missing.error?.code, "PGRST202");
    } finally {
      await db.unsafe(`drop function public.data_api_test_whoami(text, int);
        drop function public.data_api_test_series(int); drop function public.data_api_test_noop();`);
    }
  },
});

Deno.test({
  ...integration,
  name: "what the stand-in does not serve is a 501 naming the feature",
  async fn() {
    const stack = await t.stack();
    const admin = await signedInUser(stack, "admin");
    const cases: [string, RequestInit & { token?: string }, RegExp][] = [
      ["/users?select=id,roles(role)", {}, /embedded resources/],
      ["/users?select=id&name=fts.x", {}, /"fts" filter operator/],
      ["/users?select=id&email=eq(any).{a,b}", {}, /eq\(any\)/],
      ["/users?select=raw->a", {}, /JSON paths/],
      ["/users", { method: "POST", headers: { "content-type": "application/json" }, body: "{}" }, /inserts/],
      ["/users?id=eq.x", { method: "DELETE" }, /deletes/],
      ["/users", { headers: { accept: "text/csv" } }, /media type text\/csv/],
      ["/users", { headers: { "accept-profile": "user_sync" } }, /schemas other than public/],
      ["/users", { headers: { prefer: "tx=rollback" } }, /Prefer: tx=rollback/],
      ["/rpc/anything", { method: "GET" }, /GET on \/rpc/],
      ["/", {}, /OpenAPI/],
    ];
    for (const [path, init, feature] of cases) {
      const res = await rest(stack, path, { token: admin.accessToken, ...init });
      assert.equal(res.status, 501, `${init.method ?? "GET"} ${path}: ${JSON.stringify(res.body)}`);
      assertPostgrestError(res.body, "PGRST501");
      assert.match(res.body.message, feature);
    }
  },
});

testNoSecretsLogged(t, "data-api");
