// Upgrade test: what a Supabase user goes through. A database runs the released v0.1.0
// (its one migration, installed with `supabase db push`) and holds live data made
// through v0.1.0's own paths: sign-ups from several providers, sign-ins, a soft delete,
// a name and avatar edited by the user through RLS, an admin, a role an admin changed,
// reconcile runs (ok, dry, skipped, failed) and open and resolved errors. Then
// `supabase db push` applies today's migrations as `postgres`, and:
//   - every row of v0.1.0 (auth.users, public.users, user_sync.errors/runs/config/roles)
//     is still there with every v0.1.0 column unchanged (new columns may be added);
//   - hand edits, admins and the soft delete hold; user_sync.version() is CHANGELOG's;
//   - the schema equals a fresh install's (scripts/lib/dump.sh, as scripts/schema-check.sh);
//   - sign-ups, metadata updates, reconcile (healing a deleted profile), status() and
//     the cron job work afterwards.
// The assertions hold for any correct upgrade: they name no column, argument or key a
// later release may add, only what v0.1.0 had and what a fresh install has.
//
// Runs on its own cluster: USER_SYNC_UPGRADE_DB_PORT (54360). npm test runs it as a step.
import assert from "node:assert/strict";
import { ROOT, cluster } from "../_support/cluster.ts";
import {
  asAuth,
  asUser,
  type AuthUserFixture,
  connect,
  insertAuthUser,
  type Sql,
} from "../_support/db.ts";
import { PORT, setupSteps } from "./_released.ts";

/** The released v0.1.0: never edited (SPEC §6). Its bytes are pinned here. */
const V010 = "20261128080000_user_sync.sql";
const V010_SHA256 = "09e012acbf9b8b2a181a279dda29d1708ff092afa9099e7fee89be394d5576d2";

type Row = Record<string, unknown>;
/** Every row of a table as JSON, by key: what the upgrade must leave alone. */
type Snapshot = Map<string, Row>;

/** The tables holding v0.1.0's data, each with the column that identifies a row. */
const TABLES: [table: string, key: string][] = [
  ["auth.users", "id"],
  ["public.users", "id"],
  ["user_sync.errors", "id"],
  ["user_sync.runs", "id"],
  ["user_sync.config", "id"],
  ["user_sync.roles", "role"],
];

async function snapshot(sql: Sql, table: string, key: string): Promise<Snapshot> {
  const rows = await sql.unsafe(`select ${key}::text as k, to_jsonb(t) as row from ${table} t`);
  return new Map(rows.map((r) => [r.k as string, r.row as Row]));
}

async function sha256(path: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", await Deno.readFile(path));
  return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

/** The current release: the first version heading of CHANGELOG.md. */
async function changelogVersion(): Promise<string> {
  const m = (await Deno.readTextFile(`${ROOT}CHANGELOG.md`)).match(/^## (\d+\.\d+\.\d+)/m);
  assert.ok(m, "CHANGELOG.md names a version");
  return m[1];
}

async function signUp(sql: Sql, u: AuthUserFixture): Promise<string> {
  await sql.begin((tx) => insertAuthUser(tx, u));
  return u.id;
}

const id = () => crypto.randomUUID();
const users = {
  email: id(),
  phone: id(),
  google: id(),
  github: id(),
  anonymous: id(),
  sso: id(),
  admin: id(),
  edited: id(),
  softDeleted: id(),
};

const app = (provider: string, extra: Row = {}) => ({ provider, providers: [provider], ...extra });
/** The sign-ups of v0.1.0's users, shaped as each provider shapes them. */
const SIGNUPS: AuthUserFixture[] = [
  { id: users.email, email: "ada@example.test", appMeta: app("email"), userMeta: { full_name: "Ada Lovelace" } },
  { id: users.phone, phone: "15550001111", appMeta: app("phone"), userMeta: {} },
  {
    id: users.google,
    email: "grace@gmail.test",
    appMeta: app("google"),
    userMeta: { full_name: "Grace Hopper", avatar_url: "https://lh3.googleusercontent.test/a/grace", email_verified: true },
  },
  {
    id: users.github,
    email: "linus@github.test",
    appMeta: app("github"),
    userMeta: { user_name: "torvalds", avatar_url: "https://avatars.githubusercontent.test/u/1024" },
  },
  { id: users.anonymous, appMeta: {}, userMeta: {}, isAnonymous: true },
  {
    id: users.sso,
    email: "ken@corp.example.test",
    appMeta: app("sso:7f3c2a10-0000-4000-8000-000000000001"),
    userMeta: { given_name: "Ken", family_name: "Thompson" },
  },
  { id: users.admin, email: "root@example.test", appMeta: app("email", { role: "admin" }), userMeta: { name: "The Admin" } },
  {
    id: users.edited,
    email: "edsger@example.test",
    appMeta: app("email"),
    userMeta: { full_name: "Edsger Dijkstra", avatar_url: "https://cdn.example.test/ed.png" },
  },
  { id: users.softDeleted, email: "gone@example.test", appMeta: app("email"), userMeta: { full_name: "Gone Soon" } },
];

/** v0.1.0's data, made through v0.1.0's own paths. */
async function liveData(sql: Sql): Promise<string[]> {
  const made: string[] = [];
  for (const u of SIGNUPS) await signUp(sql, u);
  made.push(`${SIGNUPS.length} sign-ups (email, phone, google, github, anonymous, sso; an admin)`);

  // Sign-ins and confirmations (Auth updates the row; the trigger follows).
  await asAuth(sql, (tx) => tx`
    update users set email_confirmed_at = now(), last_sign_in_at = now()
    where id in ${tx([users.email, users.google, users.github, users.sso, users.admin, users.edited])}`);
  // A soft delete: Auth sets deleted_at and obfuscates the email.
  await asAuth(sql, (tx) => tx`
    update users set deleted_at = now(), email = ${`${users.softDeleted}@deleted.invalid`}
    where id = ${users.softDeleted}`);
  made.push("sign-ins, a soft delete");

  // The user edits their own name and avatar in the app (Data API: RLS).
  const edited = await asUser(sql, users.edited, (tx) => tx`
    update public.users set name = 'Edsger W. Dijkstra', avatar_url = 'https://cdn.example.test/ewd.jpg'
    where id = ${users.edited} returning id`);
  assert.equal(edited.length, 1, "the user may edit their own profile");
  // The admin promotes the phone user (written back to raw_app_meta_data).
  const promoted = await asUser(sql, users.admin, (tx) => tx`
    update public.users set role = 'admin' where id = ${users.phone} returning id`);
  assert.equal(promoted.length, 1, "the admin may change a role");
  made.push("a hand-edited name and avatar (as the user, RLS), a role changed by the admin (RLS)");

  // Reconcile runs: ok, dry, skipped (another holds the lock), failed (a lock it cannot get).
  await sql`select user_sync.reconcile(false, 'cron')`;
  await sql`select user_sync.reconcile(true, 'manual')`;
  const holder = await sql.reserve();
  try {
    await holder`select pg_advisory_lock(hashtextextended('user_sync.reconcile', 0))`;
    const [{ r: skipped }] = await sql`select user_sync.reconcile(false, 'api') as r`;
    assert.equal(skipped.skipped, true, "a reconcile overlapping another is skipped");
    await holder`select pg_advisory_unlock(hashtextextended('user_sync.reconcile', 0))`;
    await holder`begin`;
    await holder`lock table public.users in access exclusive mode`;
    const [{ r: failed }] = await sql.begin(async (tx) => {
      await tx`set local lock_timeout = '200ms'`;
      return await tx`select user_sync.reconcile(false, 'admin') as r`;
    });
    assert.equal(failed.status, "failed", `a reconcile that cannot lock fails: ${JSON.stringify(failed)}`);
  } finally {
    await holder`rollback`.catch(() => {});
    holder.release();
  }
  made.push("reconcile runs: ok, dry run, skipped, failed");

  // Errors: one open (a failed sync recorded by a function), one resolved by a later sync.
  await sql`select user_sync.record_error(${users.google}, 'create-user', '57014', 'canceling statement due to statement timeout', 'while syncing')`;
  await sql`select user_sync.record_error(${users.github}, 'auth-webhook', '55P03', 'lock timeout', null)`;
  await sql`select user_sync.sync_user(${users.github})`;
  const [{ open, resolved }] = await sql`
    select count(*) filter (where resolved_at is null)::int as open,
           count(*) filter (where resolved_at is not null)::int as resolved
    from user_sync.errors`;
  assert.ok(open >= 1 && resolved >= 1, `open and resolved errors (${open} open, ${resolved} resolved)`);
  made.push(`errors: ${open} open, ${resolved} resolved`);
  return made;
}

Deno.test({
  name: "upgrade: v0.1.0 with live data, then today's migrations with supabase db push",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn(t) {
    const db = await cluster("pg-upgrade", PORT);
    const work = await Deno.makeTempDir({ prefix: "user-sync-v0.1.0-" });
    let sql: Sql | undefined;
    // Setup steps (install, data, upgrade): once one fails, the steps after it are not
    // run (they could only fail the same way) and the test fails.
    const { step: setup, ok } = setupSteps(t);
    try {
      await t.step(`the released v0.1.0 migration (${V010}) is byte-identical to the release`, async () => {
        assert.equal(await sha256(`${ROOT}supabase/migrations/${V010}`), V010_SHA256);
      });

      // ---- the reference: a fresh install of today's migrations ------------------------
      let fresh = "";
      let freshStatusKeys: string[] = [];
      await setup("a fresh install of today's migrations (the reference)", async () => {
        await db.db("start", "--fresh");
        await db.db("push");
        fresh = await db.dumpSchema();
        const ref = connect("supabase_admin", { port: PORT, max: 1 });
        try {
          const [{ s }] = await ref`select user_sync.status() as s`;
          freshStatusKeys = Object.keys(s).sort();
        } finally {
          await ref.end();
        }
      });

      // ---- v0.1.0, as a user installed it, with live data --------------------------------
      await setup("v0.1.0 installed alone with supabase db push", async () => {
        await db.installReleased(work, (file) => file === V010);
        sql = connect("supabase_admin", { port: PORT, max: 4, app: "user-sync-upgrade-test" });
        const [{ v }] = await sql`select to_regprocedure('user_sync.version()') as v`;
        assert.equal(v, null, "v0.1.0 has no user_sync.version()");
      });
      const admin = () => sql!;

      const before = new Map<string, Snapshot>();
      let v010StatusKeys: string[] = [];
      await setup("live data through v0.1.0's own paths", async (t) => {
        for (const what of await liveData(admin())) await t.step(what, () => {});
        for (const [table, key] of TABLES) before.set(table, await snapshot(admin(), table, key));
        const [{ s }] = await admin()`select user_sync.status() as s`;
        v010StatusKeys = Object.keys(s);
        assert.equal(s.missing, 0);
      });

      // ---- the upgrade ---------------------------------------------------------------------
      await setup("today's migrations applied by the Supabase CLI as postgres (db push)", async () => {
        const out = await db.db("push");
        assert.ok(!out.includes(V010), `db push does not apply v0.1.0 again:\n${out}`);
        const local = [...Deno.readDirSync(`${ROOT}supabase/migrations`)].filter((e) => e.name.endsWith(".sql"))
          .map((e) => e.name.split("_")[0]).sort();
        const applied = await admin()`select version from supabase_migrations.schema_migrations order by version`;
        assert.deepEqual(applied.map((r) => r.version), local, "every migration is recorded as applied");
      });

      if (!ok()) return;

      // ---- nothing of v0.1.0's data lost or changed ------------------------------------------
      for (const [table, key] of TABLES) {
        const rows = before.get(table)!;
        await t.step(`${table}: all ${rows.size} rows of v0.1.0 kept, every v0.1.0 column unchanged`, async () => {
          const after = await snapshot(admin(), table, key);
          for (const [k, old] of rows) {
            const now = after.get(k);
            assert.ok(now, `${table} ${key}=${k} is gone after the upgrade`);
            for (const column of Object.keys(old)) {
              assert.deepEqual(now[column], old[column], `${table} ${key}=${k}: ${column} changed`);
            }
          }
        });
      }

      await t.step("hand edits kept; admins still admins; the soft-deleted user still hidden", async () => {
        const [e] = await admin()`
          select name, avatar_url, name_edited_at is not null as n, avatar_url_edited_at is not null as a
          from public.users where id = ${users.edited}`;
        assert.deepEqual(e, { name: "Edsger W. Dijkstra", avatar_url: "https://cdn.example.test/ewd.jpg", n: true, a: true });
        for (const adminId of [users.admin, users.phone]) {
          const [{ role, app_role }] = await admin()`
            select p.role, au.raw_app_meta_data ->> 'role' as app_role
            from public.users p join auth.users au using (id) where p.id = ${adminId}`;
          assert.deepEqual({ role, app_role }, { role: "admin", app_role: "admin" });
        }
        const seen = await asUser(admin(), users.admin, (tx) => tx`
          select (select user_sync.is_admin()) as is_admin, count(*)::int as n from public.users`);
        const [{ total }] = await admin()`select count(*)::int as total from public.users`;
        assert.deepEqual(seen[0], { is_admin: true, n: total }, "the admin reads every profile");
        const own = await asUser(admin(), users.softDeleted, (tx) => tx`select id from public.users`);
        assert.equal(own.length, 0, "a soft-deleted user sees no profile");
      });

      await t.step("user_sync.version() is the CHANGELOG's current version", async () => {
        const [{ v }] = await admin()`select user_sync.version() as v`;
        assert.equal(v, await changelogVersion());
      });

      await t.step("the schema equals a fresh install's (pg_dump --schema-only + cron job, roles, config)", async () => {
        const upgraded = await db.dumpSchema();
        if (upgraded !== fresh) {
          await Deno.writeTextFile(`${work}/fresh.sql`, fresh);
          await Deno.writeTextFile(`${work}/upgraded.sql`, upgraded);
          const diff = await new Deno.Command("diff", {
            args: ["-u", `${work}/fresh.sql`, `${work}/upgraded.sql`],
            stdout: "piped",
          }).output();
          assert.fail(`upgraded schema differs from a fresh install's (- fresh, + upgraded):\n${new TextDecoder().decode(diff.stdout).slice(0, 6000)}`);
        }
      });

      // ---- everything works afterwards -------------------------------------------------------
      const newcomer = id();
      await t.step("a sign-up (INSERT into auth.users as supabase_auth_admin) creates the profile", async () => {
        await signUp(admin(), {
          id: newcomer,
          email: "new@example.test",
          appMeta: { provider: "github", providers: ["github"] },
          userMeta: { user_name: "newcomer" },
        });
        const [p] = await admin()`select email, name, provider, role from public.users where id = ${newcomer}`;
        assert.deepEqual(p, { email: "new@example.test", name: "newcomer", provider: "github", role: "user" });
      });

      await t.step("a metadata UPDATE syncs the profile; a hand-edited name stays", async () => {
        await asAuth(admin(), (tx) => tx`
          update users set raw_user_meta_data = raw_user_meta_data || '{"full_name": "New Comer"}'
          where id in ${tx([newcomer, users.edited])}`);
        const rows = await admin()`select id, name from public.users where id in ${admin()([newcomer, users.edited])}`;
        const name = Object.fromEntries(rows.map((r) => [r.id, r.name]));
        assert.equal(name[newcomer], "New Comer");
        assert.equal(name[users.edited], "Edsger W. Dijkstra");
      });

      await t.step("user_sync.reconcile() runs and heals a deleted profile", async () => {
        const [gone] = await admin()`delete from public.users where id = ${users.sso} returning name, email, provider`;
        const [{ r }] = await admin()`select user_sync.reconcile() as r`;
        assert.equal(r.status, "ok", JSON.stringify(r));
        assert.ok(Number(r.inserted) >= 1, `reconcile inserted the missing profile: ${JSON.stringify(r)}`);
        const [back] = await admin()`select name, email, provider from public.users where id = ${users.sso}`;
        assert.deepEqual(back, gone);
        assert.equal(back.name, "Ken Thompson");
      });

      await t.step("user_sync.status() answers every key of a fresh install's, all in sync", async () => {
        const [{ s }] = await admin()`select user_sync.status() as s`;
        assert.deepEqual(Object.keys(s).sort(), freshStatusKeys);
        for (const k of v010StatusKeys) assert.ok(k in s, `status() still answers ${k}`);
        assert.deepEqual([s.missing, s.orphaned, s.drifted], [0, 0, 0]);
      });

      await t.step("the user-sync cron job exists and is active", async () => {
        const jobs = await admin()`select active from cron.job where jobname = 'user-sync'`;
        assert.deepEqual(jobs.map((j) => j.active), [true]);
      });
    } finally {
      await sql?.end({ timeout: 2 });
      await db.stop().catch(() => {});
      await Deno.remove(work, { recursive: true }).catch(() => {});
    }
  },
});
