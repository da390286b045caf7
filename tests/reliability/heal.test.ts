// Healing a large table in bounded calls, as a user of sync-all, the cron job and the
// heal command sees it:
//   1. sync-all stops at its budget with complete: false; the next POST continues the
//      same pass; every missing profile is created exactly once;
//   2. a user deleted after a batch's snapshot is skipped, the rest of the batch goes
//      through; Auth's hard deletes racing a heal never derail it; Auth's phone change of
//      a user a batch has just inserted does not deadlock with it;
//   3. while a bounded call runs, Auth's hard delete and phone change of a user it
//      wrote wait for it no longer than 2.5 s;
//   4. the heal command prints JSON lines, stops on Ctrl-C between calls, and a second
//      run continues to completion.
// (A crash mid-heal: tests/reliability/faults.test.ts.)
import assert from "node:assert/strict";
import { localDbUrl } from "../../platform/local.ts";
import {
  call,
  integration,
  serviceHeaders,
  testNoSecretsLogged,
  testStack,
} from "../functions/_helpers.ts";
import { adminDb, envInt, figures, sleep, type Sql, syncStatus, waitFor } from "./_shared.ts";
import { driveHeal, type ReconcileReport } from "../../supabase/functions/_shared/heal.ts";
import { withProfileTrigger } from "../_support/db.ts";

const ROOT = new URL("../../", import.meta.url).pathname;
const HEAL_USERS = envInt("USER_SYNC_HEAL_TEST_USERS", 20_000);

const t = testStack({
  functionEnv: { USER_SYNC_SYNC_ALL_BUDGET_MS: "1000", USER_SYNC_RECONCILE_CALL_MS: "100" },
});

/** n auth users without profiles (a bulk import with triggers off), ids prefix-hex. */
async function seedMissing(sql: Sql, prefix: string, n: number): Promise<void> {
  await sql.unsafe(`
    set session_replication_role = replica;
    insert into auth.users (instance_id, id, aud, role, email, raw_app_meta_data, raw_user_meta_data,
                            created_at, updated_at, is_anonymous)
    select '00000000-0000-0000-0000-000000000000', ('${prefix}' || lpad(to_hex(g), 12, '0'))::uuid,
           'authenticated', 'authenticated', 'heal.' || g || '.${prefix.slice(0, 8)}@example.test',
           '{"provider": "email", "providers": ["email"]}', jsonb_build_object('full_name', 'Heal ' || g),
           now(), now(), false
    from generate_series(1, ${n}) g;
    reset session_replication_role;
    analyze auth.users;`);
}

async function cleanup(sql: Sql, prefix: string): Promise<void> {
  await sql.unsafe(`delete from auth.users where id::text like '${prefix}%'`);
}

async function countProfiles(sql: Sql, prefix: string): Promise<number> {
  const [{ n }] = await sql.unsafe(
    `select count(*)::int as n from public.users where id::text like '${prefix}%'`,
  );
  return n;
}

Deno.test({
  ...integration,
  name:
    `sync-all stops at its budget (complete: false) and the next POST continues: ${HEAL_USERS} profiles, each once`,
  async fn() {
    const stack = await t.stack();
    const sql = adminDb(2);
    const prefix = "4ea10000-0000-4000-8000-";
    try {
      await sql`select user_sync.reconcile(false, 'test')`;
      await seedMissing(sql, prefix, HEAL_USERS);
      const posts: {
        complete: boolean;
        remaining: number | null;
        inserted: number;
        calls: number;
        longest_call_ms: number;
        ms: number;
      }[] = [];
      for (let i = 0; i < 200; i++) {
        const t0 = performance.now();
        const res = await call(stack, "sync-all", {
          method: "POST",
          headers: serviceHeaders(stack),
          json: {},
        });
        const ms = performance.now() - t0;
        assert.equal(res.status, 200, JSON.stringify(res.body));
        assert.equal(res.body.skipped, false);
        assert.ok(
          ms < 1000 + 1500 + 1000,
          `a POST with a 1 s budget answered in ${Math.round(ms)} ms`,
        );
        for (
          const k of ["complete", "calls", "progress", "remaining", "inserted", "run_id", "status"]
        ) {
          assert.ok(k in res.body, `the report has ${k}`);
        }
        assert.ok(
          res.body.progress.examined <= res.body.progress.total,
          JSON.stringify(res.body.progress),
        );
        posts.push({ ...res.body, ms });
        if (i === 0) {
          assert.equal(res.body.complete, false, "the first POST ran out of its 1 s budget");
          const [{ s }] = await sql`select user_sync.status() as s`;
          assert.ok(
            s.heal && s.heal.examined > 0 && s.heal.total >= s.heal.examined && s.heal.rate > 0,
            `status() shows the unfinished heal: ${JSON.stringify(s.heal)}`,
          );
        }
        if (res.body.complete) break;
      }
      const last = posts[posts.length - 1];
      assert.equal(last.complete, true, "the heal completes over successive POSTs");
      assert.equal(last.remaining, 0);
      const inserted = posts.reduce((n, p) => n + p.inserted, 0);
      assert.equal(
        inserted,
        HEAL_USERS,
        "the POSTs inserted every missing profile once between them",
      );
      assert.equal(await countProfiles(sql, prefix), HEAL_USERS);
      const after = await syncStatus(sql);
      assert.deepEqual([after.missing, after.drifted, after.orphaned], [0, 0, 0]);
      assert.equal((await sql`select user_sync.status() -> 'heal' as h`)[0].h, null);
      figures("heal: sync-all with a 1 s budget", {
        users: HEAL_USERS,
        posts: posts.length,
        calls: posts.reduce((n, p) => n + p.calls, 0),
        longest_post_ms: Math.round(Math.max(...posts.map((p) => p.ms))),
        longest_call_ms: Math.max(...posts.map((p) => p.longest_call_ms)),
      });
    } finally {
      await cleanup(sql, prefix);
      await sql.end({ timeout: 1 });
    }
  },
});

Deno.test({
  ...integration,
  name: "a user deleted after a batch's snapshot is skipped, not an error; the rest of the batch is inserted",
  async fn() {
    const sql = adminDb(2);
    const prefix = "4ea20000-0000-4000-8000-";
    const victim = `${prefix}000000000032`;
    try {
      await sql`select user_sync.reconcile(false, 'test')`;
      await seedMissing(sql, prefix, 50);
      // Auth deletes the user (another session, committed) as reconcile's first insert
      // statement starts: after the statement's snapshot, before it reads any row.
      const deleteInFlight = {
        name: "test_delete_in_flight",
        level: "statement" as const,
        body: `
          if current_setting('test.deleted_in_flight', true) is distinct from 'yes' then
            perform set_config('test.deleted_in_flight', 'yes', true);
            perform extensions.dblink_exec(format('host=127.0.0.1 port=%s dbname=postgres user=supabase_admin password=postgres',
              current_setting('port')), 'set lock_timeout = ''5s''; delete from auth.users where id = ''${victim}''');
          end if;
          return null;`,
      };
      const r = await withProfileTrigger(sql, deleteInFlight, async () =>
        (await sql`select user_sync.reconcile(false, 'test') as r`)[0].r as ReconcileReport);
      assert.equal(r.complete, true, JSON.stringify(r));
      assert.equal(r.errors, 0, JSON.stringify(r));
      assert.equal(r.inserted, 49, "the other 49 of the batch are inserted");
      assert.equal((await sql`select count(*)::int as n from auth.users where id = ${victim}`)[0].n, 0, "the user is gone");
      assert.equal(await countProfiles(sql, prefix), 49, "and has no profile");
      assert.equal(
        (await sql`select count(*)::int as n from user_sync.errors where run_id = ${r.run_id!}`)[0].n,
        0,
        "nothing is recorded: a deleted user is not a failure",
      );
    } finally {
      await cleanup(sql, prefix);
      await sql`select user_sync.reconcile(false, 'test')`;
      await sql.end({ timeout: 1 });
    }
  },
});

Deno.test({
  ...integration,
  name:
    "Auth's phone change of a user whose profile a running batch has just inserted: no deadlock, both go through",
  async fn() {
    const sql = adminDb(2);
    const auth = adminDb(1);
    const prefix = "4ea50000-0000-4000-8000-";
    const changed = `${prefix}000000000005`;
    const slow = `${prefix}000000000028`;
    try {
      await sql`select user_sync.reconcile(false, 'test')`;
      await seedMissing(sql, prefix, 50);
      // The batch takes its time on a later user of the same statement (an app's trigger),
      // the profile of `changed` inserted and not committed.
      const slowProfile = {
        name: "test_slow_profile",
        level: "row" as const,
        body: `
          if new.id = '${slow}' then perform pg_sleep(0.6); end if;
          return new;`,
      };
      const { r, authMs } = await withProfileTrigger(sql, slowProfile, async () => {
        const running = sql.begin(async (tx) => {
          await tx`set local user_sync.reconcile_batch_rows = 100000`;
          // The rows in the table's order (no hash join, whose output order is its own), so
          // that the statement has inserted the profile of `changed` before it reaches `slow`.
          await tx`set local enable_hashjoin = off`;
          await tx`set local enable_mergejoin = off`;
          return (await tx`select user_sync.reconcile(false, 'test') as r`)[0].r as ReconcileReport;
        });
        await sleep(250);
        // Meanwhile Auth changes the phone (a key of auth.users); its trigger syncs the profile.
        const t0 = performance.now();
        await auth`update auth.users set phone = '15550005555', updated_at = now() where id = ${changed}`;
        const authMs = performance.now() - t0;
        return { r: await running, authMs }; // before 0.5.0: 40P01 deadlock detected, the call rolled back
      });
      assert.equal(r.complete, true, JSON.stringify(r));
      assert.equal(r.errors, 0, JSON.stringify(r));
      assert.ok(authMs < 2500, `the phone change waited ${Math.round(authMs)} ms`);
      assert.equal((await sql`select phone from auth.users where id = ${changed}`)[0].phone, "15550005555");
      assert.equal(
        (await sql`select phone from public.users where id = ${changed}`)[0]?.phone,
        "15550005555",
        "the profile has the new phone",
      );
      assert.equal(await countProfiles(sql, prefix), 50);
      assert.equal(
        (await sql`select count(*)::int as n from user_sync.errors
                   where user_id::text like ${prefix + "%"} and resolved_at is null`)[0].n,
        0,
        "no open error",
      );
    } finally {
      await cleanup(sql, prefix);
      await sql`select user_sync.reconcile(false, 'test')`;
      await Promise.all([sql.end({ timeout: 1 }), auth.end({ timeout: 1 })]);
    }
  },
});

Deno.test({
  ...integration,
  name:
    "Auth's hard deletes racing a bounded heal never derail it: it completes, every survivor healed, no failure recorded",
  async fn() {
    const sql = adminDb(2);
    const auth = adminDb(1);
    const prefix = "4ea30000-0000-4000-8000-";
    const n = 20_000;
    let racing = true;
    const deleted: string[] = [];
    try {
      await sql`select user_sync.reconcile(false, 'test')`;
      await seedMissing(sql, prefix, n);
      const deleter = (async () => {
        while (racing) {
          const g = 1 + Math.floor(Math.random() * n);
          const id = `${prefix}${g.toString(16).padStart(12, "0")}`;
          await auth`delete from auth.users where id = ${id}`;
          deleted.push(id);
          await sleep(20);
        }
      })();
      const report = await driveHeal({
        budgetMs: 120_000,
        callMs: 200,
        call: async (maxMs) => {
          const [{ r }] =
            await sql`select user_sync.reconcile(false, 'test', ${maxMs}::integer) as r`;
          return r as ReconcileReport;
        },
      });
      racing = false;
      await deleter;
      assert.equal(report.complete, true, JSON.stringify(report));
      const errors =
        await sql`select user_id::text as id, sqlstate from user_sync.errors where source = 'reconcile' and user_id::text like ${
          prefix + "%"
        }`;
      // A user deleted during the heal is skipped by the batch that meets it, not a failure.
      assert.deepEqual(errors.map((e) => [e.id, e.sqlstate]), []);
      const [{ survivors }] = await sql.unsafe(
        `select count(*)::int as survivors from auth.users where id::text like '${prefix}%'`,
      );
      // The next pass heals whatever a delete interrupted; then all is in sync.
      await sql`select user_sync.reconcile(false, 'test')`;
      assert.equal(await countProfiles(sql, prefix), survivors);
      const after = await syncStatus(sql);
      assert.deepEqual([after.missing, after.drifted, after.orphaned], [0, 0, 0]);
      figures("heal: hard deletes racing a heal", {
        users: n,
        deletes: deleted.length,
        calls: report.calls,
        isolated_failures: errors.length,
        longest_call_ms: report.longest_call_ms,
      });
    } finally {
      racing = false;
      await cleanup(sql, prefix);
      await Promise.all([sql.end({ timeout: 1 }), auth.end({ timeout: 1 })]);
    }
  },
});

Deno.test({
  ...integration,
  name:
    "while a bounded call runs, Auth's hard delete and phone change of users it wrote wait at most 2.5 s",
  async fn() {
    const sql = adminDb(2);
    const a = adminDb(1);
    const b = adminDb(1);
    // The lowest ids of the table: the first batch of a new pass holds them.
    const prefix = "00000ea4-0000-4000-8000-";
    try {
      await sql`select user_sync.reconcile(false, 'test')`;
      await seedMissing(sql, prefix, 60_000);
      const first = `${prefix}000000000001`;
      const second = `${prefix}000000000002`;
      // Start a pass whose first batch holds our two users (theirs are the lowest ids).
      await sql`delete from user_sync.reconcile_progress`;
      const t0 = performance.now();
      const running = (async () =>
        await sql`select user_sync.reconcile(false, 'test', 1000) as r`)();
      // Wait until the call has written the two profiles (uncommitted: it holds them).
      await waitFor("the call to write its first batch", 10_000, async () => {
        const [row] =
          await a`select 1 from pg_stat_activity where query like '%user_sync.reconcile(false, ''test'', 1000)%' and backend_xid is not null and pid <> pg_backend_pid()`;
        return row ? true : undefined;
      }, 5);
      await sleep(400); // its first batches are written (and held) by now; it runs 1 s
      const timed = async (q: () => Promise<unknown>) => {
        const s = performance.now();
        await q();
        return performance.now() - s;
      };
      const [deleteMs, phoneMs] = await Promise.all([
        timed(() => a`delete from auth.users where id = ${first}`),
        timed(
          () =>
            b`update auth.users set phone = '15550001234', updated_at = now() where id = ${second}`,
        ),
      ]);
      const [{ r }] = await running;
      const callMs = performance.now() - t0;
      assert.ok(deleteMs <= 2500, `hard delete waited ${Math.round(deleteMs)} ms`);
      assert.ok(phoneMs <= 2500, `phone change waited ${Math.round(phoneMs)} ms`);
      assert.ok(callMs <= 1000 + 1500, `the call took ${Math.round(callMs)} ms`);
      assert.equal(
        (await sql`select count(*)::int as n from public.users where id = ${first}`)[0].n,
        0,
      );
      assert.equal(
        (await sql`select phone from public.users where id = ${second}`)[0]?.phone,
        "15550001234",
        "the phone change reached the profile",
      );
      figures("heal: Auth writes waiting on a bounded call", {
        hard_delete_wait_ms: Math.round(deleteMs),
        phone_change_wait_ms: Math.round(phoneMs),
        call_ms: Math.round(callMs),
        call_inserted: r.inserted,
      });
    } finally {
      await cleanup(sql, prefix);
      await sql`select user_sync.reconcile(false, 'test')`;
      await Promise.all([sql.end({ timeout: 1 }), a.end({ timeout: 1 }), b.end({ timeout: 1 })]);
    }
  },
});

Deno.test({
  ...integration,
  name:
    "the heal command: JSON lines off a terminal, Ctrl-C stops between calls, a second run continues to completion",
  async fn() {
    const sql = adminDb(2);
    const prefix = "4ea50000-0000-4000-8000-";
    const n = 30_000;
    try {
      await sql`select user_sync.reconcile(false, 'test')`;
      await seedMissing(sql, prefix, n);
      const heal = () =>
        new Deno.Command(`${ROOT}node_modules/.bin/deno`, {
          args: [
            "run",
            "--allow-all",
            `${ROOT}scripts/heal.ts`,
            "--db-url",
            localDbUrl(),
            "--call-ms",
            "100",
          ],
          stdout: "piped",
          stderr: "piped",
        }).spawn();
      // First run: interrupted after its first progress line.
      const p1 = heal();
      const lines: { event: string; inserted: number }[] = [];
      const reader = p1.stdout.pipeThrough(new TextDecoderStream()).getReader();
      let buf = "";
      let signalled = false;
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += value;
        let i;
        while ((i = buf.indexOf("\n")) >= 0) {
          lines.push(JSON.parse(buf.slice(0, i)));
          buf = buf.slice(i + 1);
          if (!signalled) {
            p1.kill("SIGINT");
            signalled = true;
          }
        }
      }
      const s1 = await p1.status;
      await p1.stderr.cancel();
      const progress = lines.filter((l) => l.event === "heal progress");
      assert.ok(progress.length >= 1);
      for (const k of ["examined", "total", "rate", "eta_seconds", "calls"]) {
        assert.ok(k in progress[0], `progress line has ${k}`);
      }
      const end1 = lines[lines.length - 1];
      assert.equal(end1.event, "heal stopped", JSON.stringify(end1));
      assert.equal(s1.code, 3, "a stopped heal exits 3");
      const kept = await countProfiles(sql, prefix);
      assert.equal(kept, end1.inserted, "what the stopped run reported is in the table");
      assert.ok(kept < n);

      // Second run: continues the same pass to the end.
      const out2 = await heal().output();
      assert.equal(out2.code, 0, new TextDecoder().decode(out2.stderr));
      const lines2 = new TextDecoder().decode(out2.stdout).trim().split("\n").map((l) =>
        JSON.parse(l)
      );
      const end2 = lines2[lines2.length - 1];
      assert.equal(end2.event, "heal complete");
      assert.equal(
        end1.inserted + end2.inserted,
        n,
        "the two runs inserted every profile once between them",
      );
      assert.equal(await countProfiles(sql, prefix), n);
    } finally {
      await cleanup(sql, prefix);
      await sql.end({ timeout: 1 });
    }
  },
});

testNoSecretsLogged(t, "sync-all");
