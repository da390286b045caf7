// Fault: the profile table is broken while 10,000 users sign up (4 concurrent
// writers, one transaction per sign-up, as Supabase Auth does). Every sign-up must
// succeed, every failure must be in user_sync.errors, and after the fix one
// reconcile heals every profile and resolves every error.
import assert from "node:assert/strict";
import { connect, insertAuthUser } from "../_support/db.ts";

const SIGNUPS = Number(Deno.env.get("USER_SYNC_FAULT_SIGNUPS") ?? "10000");
const WRITERS = 4;
const PREFIX = "fa17"; // ids fa17xxxx-... mark this test's users

Deno.test(`profile table broken during ${SIGNUPS} sign-ups: none fails, all recorded, one reconcile heals all`, async () => {
  const sql = connect("supabase_admin", { max: WRITERS + 1 });
  const ids = Array.from({ length: SIGNUPS }, (_, i) =>
    `${PREFIX}${i.toString(16).padStart(4, "0")}-0000-4000-8000-${crypto.randomUUID().slice(-12)}`);
  try {
    await sql`alter table public.users add constraint test_sabotage check (false) not valid`;

    let failed = 0;
    let next = 0;
    const started = performance.now();
    await Promise.all(Array.from({ length: WRITERS }, async () => {
      while (next < ids.length) {
        const id = ids[next++];
        try {
          await sql.begin((tx) =>
            insertAuthUser(tx, {
              id,
              email: `broken.${id}@example.com`,
              appMeta: { provider: "google", providers: ["google"] },
              userMeta: { full_name: `Broken ${id.slice(0, 8)}`, avatar_url: "https://example.com/a.png" },
            })
          );
        } catch {
          failed++;
        }
      }
    }));
    const signupMs = Math.round(performance.now() - started);

    assert.equal(failed, 0, "no sign-up failed");
    const [{ users }] = await sql`select count(*)::int as users from auth.users where id::text like ${PREFIX + "%"}`;
    assert.equal(users, SIGNUPS, "every auth user exists");
    const [{ profiles }] = await sql`select count(*)::int as profiles from public.users where id::text like ${PREFIX + "%"}`;
    assert.equal(profiles, 0, "no profile could be written");
    const [{ open, distinct_users }] = await sql`
      select count(*)::int as open, count(distinct user_id)::int as distinct_users
      from user_sync.errors where user_id::text like ${PREFIX + "%"} and resolved_at is null and source = 'trigger'`;
    assert.equal(open, SIGNUPS, "one open error per failed sync");
    assert.equal(distinct_users, SIGNUPS, "every user's failure is recorded");

    await sql`alter table public.users drop constraint test_sabotage`;
    const [{ report }] = await sql`select user_sync.reconcile(false, 'test') as report`;
    assert.equal(report.status, "ok");
    assert.ok(report.inserted >= SIGNUPS, `reconcile inserted ${report.inserted}`);
    const [{ healed }] = await sql`
      select count(*)::int as healed from public.users
      where id::text like ${PREFIX + "%"} and name like 'Broken %' and provider = 'google'`;
    assert.equal(healed, SIGNUPS, "every profile is healed with its data");
    const [{ still_open }] = await sql`
      select count(*)::int as still_open from user_sync.errors where user_id::text like ${PREFIX + "%"} and resolved_at is null`;
    assert.equal(still_open, 0, "every error is resolved");
    const [{ s }] = await sql`select user_sync.status() as s`;
    assert.deepEqual([s.missing, s.drifted, s.orphaned], [0, 0, 0]);
    console.log(JSON.stringify({ fault: "broken profile table", signups: SIGNUPS, failed_signups: failed,
      errors_recorded: open, healed, signup_ms: signupMs, reconcile_ms: report.duration_ms }));
  } finally {
    await sql`alter table public.users drop constraint if exists test_sabotage`;
    await sql`delete from auth.users where id::text like ${PREFIX + "%"}`;
    await sql`delete from user_sync.errors where user_id::text like ${PREFIX + "%"}`;
    await sql.end();
  }
});
