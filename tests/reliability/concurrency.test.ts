// Concurrency soak: for USER_SYNC_SOAK_SECONDS (default 30), all at once and against
// the same rows:
//   - 8 overlapping sync-all callers (POST, secret key, over HTTP)
//   - 4 sign-up writers (supabase-js signUp through the Auth stand-in, with both Auth
//     hooks calling auth-webhook; every 4th through the create-user function)
//   - a metadata updater and an email updater (Auth admin API)
//   - soft deletes and hard deletes (Auth admin API)
//   - 2 profile editors and 1 admin changing roles through the Data API roles
//     (PostgREST's way: `authenticator`, `set local role authenticated`,
//     request.jwt.claims, one query string per transaction)
//   - a saboteur changing and deleting profiles behind the system's back (as the SQL
//     editor could), so that the reconciles have real work to race with
// Afterwards: no profile diverged without an open user_sync.errors row explaining it
// (only the saboteur's victims may differ), one sync-all later user_sync.status()
// shows 0 missing / orphaned / drifted, no caller saw a failure (in particular no
// duplicate key, deadlock or serialization error), and no profile edit was lost.
import assert from "node:assert/strict";
import { connect } from "../_support/db.ts";
import {
  assertNoSecretsLogged,
  call,
  captured,
  client,
  integration,
  password,
  serviceHeaders,
  testStack,
} from "../functions/_helpers.ts";
import { adminDb, envInt, figures, sleep, syncStatus } from "./_shared.ts";

const SOAK_SECONDS = envInt("USER_SYNC_SOAK_SECONDS", 30);
const SYNC_CALLERS = 8;
const SIGNUP_WRITERS = 4;
const SEED_USERS = 60;
const DOMAIN = `soak-${crypto.randomUUID().slice(0, 8)}.example.test`;

type Group = "edit" | "sabotage";
interface SoakUser {
  id: string;
  group: Group;
  state: "live" | "soft" | "gone";
  /** an editor or a deleter is working on this user (one at a time) */
  busy: boolean;
  /** a delete was sent: Auth may answer 404 to others from now on */
  dying: boolean;
  /** the last Data API edit that returned the row */
  lastName?: string;
  lastAvatar?: string;
  lastRole?: string;
  edits: number;
}

interface Failure {
  actor: string;
  what: string;
  status?: number;
  code?: string;
  message?: string;
}

/** The SQLSTATEs that must never reach a caller. */
const FORBIDDEN = /23505|40P01|40001|duplicate key|deadlock|could not serialize/i;

const t = testStack();

Deno.test({
  ...integration,
  name:
    `${SOAK_SECONDS} s soak: ${SYNC_CALLERS} overlapping sync-all, ${SIGNUP_WRITERS} sign-up writers, metadata and email updates, soft and hard deletes, Data API edits: nothing diverges silently, nothing lost, no caller sees a conflict`,
  async fn() {
    const stack = await t.stack();
    const admin = adminDb(2);
    // PostgREST connects as `authenticator` and switches role per request.
    const dataApi = connect("authenticator", { max: 4, app: "user-sync-soak-data-api" });
    // Supabase Auth's own connection (search_path auth), for writes made the way it makes them.
    const authDb = connect("supabase_auth_admin", { max: 2, app: "user-sync-soak-auth" });
    const service = client(stack, "service");
    const users: SoakUser[] = [];
    const byId = new Map<string, SoakUser>();
    const sabotaged = new Set<string>();
    const failures: Failure[] = [];
    const ops: Record<string, number> = {};
    const runs = { ok: 0, errors: 0, skipped: 0, other: 0 };
    let stop = false;
    let seq = 0;
    const [{ last_run: lastRun }] =
      await admin`select coalesce(max(id), 0)::int as last_run from user_sync.runs`;

    const count = (actor: string) => (ops[actor] = (ops[actor] ?? 0) + 1);
    const fail = (f: Failure) => failures.push(f);
    const rand = <T>(xs: T[]): T | undefined => xs[Math.floor(Math.random() * xs.length)];
    const pick = (pred: (u: SoakUser) => boolean) => rand(users.filter(pred));
    const add = (id: string) => {
      const u: SoakUser = {
        id,
        group: users.length % 3 === 2 ? "sabotage" : "edit",
        state: "live",
        busy: false,
        dying: false,
        edits: 0,
      };
      users.push(u);
      byId.set(id, u);
    };
    const q = (s: string) => `'${s.replaceAll("'", "''")}'`;
    const claims = (sub: string) =>
      q(JSON.stringify({ sub, role: "authenticated", aud: "authenticated", aal: "aal1" }));

    /** One PostgREST-style request: its own transaction, one query string. */
    async function dataApiUpdate(sub: string, set: string, id: string) {
      const results = await dataApi.unsafe(
        `set local role authenticated;
         select set_config('request.jwt.claims', ${claims(sub)}, true);
         update public.users set ${set} where id = ${q(id)} returning name, avatar_url, role`,
      ) as unknown as Record<string, unknown>[][];
      return results[2];
    }

    // ---- an admin (role through app_metadata, by the service role) ------------------
    const adminUser = await service.auth.admin.createUser({
      email: `soak-admin@${DOMAIN}`,
      password: password(),
      email_confirm: true,
      app_metadata: { role: "admin" },
    });
    assert.equal(adminUser.error, null);
    const adminId = adminUser.data.user!.id;

    // ---- a starting population --------------------------------------------------------
    await Promise.all(Array.from({ length: 4 }, async () => {
      while (users.length < SEED_USERS) {
        const n = ++seq;
        const { data, error } = await service.auth.admin.createUser({
          email: `seed-${n}@${DOMAIN}`,
          email_confirm: true,
          user_metadata: { full_name: `Seed ${n}` },
        });
        if (error) throw error;
        add(data.user!.id);
      }
    }));

    // ---- the actors ---------------------------------------------------------------------
    const loop = (actor: string, pauseMs: number, body: () => Promise<unknown>) =>
      (async () => {
        while (!stop) {
          try {
            await body();
          } catch (err) {
            const e = err as { code?: string; message?: string; status?: number };
            fail({ actor, what: "threw", code: e.code, status: e.status, message: e.message });
          }
          if (pauseMs) await sleep(Math.random() * pauseMs);
        }
      })();

    const actors: Promise<void>[] = [];
    for (let i = 0; i < SYNC_CALLERS; i++) {
      actors.push(loop("sync-all", 300, async () => {
        const res = await call(stack, "sync-all", {
          method: "POST",
          headers: serviceHeaders(stack),
          json: {},
        });
        count("sync-all");
        if (res.status !== 200) {
          return fail({
            actor: "sync-all",
            what: "POST",
            status: res.status,
            code: res.body?.error?.code,
            message: JSON.stringify(res.body).slice(0, 300),
          });
        }
        if (res.body.skipped) runs.skipped++;
        else if (res.body.status === "ok") runs.ok++;
        else if (res.body.status === "errors") runs.errors++;
        else runs.other++;
      }));
    }
    for (let i = 0; i < SIGNUP_WRITERS; i++) {
      actors.push(loop("sign-up", 0, async () => {
        const n = ++seq;
        const email = `u-${n}@${DOMAIN}`;
        if (n % 4 === 0) {
          const res = await call(stack, "create-user", {
            method: "POST",
            headers: serviceHeaders(stack),
            json: { email, name: `Created ${n}`, avatar_url: `https://cdn.example.test/${n}.png` },
          });
          count("create-user");
          if (res.status !== 201) {
            return fail({
              actor: "create-user",
              what: email,
              status: res.status,
              code: res.body?.error?.code,
              message: JSON.stringify(res.body).slice(0, 300),
            });
          }
          return add(res.body.user.id);
        }
        const anon = client(stack);
        const { data, error } = await anon.auth.signUp({
          email,
          password: password(),
          options: {
            data: { full_name: `Signed Up ${n}`, avatar_url: `https://cdn.example.test/${n}.png` },
          },
        });
        count("sign-up");
        if (error || !data.user) {
          return fail({
            actor: "sign-up",
            what: email,
            status: error?.status,
            code: error?.code,
            message: error?.message,
          });
        }
        add(data.user.id);
      }));
    }

    /** An Auth admin call on a user that a deleter may remove meanwhile. */
    const authUpdate = async (actor: string, u: SoakUser, attrs: Record<string, unknown>) => {
      const { error } = await service.auth.admin.updateUserById(u.id, attrs);
      count(actor);
      if (error && !(error.status === 404 && u.dying)) {
        fail({ actor, what: u.id, status: error.status, code: error.code, message: error.message });
      }
    };
    actors.push(loop("metadata", 20, async () => {
      const u = pick((x) => x.state !== "gone");
      if (!u) return await sleep(20);
      const n = ++seq;
      await authUpdate("metadata", u, {
        user_metadata: { full_name: `Meta ${n}`, avatar_url: `https://cdn.example.test/m${n}.png` },
      });
    }));
    actors.push(loop("email", 20, async () => {
      const u = pick((x) => x.state === "live");
      if (!u) return await sleep(20);
      await authUpdate("email", u, { email: `moved-${++seq}@${DOMAIN}` });
    }));
    const deleter = (actor: string, soft: boolean) =>
      loop(actor, 400, async () => {
        const u = pick((x) => !x.busy && (soft ? x.state === "live" : x.state !== "gone"));
        if (!u) return;
        u.busy = true;
        u.dying = !soft;
        try {
          const { error } = await service.auth.admin.deleteUser(u.id, soft);
          count(actor);
          if (error) {
            return fail({
              actor,
              what: u.id,
              status: error.status,
              code: error.code,
              message: error.message,
            });
          }
          u.state = soft ? "soft" : "gone";
        } finally {
          u.busy = false;
        }
      });
    actors.push(deleter("soft delete", true), deleter("hard delete", false));

    // Profile edits through the Data API: a user edits their own name (and avatar).
    for (let i = 0; i < 2; i++) {
      actors.push(loop("profile edit", 10, async () => {
        const u = pick((x) => !x.busy && x.state === "live" && x.group === "edit");
        if (!u) return await sleep(20);
        u.busy = true;
        try {
          const name = `Edited ${++seq}`;
          const avatar = seq % 3 === 0 ? `https://img.example.test/e${seq}.png` : undefined;
          let rows: Record<string, unknown>[];
          try {
            rows = await dataApiUpdate(
              u.id,
              `name = ${q(name)}${avatar ? `, avatar_url = ${q(avatar)}` : ""}`,
              u.id,
            );
          } catch (err) {
            const e = err as { code?: string; message?: string };
            return fail({ actor: "profile edit", what: u.id, code: e.code, message: e.message });
          } finally {
            count("profile edit");
          }
          if (rows.length !== 1) {
            return fail({
              actor: "profile edit",
              what: u.id,
              message: `the update returned ${rows.length} rows`,
            });
          }
          u.lastName = name;
          if (avatar) u.lastAvatar = avatar;
          u.edits++;
        } finally {
          u.busy = false;
        }
      }));
    }
    // An admin changes roles through the Data API (written back to app_metadata).
    actors.push(loop("role change", 50, async () => {
      const u = pick((x) => !x.busy && x.state === "live" && x.group === "edit");
      if (!u) return await sleep(20);
      u.busy = true;
      try {
        const role = u.lastRole === "admin" ? "user" : "admin";
        let rows: Record<string, unknown>[];
        try {
          rows = await dataApiUpdate(adminId, `role = ${q(role)}`, u.id);
        } catch (err) {
          const e = err as { code?: string; message?: string };
          return fail({ actor: "role change", what: u.id, code: e.code, message: e.message });
        } finally {
          count("role change");
        }
        if (rows.length !== 1) {
          return fail({
            actor: "role change",
            what: u.id,
            message: `the update returned ${rows.length} rows`,
          });
        }
        u.lastRole = role;
      } finally {
        u.busy = false;
      }
    }));
    // The collision an admin and Auth make on one user: a role change through the Data
    // API (profile row, then written back to auth.users) at the same instant as an Auth
    // update of that user (auth.users row, then the profile through the trigger).
    actors.push(loop("role vs auth", 30, async () => {
      const u = pick((x) => !x.busy && x.state === "live" && x.group === "edit");
      if (!u) return await sleep(20);
      u.busy = true;
      try {
        const role = u.lastRole === "admin" ? "user" : "admin";
        const n = ++seq;
        const [change, update] = await Promise.allSettled([
          dataApiUpdate(adminId, `role = ${q(role)}`, u.id),
          // what Auth's server runs on a sign-in with a metadata merge (supabase_auth_admin)
          authDb.unsafe(
            `update users set raw_user_meta_data = raw_user_meta_data || '{"full_name": "Collide ${n}"}',
                              last_sign_in_at = now(), updated_at = now()
             where id = ${q(u.id)}`,
          ),
        ]);
        count("role vs auth");
        if (change.status === "rejected") {
          const e = change.reason as { code?: string; message?: string };
          fail({ actor: "role vs auth (role)", what: u.id, code: e.code, message: e.message });
        } else if (change.value.length !== 1) {
          fail({
            actor: "role vs auth (role)",
            what: u.id,
            message: `the update returned ${change.value.length} rows`,
          });
        } else {
          u.lastRole = role;
        }
        if (update.status === "rejected") {
          const e = update.reason as { code?: string; message?: string };
          fail({ actor: "role vs auth (auth)", what: u.id, code: e.code, message: e.message });
        }
      } finally {
        u.busy = false;
      }
    }));
    // Behind the system's back (the SQL editor): profiles deleted or tampered with, an
    // orphan inserted with the foreign key bypassed (a restore, a replication slip).
    actors.push(loop("sabotage", 150, async () => {
      const u = pick((x) => x.state !== "gone" && x.group === "sabotage");
      if (!u) return;
      const kind = Math.floor(Math.random() * 3);
      if (kind === 0) {
        sabotaged.add(u.id);
        await admin`delete from public.users where id = ${u.id}`;
      } else if (kind === 1) {
        sabotaged.add(u.id);
        await admin`update public.users set email = 'tampered@evil.example', provider = 'tampered' where id = ${u.id}`;
      } else {
        const orphan = crypto.randomUUID();
        sabotaged.add(orphan);
        await admin.unsafe(
          `set local session_replication_role = replica;
           insert into public.users (id, email) values ('${orphan}', 'orphan@${DOMAIN}')`,
        );
      }
      count("sabotage");
    }));

    // A watcher samples the whole table while everything runs: at any instant, every
    // profile that differs from its auth user must show only the saboteur's doing or
    // have an open user_sync.errors row (committed with the failed sync) saying why.
    const silentSeen = new Map<string, string>();
    let samples = 0;
    // Sabotage leaves its mark (tampered email/provider, a deleted profile, an orphan);
    // any other difference is a sync that went wrong.
    // The field rules' diff query (user_sync.profile_diff_sql(), run as dynamic SQL).
    const [{ sql: diffSql }] = await admin<{ sql: string }[]>`select user_sync.profile_diff_sql() as sql`;
    type Divergence = { id: string; missing: boolean; orphaned: boolean; drifted: boolean; beyond_sabotage: boolean; explained: boolean };
    const divergence = () =>
      admin.unsafe<Divergence[]>(`
        select coalesce(d.id, d.profile_id)::text as id, d.missing, d.orphaned, d.drifted,
               d.drifted and (
                 case when p.email = 'tampered@evil.example' then d.email else p.email end,
                 case when p.provider = 'tampered' then d.provider else p.provider end,
                 p.phone, p.role, p.providers, p.is_anonymous, p.email_confirmed_at,
                 p.last_sign_in_at, p.created_at, p.deleted_at,
                 case when p.name_edited_at is null then p.name else d.name end,
                 case when p.avatar_url_edited_at is null then p.avatar_url else d.avatar_url end
               ) is distinct from (
                 d.email, d.provider, d.phone, d.role, d.providers, d.is_anonymous,
                 d.email_confirmed_at, d.last_sign_in_at, d.created_at, d.deleted_at,
                 d.name, d.avatar_url
               ) as beyond_sabotage,
               exists (select 1 from user_sync.errors e
                       where e.user_id = coalesce(d.id, d.profile_id) and e.resolved_at is null) as explained
        from (${diffSql}) d
        left join public.users p on p.id = d.profile_id
        where d.missing or d.orphaned or d.drifted`);
    const silentOf = (rows: Awaited<ReturnType<typeof divergence>>) =>
      rows.filter((d) =>
        !d.explained &&
        !(d.missing && sabotaged.has(d.id)) &&
        !(d.orphaned && sabotaged.has(d.id)) &&
        !(d.drifted && !d.beyond_sabotage && sabotaged.has(d.id))
      );
    actors.push(loop("watch", 100, async () => {
      for (const d of silentOf(await divergence())) {
        if (silentSeen.has(d.id)) continue;
        // what differs, as seen right after (for the failure message)
        const [x] = await admin`
          select (select row_to_json(p) from public.users p where p.id = ${d.id}) as profile,
                 (select to_json(user_sync.expected_profile(${d.id}))) as expected`;
        const group = byId.get(d.id)?.group ?? "unknown";
        silentSeen.set(
          d.id,
          `${d.missing ? "missing" : d.orphaned ? "orphaned" : "drifted"} (${group}${
            sabotaged.has(d.id) ? ", sabotaged" : ""
          }): ${JSON.stringify(x)}`,
        );
      }
      samples++;
    }));

    // ---- run, then stop everyone -----------------------------------------------------
    const started = performance.now();
    await sleep(SOAK_SECONDS * 1000);
    stop = true;
    await Promise.all(actors);
    const soakMs = Math.round(performance.now() - started);

    try {
      // 1. Nothing diverged silently: every difference is the saboteur's, or has an
      //    open error in user_sync.errors saying why (the fail-open path).
      const diverged = await divergence();
      const silent = silentOf(diverged);
      assert.deepEqual(silent, [], "profiles that diverged without an open error");
      assert.deepEqual(Object.fromEntries(silentSeen), {}, "silent divergence seen while running");

      // 2. One more sync-all (as the cron job would) and every count is zero.
      const final = await call(stack, "sync-all", {
        method: "POST",
        headers: serviceHeaders(stack),
        json: {},
      });
      assert.equal(final.status, 200, JSON.stringify(final.body));
      assert.equal(final.body.status, "ok");
      const status = await syncStatus(admin);
      assert.deepEqual(
        [status.missing, status.orphaned, status.drifted],
        [0, 0, 0],
        JSON.stringify(status),
      );
      const [{ open }] = await admin`
        select count(*)::int as open from user_sync.errors e
        where e.resolved_at is null and e.user_id in ${
        admin([...users.map((u) => u.id), ...sabotaged])
      }`;
      assert.equal(open, 0, "every recorded failure was healed and resolved");

      // 3. No caller saw a failure; in particular no conflict error of any kind.
      const standInErrors = captured.filter((l) => l.includes("auth stand-in: unexpected error"));
      assert.deepEqual(standInErrors, [], "Auth (stand-in) hit no database error");
      assert.deepEqual(
        failures.filter((f) => FORBIDDEN.test(`${f.code} ${f.message}`)),
        [],
        "conflict errors",
      );
      assert.deepEqual(failures, [], "failures seen by callers");
      assert.equal(runs.other, 0, "every reconcile answered ok, errors or skipped");

      // 4. No profile edit was lost: the last edit each user's Data API update returned
      //    is what the profile holds (soft-deleted users keep their edited name too).
      const edited = users.filter((u) => u.state !== "gone" && (u.lastName || u.lastRole));
      const rows = await admin`
        select p.id::text as id, p.name, p.avatar_url, p.role, p.deleted_at, au.raw_app_meta_data ->> 'role' as auth_role
        from public.users p join auth.users au on au.id = p.id
        where p.id in ${admin(edited.map((u) => u.id))}`;
      assert.equal(rows.length, edited.length, "every edited user still has a profile");
      let lost = 0;
      for (const r of rows) {
        const u = byId.get(r.id)!;
        if (u.lastName && r.name !== u.lastName) lost++;
        if (u.lastAvatar && r.avatar_url !== u.lastAvatar) lost++;
        if (
          u.lastRole && u.state === "live" && (r.role !== u.lastRole || r.auth_role !== u.lastRole)
        ) lost++;
        if (u.state === "soft") assert.ok(r.deleted_at, "soft-deleted users are marked deleted");
      }
      assert.equal(lost, 0, "lost edits");
      const gone = users.filter((u) => u.state === "gone").map((u) => u.id);
      const ghosts = gone.length
        ? await admin`select id from public.users where id in ${admin(gone)}`
        : [];
      assert.equal(ghosts.length, 0, "hard-deleted users have no profile");

      const [{ errors_recorded, sqlstates }] = await admin`
        select count(*)::int as errors_recorded, coalesce(jsonb_object_agg(s, n), '{}') as sqlstates
        from (select coalesce(sqlstate, '?') as s, count(*)::int as n from user_sync.errors e
              join user_sync.runs r on r.id = e.run_id where r.id > ${lastRun} group by 1) x`;
      const [{ trigger_notes }] = await admin`
        select coalesce(jsonb_object_agg(s, n), '{}') as trigger_notes
        from (select coalesce(sqlstate, '?') as s, count(*)::int as n from user_sync.errors
              where source = 'trigger' and user_id in ${
        admin(users.map((u) => u.id))
      } group by 1) x`;
      const totalOps = Object.values(ops).reduce((a, b) => a + b, 0);
      figures("concurrency soak", {
        seconds: SOAK_SECONDS,
        soak_ms: soakMs,
        concurrent_actors: actors.length,
        operations: totalOps,
        by_actor: ops,
        reconciles: runs,
        reconcile_per_user_errors: { count: errors_recorded, sqlstates },
        trigger_fail_open_notes_all_resolved: trigger_notes,
        users: users.length,
        edited_users_checked: rows.length,
        deleted: { soft: users.filter((u) => u.state === "soft").length, hard: gone.length },
        sabotaged: sabotaged.size,
        divergence_samples: samples,
        silent_divergence_seen: silentSeen.size,
        diverged_before_final_sync: diverged.length,
        rows_checked: status.auth_users + status.profiles + rows.length,
        caller_failures: failures.length,
        lost,
      });
      assertNoSecretsLogged(stack);
    } finally {
      const ids = users.map((u) => u.id).concat(adminId);
      await admin`delete from auth.users where id in ${admin(ids)} or email like ${"%@" + DOMAIN}`;
      await admin`delete from public.users where email = ${"orphan@" + DOMAIN}`;
      await admin`delete from user_sync.errors where user_id in ${admin([...ids, ...sabotaged])}`;
      await admin`delete from user_sync.runs where id > ${lastRun}`;
      await admin.end();
      await dataApi.end();
      await authDb.end();
      await t.close();
    }
  },
});

const COLLISIONS = envInt("USER_SYNC_COLLISIONS", 200);

Deno.test({
  ...integration,
  name:
    `an admin's role change and Auth's update of the same user at the same instant, ${COLLISIONS} times: no deadlock, both land, the profile follows`,
  async fn() {
    const admin = adminDb(2);
    const dataApi = connect("authenticator", { max: 2 });
    const authDb = connect("supabase_auth_admin", { max: 2 });
    const authDb2 = connect("supabase_auth_admin", { max: 1 });
    const adminId = crypto.randomUUID();
    const userId = crypto.randomUUID();
    const claims = JSON.stringify({ sub: adminId, role: "authenticated", aud: "authenticated" });
    const failures: string[] = [];
    try {
      await admin`
        insert into auth.users (instance_id, id, aud, role, email, raw_app_meta_data, raw_user_meta_data, created_at, updated_at)
        values ('00000000-0000-0000-0000-000000000000', ${adminId}, 'authenticated', 'authenticated',
                ${`collide-admin-${adminId}@example.test`}, '{"provider": "email", "role": "admin"}', '{}', now(), now()),
               ('00000000-0000-0000-0000-000000000000', ${userId}, 'authenticated', 'authenticated',
                ${`collide-user-${userId}@example.test`}, '{"provider": "email"}', '{}', now(), now())`;
      const started = performance.now();
      for (let i = 0; i < COLLISIONS; i++) {
        const role = i % 2 ? "user" : "admin";
        const [change, update, second] = await Promise.allSettled([
          // the Data API (PostgREST): an admin changes the user's role
          dataApi.unsafe(
            `set local role authenticated;
             select set_config('request.jwt.claims', '${claims}', true);
             update public.users set role = '${role}' where id = '${userId}' returning role`,
          ),
          // Supabase Auth: a sign-in with a metadata merge, same user, same instant
          authDb.unsafe(
            `update users set raw_user_meta_data = '{"full_name": "Collision ${i}"}',
                              last_sign_in_at = now(), updated_at = now()
             where id = '${userId}'`,
          ),
          // ... and, every other time, a second Auth write queued behind it (a token
          // refresh touching the same row), so that the role change waits behind two
          i % 2
            ? authDb2.unsafe(
              `update users set email_confirmed_at = coalesce(email_confirmed_at, now()),
                                last_sign_in_at = now(), updated_at = now()
               where id = '${userId}'`,
            )
            : Promise.resolve([]),
        ]);
        for (
          const [who, r] of [["role change", change], ["auth update", update], [
            "second auth update",
            second,
          ]] as const
        ) {
          if (r.status === "rejected") {
            const e = r.reason as { code?: string; message?: string };
            failures.push(`${i} ${who}: ${e.code} ${e.message}`);
          }
        }
        const [p] = await admin`
          select p.role, p.name, au.raw_app_meta_data ->> 'role' as auth_role
          from public.users p join auth.users au on au.id = p.id where p.id = ${userId}`;
        if (change.status === "fulfilled" && (p.role !== role || p.auth_role !== role)) {
          failures.push(`${i}: role ${p.role} / app_metadata ${p.auth_role}, expected ${role}`);
        }
        if (update.status === "fulfilled" && p.name !== `Collision ${i}`) {
          failures.push(`${i}: name ${p.name}, expected Collision ${i}`);
        }
      }
      const ms = Math.round(performance.now() - started);
      assert.deepEqual(failures, []);
      const [{ notes, open }] = await admin`
        select count(*)::int as notes, count(*) filter (where resolved_at is null)::int as open
        from user_sync.errors where user_id = ${userId}`;
      assert.equal(open, 0, "every deferred sync was completed by the role change");
      figures("role change vs Auth update", {
        collisions: COLLISIONS,
        ms,
        deadlocks: 0,
        syncs_left_to_the_role_change: notes,
        open_errors: open,
      });
    } finally {
      await admin`delete from auth.users where id in (${adminId}, ${userId})`;
      await admin`delete from user_sync.errors where user_id in (${adminId}, ${userId})`;
      await admin.end();
      await dataApi.end();
      await authDb.end();
      await authDb2.end();
    }
  },
});
