// Issue 11, item 2: no role change is lost to GoTrue's read-modify-write of the whole
// raw_app_meta_data (an OAuth sign-in of an existing user, admin.updateUserById).
// Real concurrent sessions: T (as supabase_auth_admin, as Auth) reads the auth user;
// an admin demotes the user through one of the three paths; T writes its old copy
// back with a provider change and commits. Two interleavings per path: the demotion
// commits before T writes, or T's write waits on the demotion's uncommitted row.
// (supabase/tests/08-role-changes.test.sql holds the single-session rules.)
import assert from "node:assert/strict";
import type postgres from "postgres";
import { figures } from "../reliability/_shared.ts";
import { connect, insertAuthUser } from "../_support/db.ts";

const ROUNDS = Number(Deno.env.get("USER_SYNC_ROLE_RACE_ROUNDS") ?? "5");
type Path = "Data API" | "Auth admin API" | "SQL editor";
type Order = "demotion commits first" | "T waits on the demotion";

/** The demotion of `target`, left uncommitted on `conn` (the caller commits). */
async function demote(conn: postgres.ReservedSql, path: Path, adminId: string, target: string) {
  await conn`begin`;
  if (path === "Data API") {
    // PostgREST: role authenticated, the admin's verified claims
    await conn`select set_config('request.jwt.claims', ${
      JSON.stringify({ sub: adminId, role: "authenticated", aud: "authenticated" })
    }, true)`;
    await conn`set local role authenticated`;
    const rows =
      await conn`update public.users set role = 'user' where id = ${target} returning role`;
    assert.equal(rows.length, 1, "the admin's Data API update reached the row");
  } else if (path === "Auth admin API") {
    // GoTrue: read the user, merge app_metadata.role in memory, write it all back
    await conn`set local role supabase_auth_admin`;
    const [{ m }] = await conn`select raw_app_meta_data as m from auth.users where id = ${target}`;
    await conn`update auth.users set raw_app_meta_data = ${
      conn.json({ ...m, role: "user" })
    }, updated_at = now() where id = ${target}`;
  } else {
    await conn`update auth.users set raw_app_meta_data = raw_app_meta_data || '{"role": "user"}' where id = ${target}`;
  }
}

Deno.test({
  name:
    "GoTrue writing back an older raw_app_meta_data never undoes a demotion (Data API, Auth admin API, SQL editor; both interleavings)",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const sql = connect("supabase_admin", { max: 6 });
    const created: string[] = [];
    const lost: string[] = [];
    let rounds = 0;
    try {
      const adminId = crypto.randomUUID();
      await sql.begin((tx) =>
        insertAuthUser(tx, {
          id: adminId,
          email: `race-admin-${adminId.slice(0, 8)}@example.test`,
          appMeta: { provider: "email", providers: ["email"], role: "admin" },
        })
      );
      created.push(adminId);
      for (const path of ["Data API", "Auth admin API", "SQL editor"] as Path[]) {
        for (const order of ["demotion commits first", "T waits on the demotion"] as Order[]) {
          for (let i = 0; i < ROUNDS; i++) {
            rounds++;
            const target = crypto.randomUUID();
            await sql.begin((tx) =>
              insertAuthUser(tx, {
                id: target,
                email: `race-${target.slice(0, 8)}@example.test`,
                appMeta: { provider: "google", providers: ["google"], role: "admin" },
              })
            );
            created.push(target);
            const t = await sql.reserve();
            const admin = await sql.reserve();
            try {
              // T reads the auth user (GoTrue, at an OAuth sign-in)
              await t`begin`;
              await t`set local role supabase_auth_admin`;
              const [{ m }] =
                await t`select raw_app_meta_data as m from auth.users where id = ${target}`;
              const tWrite = () =>
                t`update auth.users set raw_app_meta_data = ${
                  t.json({ ...m, providers: ["google", "github"] })
                }, last_sign_in_at = now(), updated_at = now() where id = ${target}`;
              await demote(admin, path, adminId, target);
              if (order === "demotion commits first") {
                await admin`commit`;
                await tWrite();
              } else {
                const pending = tWrite();
                // T is blocked on the demotion's row lock until it commits
                await new Promise((r) => setTimeout(r, 150));
                await admin`commit`;
                await pending;
              }
              await t`commit`;
            } finally {
              t.release();
              admin.release();
            }
            const [row] = await sql`
              select au.raw_app_meta_data ->> 'role' as auth_role_claim,
                     au.raw_app_meta_data -> 'providers' as providers,
                     p.role as profile_role
              from auth.users au join public.users p on p.id = au.id
              where au.id = ${target}`;
            assert.deepEqual(row.providers, ["google", "github"], "T's own change landed");
            if (row.auth_role_claim !== "user" || row.profile_role !== "user") {
              lost.push(`${path}, ${order}: ${JSON.stringify(row)}`);
            }
          }
        }
      }
      figures("role change vs GoTrue read-modify-write", { rounds, lost: lost.length });
      assert.deepEqual(lost, [], "every demotion survived");
    } finally {
      await sql`delete from auth.users where id in ${sql(created.concat(crypto.randomUUID()))}`;
      await sql.end();
    }
  },
});
