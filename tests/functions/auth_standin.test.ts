// The Supabase Auth stand-in (platform/auth_standin.ts), driven by the real
// supabase-js client: what it writes lands in auth.users / auth.identities like
// GoTrue's rows, so the real user_sync trigger keeps public.users in line.
import assert from "node:assert/strict";
import {
  client,
  decodeJwt,
  integration,
  password,
  testStack,
  uniqueEmail,
} from "./_helpers.ts";

const t = testStack({ hooks: {} });

Deno.test({
  ...integration,
  name:
    "sign-up writes GoTrue-shaped rows; the trigger creates the profile; tokens are GoTrue-shaped",
  async fn() {
    const stack = await t.stack();
    const email = uniqueEmail("Standin").replace("standin", "StandIn");
    const pw = password();
    const { data, error } = await client(stack).auth.signUp({
      email,
      password: pw,
      options: { data: { full_name: "Stand In" } },
    });
    assert.equal(error, null);
    const id = data.user!.id;
    assert.equal(data.user!.email, email.toLowerCase());
    assert.equal(data.user!.identities?.[0].provider, "email");
    const [au] = await t.db()`
      select instance_id, aud, role, raw_app_meta_data, raw_user_meta_data, email_confirmed_at, last_sign_in_at,
             encrypted_password like '$2%' as bcrypt, is_anonymous
      from auth.users where id = ${id}`;
    assert.equal(au.aud, "authenticated");
    assert.equal(au.role, "authenticated");
    assert.deepEqual(au.raw_app_meta_data, { provider: "email", providers: ["email"] });
    assert.deepEqual(au.raw_user_meta_data, { full_name: "Stand In" });
    assert.ok(au.email_confirmed_at && au.last_sign_in_at);
    assert.equal(au.bcrypt, true);
    const [identity] = await t
      .db()`select provider, provider_id, identity_data, email from auth.identities where user_id = ${id}`;
    assert.equal(identity.provider, "email");
    assert.equal(identity.provider_id, id);
    assert.equal(identity.identity_data.sub, id);
    assert.equal(identity.email, email.toLowerCase());
    const [profile] = await t
      .db()`select email, name, provider, last_sign_in_at from public.users where id = ${id}`;
    assert.equal(profile.name, "Stand In");
    assert.equal(profile.provider, "email");
    assert.ok(profile.last_sign_in_at);

    const claims = decodeJwt(data.session!.access_token);
    assert.equal(claims.sub, id);
    assert.equal(claims.role, "authenticated");
    assert.equal(claims.aud, "authenticated");
    assert.equal(claims.email, email.toLowerCase());
    assert.deepEqual(claims.app_metadata, { provider: "email", providers: ["email"] });
    assert.deepEqual(claims.user_metadata, { full_name: "Stand In" });
    assert.equal(claims.is_anonymous, false);
    assert.match(claims.session_id, /^[0-9a-f-]{36}$/);
    assert.ok(claims.exp > claims.iat);
    assert.equal(claims.user_role, undefined, "no hook configured on this stack");
  },
});

Deno.test({
  ...integration,
  name: "duplicates: sign-up 422 user_already_exists, admin create 422 email_exists",
  async fn() {
    const stack = await t.stack();
    const email = uniqueEmail("dup");
    assert.equal((await client(stack).auth.signUp({ email, password: password() })).error, null);
    const again = await client(stack).auth.signUp({ email, password: password() });
    assert.equal(again.error?.status, 422);
    assert.equal(again.error?.code, "user_already_exists");
    const admin = await client(stack, "service").auth.admin.createUser({
      email: email.toUpperCase(),
    });
    assert.equal(admin.error?.status, 422);
    assert.equal(admin.error?.code, "email_exists");
    const weak = await client(stack).auth.signUp({ email: uniqueEmail(), password: "123" });
    assert.equal(weak.error?.code, "weak_password");
  },
});

Deno.test({
  ...integration,
  name: "password sign-in, refresh, getUser, updateUser (metadata, email); wrong password refused",
  async fn() {
    const stack = await t.stack();
    const email = uniqueEmail("signin");
    const pw = password();
    await client(stack, "service").auth.admin.createUser({
      email,
      password: pw,
      email_confirm: true,
    });
    const c = client(stack);
    assert.equal(
      (await c.auth.signInWithPassword({ email, password: "wrong-password" })).error?.code,
      "invalid_credentials",
    );
    const { data, error } = await c.auth.signInWithPassword({ email, password: pw });
    assert.equal(error, null);
    const id = data.user!.id;
    assert.equal((await c.auth.getUser()).data.user?.id, id);
    const refreshed = await c.auth.refreshSession();
    assert.equal(refreshed.error, null);
    assert.notEqual(refreshed.data.session!.refresh_token, data.session!.refresh_token);

    const updated = await c.auth.updateUser({
      data: { full_name: "Renamed Person", avatar_url: "https://example.test/a.png" },
    });
    assert.equal(updated.error, null);
    const newEmail = uniqueEmail("changed");
    assert.equal((await c.auth.updateUser({ email: newEmail })).error, null);
    const [p] = await t.db()`select name, avatar_url, email from public.users where id = ${id}`;
    assert.deepEqual({ ...p }, {
      name: "Renamed Person",
      avatar_url: "https://example.test/a.png",
      email: newEmail,
    });
    assert.equal((await c.auth.signOut()).error, null);
  },
});

Deno.test({
  ...integration,
  name: "admin update (app_metadata role, ban), anonymous sign-in, soft and hard delete",
  async fn() {
    try {
      await adminFlows();
    } finally {
      await t.close(); // last test of the file
    }
  },
});

async function adminFlows() {
  {
    const stack = await t.stack();
    const service = client(stack, "service");
    const { data } = await service.auth.admin.createUser({
      email: uniqueEmail("adm"),
      password: password(),
      email_confirm: true,
    });
    const id = data.user!.id;
    const promoted = await service.auth.admin.updateUserById(id, {
      app_metadata: { role: "admin" },
      user_metadata: { nickname: "boss" },
    });
    assert.equal(promoted.error, null);
    const { user_sync_role_stamp: stamp, ...appMetadata } = promoted.data.user!.app_metadata;
    assert.deepEqual(appMetadata, { provider: "email", providers: ["email"], role: "admin" });
    assert.equal(stamp.v, 1, "the role change is stamped (supabase/schemas/65_role_changes.sql)");
    assert.equal(stamp.role, "admin");
    let [p] = await t.db()`select role, name from public.users where id = ${id}`;
    assert.equal(p.role, "admin");
    assert.equal(p.name, "boss");
    const banned = await service.auth.admin.updateUserById(id, { ban_duration: "24h" });
    assert.ok(banned.data.user?.banned_until);

    const anon = await client(stack).auth.signInAnonymously();
    assert.equal(anon.error, null);
    assert.equal(anon.data.user!.is_anonymous, true);
    const [ap] = await t.db()`select is_anonymous, email, provider from public.users where id = ${
      anon.data.user!.id
    }`;
    assert.deepEqual({ ...ap }, { is_anonymous: true, email: null, provider: null });

    assert.equal((await service.auth.admin.deleteUser(id, true)).error, null);
    [p] = await t.db()`select deleted_at from public.users where id = ${id}`;
    assert.ok(p.deleted_at, "soft delete keeps the profile with deleted_at");
    assert.equal((await service.auth.admin.deleteUser(id)).error, null);
    assert.equal(
      (await t.db()`select 1 from public.users where id = ${id}`).length,
      0,
      "hard delete removes it",
    );
    // non-admin callers are refused by the admin API
    const denied = await client(stack).auth.admin.createUser({ email: uniqueEmail() });
    assert.equal(denied.error?.status, 403);
  }
}
