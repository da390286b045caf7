// End to end, the way `npm start` runs the system (platform/stack.ts): users sign up
// through supabase-js against the Auth stand-in and their profiles appear; email and
// metadata changes follow; the real pg_cron job `user-sync` heals a profile removed
// behind the system's back by calling sync-all through pg_net (a user_sync.runs row
// with source `cron`), and fails loudly while its Vault secrets are missing; each
// function answers through supabase.functions.invoke.
//
// pg_cron 1.4 fires on the minute: the job is switched to every minute for this test
// (and restored), so each cron step may wait up to ~70 s.
import { createClient } from "@supabase/supabase-js";
import assert from "node:assert/strict";
import { startStack, upsertVaultSecret } from "../../platform/stack.ts";
import { connect } from "../_support/db.ts";
import { waitFor } from "../_support/wait.ts";

const CRON_WAIT_MS = 130_000;

Deno.test({
  name: "end to end: sign-ups, changes, cron healing through sync-all, every function via functions.invoke",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn(t) {
    const stack = await startStack({ port: 0 });
    const { api } = stack;
    const sql = connect("postgres", { max: 2 });
    const admin = connect("supabase_admin", { max: 1 });
    const anon = createClient(api.url, api.anonKey, { auth: { persistSession: false, autoRefreshToken: false } });
    const service = createClient(api.url, api.serviceRoleKey, { auth: { persistSession: false, autoRefreshToken: false } });
    const tag = crypto.randomUUID().slice(0, 8);
    const [job] = await sql`select jobid from cron.job where jobname = 'user-sync'`;
    try {
      // ---- sign-ups through Auth ----------------------------------------------------
      const ids: string[] = [];
      await t.step("users signed up through supabase-js get profiles at once", async () => {
        for (let i = 0; i < 5; i++) {
          const client = createClient(api.url, api.anonKey, { auth: { persistSession: false, autoRefreshToken: false } });
          const { data, error } = await client.auth.signUp({
            email: `e2e.${tag}.${i}@example.com`,
            password: `e2e-${tag}-${i}-Aa1!`,
            options: { data: { full_name: `E2E User ${i}` } },
          });
          assert.equal(error, null);
          ids.push(data.user!.id);
        }
        const rows = await sql`select id, email, name, provider from public.users where id in ${sql(ids)} order by email`;
        assert.equal(rows.length, 5);
        assert.deepEqual(rows.map((r) => r.name), [0, 1, 2, 3, 4].map((i) => `E2E User ${i}`));
        assert.ok(rows.every((r) => r.provider === "email"));
      });

      await t.step("an email change and a metadata change follow", async () => {
        const { error } = await service.auth.admin.updateUserById(ids[0], {
          email: `e2e.${tag}.changed@example.com`,
          user_metadata: { full_name: "E2E Renamed", avatar_url: "https://example.com/e2e.png" },
        });
        assert.equal(error, null);
        const [p] = await sql`select email, name, avatar_url from public.users where id = ${ids[0]}`;
        assert.deepEqual({ ...p }, { email: `e2e.${tag}.changed@example.com`, name: "E2E Renamed", avatar_url: "https://example.com/e2e.png" });

        const client = createClient(api.url, api.anonKey, { auth: { persistSession: false, autoRefreshToken: false } });
        const signIn = await client.auth.signInWithPassword({ email: `e2e.${tag}.1@example.com`, password: `e2e-${tag}-1-Aa1!` });
        assert.equal(signIn.error, null);
        const upd = await client.auth.updateUser({ data: { full_name: "Self Renamed" } });
        assert.equal(upd.error, null);
        const [q] = await sql`select name, last_sign_in_at from public.users where id = ${ids[1]}`;
        assert.equal(q.name, "Self Renamed");
        assert.ok(q.last_sign_in_at instanceof Date, "the sign-in time is mirrored");
      });

      // ---- the cron job -------------------------------------------------------------------
      await sql`select cron.alter_job(${job.jobid}, schedule => '* * * * *')`;

      await t.step("without its Vault secrets the cron job fails loudly", async () => {
        await sql`delete from vault.secrets where name in ('user_sync_project_url', 'user_sync_secret_key')`;
        const since = new Date();
        const failure = await waitFor("a failed user-sync cron run", CRON_WAIT_MS, async () => {
          const [r] = await admin`
            select status, return_message from cron.job_run_details
            where jobid = ${job.jobid} and start_time >= ${since} and status in ('failed', 'succeeded')
            order by start_time desc limit 1`;
          return r;
        });
        assert.equal(failure.status, "failed");
        assert.match(failure.return_message, /Vault secret 'user_sync_project_url' is missing/);
      });

      await t.step("the cron job heals a profile removed behind the system's back, through sync-all", async () => {
        await upsertVaultSecret(sql, "user_sync_project_url", api.url);
        await upsertVaultSecret(sql, "user_sync_secret_key", api.serviceRoleKey);
        await sql`delete from public.users where id = ${ids[2]}`;
        const [{ last }] = await sql`select coalesce(max(id), 0) as last from user_sync.runs`;
        const [{ lastResponse }] = await admin`select coalesce(max(id), 0) as "lastResponse" from net._http_response`;
        const run = await waitFor("a cron run of sync-all", CRON_WAIT_MS, async () => {
          const [r] = await sql`select * from user_sync.runs where id > ${last} and source = 'cron' and status <> 'running' order by id limit 1`;
          return r;
        });
        assert.equal(run.status, "ok");
        assert.ok(Number(run.inserted) >= 1, "the cron run inserted the missing profile");
        const [p] = await sql`select name from public.users where id = ${ids[2]}`;
        assert.equal(p?.name, "E2E User 2", "the profile is back");
        // pg_net records the response after sync-all has answered, so after the run row: wait for it.
        const r = await waitFor("pg_net's record of the cron's call", CRON_WAIT_MS, async () => {
          const [row] = await admin`select status_code from net._http_response where id > ${lastResponse} order by id limit 1`;
          return row;
        });
        assert.equal(r.status_code, 200, "pg_net delivered the call and sync-all answered 200");
      });

      // ---- each function through supabase.functions.invoke -------------------------------
      await t.step("sync-all, create-user and auth-webhook answer through functions.invoke", async () => {
        const status = await service.functions.invoke("sync-all", { method: "GET" });
        assert.equal(status.error, null);
        assert.equal(status.data.missing, 0);
        assert.equal(status.data.drifted, 0);
        const dry = await service.functions.invoke("sync-all", { body: { dry_run: true } });
        assert.equal(dry.error, null);
        assert.equal(dry.data.dry_run, true);

        const created = await service.functions.invoke("create-user", {
          body: { email: `e2e.${tag}.created@example.com`, password: `e2e-${tag}-Aa1!`, name: "Created E2E", role: "admin" },
        });
        assert.equal(created.error, null);
        assert.equal(created.data.user.name, "Created E2E");
        assert.equal(created.data.user.role, "admin");

        // A Database Webhook for a profile removed behind the system's back.
        await sql`delete from public.users where id = ${ids[3]}`;
        const [record] = await sql`select id, email from auth.users where id = ${ids[3]}`;
        const hook = await service.functions.invoke("auth-webhook", {
          body: { type: "UPDATE", table: "users", schema: "auth", record: { ...record }, old_record: { ...record } },
        });
        assert.equal(hook.error, null);
        const [p] = await sql`select id from public.users where id = ${ids[3]}`;
        assert.ok(p, "the webhook re-synced the profile");

        const denied = await anon.functions.invoke("sync-all", { method: "GET" });
        assert.ok(denied.error, "the anon key cannot read the sync status");
      });
    } finally {
      await sql`select cron.alter_job(${job.jobid}, schedule => '*/5 * * * *')`;
      await sql`delete from auth.users where email like ${"e2e." + tag + ".%"}`;
      await stack.close();
      await sql.end();
      await admin.end();
    }
  },
});
