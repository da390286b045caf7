// Property-based tests of the trigger and the field rules (fast-check): arbitrary
// raw_user_meta_data / raw_app_meta_data (non-objects, huge strings, control
// characters, right-to-left text, nulls, wrong types) never make a sync fail, and
// the profile always equals an independent model of the SPEC's field rules.
// Every case runs in a transaction that is rolled back.
import fc from "fast-check";
import assert from "node:assert/strict";
import { connect, inRolledBackTx, insertAuthUser } from "../_support/db.ts";

const RUNS = Number(Deno.env.get("USER_SYNC_PROPERTY_RUNS") ?? "200");
const NAME_MAX = 200;

// ---- the model: SPEC §2 field rules, written independently of the SQL ----------
const TO_SPACE = new Set([..."\t\n\r\u000b\u000c\u0085\u2028\u2029"]);
const isRemoved = (c: string) => {
  const cp = c.codePointAt(0)!;
  return (cp <= 0x1f || (cp >= 0x7f && cp <= 0x9f) || (cp >= 0x200b && cp <= 0x200f) ||
    (cp >= 0x202a && cp <= 0x202e) || cp === 0x2060 || (cp >= 0x2066 && cp <= 0x2069) || cp === 0xfeff) &&
    !TO_SPACE.has(c);
};
const WS = new Set([..." \u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u202f\u205f\u3000"]);
function clean(s: string): string {
  const chars = [...s].filter((c) => !isRemoved(c)).map((c) => (TO_SPACE.has(c) ? " " : c));
  let a = 0, b = chars.length;
  while (a < b && WS.has(chars[a])) a++;
  while (b > a && WS.has(chars[b - 1])) b--;
  return chars.slice(a, b).join("");
}
const str = (m: unknown, k: string): string | null => {
  if (m === null || typeof m !== "object" || Array.isArray(m)) return null;
  const v = (m as Record<string, unknown>)[k];
  return typeof v === "string" ? v : null;
};
export function expectedName(meta: unknown, email: string | null): string | null {
  const given = [str(meta, "given_name"), str(meta, "family_name")].filter((x) => x !== null).join(" ");
  const candidates = [
    str(meta, "full_name"), str(meta, "name"), given, str(meta, "user_name"),
    str(meta, "preferred_username"), str(meta, "nickname"), email === null ? null : email.split("@")[0],
  ];
  for (const c of candidates) {
    if (c === null) continue;
    const v = clean(c);
    if (v !== "") {
      const cut = [...v].slice(0, NAME_MAX).join("");
      let chars = [...cut];
      while (chars.length && WS.has(chars[chars.length - 1])) chars = chars.slice(0, -1);
      return chars.length ? chars.join("") : null;
    }
  }
  return null;
}
const URL_OK = /^https?:\/\/[^\s\p{Cc}"'<>]+$/iu; // no markup: the rule of a hand edit
export function expectedAvatar(meta: unknown): string | null {
  for (const k of ["avatar_url", "picture"]) {
    const v = str(meta, k)?.replace(/^ +| +$/g, "");
    if (v && [...v].length <= 2048 && URL_OK.test(v)) return v;
  }
  return null;
}
export function expectedRole(app: unknown): string {
  const r = str(app, "role");
  return r === "admin" || r === "user" ? r : "user";
}

// ---- generators ----------------------------------------------------------------
// PostgreSQL text cannot hold U+0000, so neither can auth.users: it is left out.
const noNul = (s: string) => s.replaceAll("\u0000", "");
const nasty = fc.oneof(
  fc.string({ unit: "binary", maxLength: 40 }).map(noNul),
  fc.string({ unit: "grapheme", maxLength: 40 }),
  fc.constantFrom(" ", "\u202eevil\u202c", "מרים כהן", "\t\n", "\u200b", "Zoë Ñandú", "   a   ", "\u0007x", "a\u0085b\u2028c\u000bd\u00a0"),
  fc.string({ minLength: 300, maxLength: 5000 }).map(noNul),
  fc.constantFrom(
    "https://example.com/a.png",
    "javascript:alert(1)",
    "http://x/ y",
    "HTTPS://CDN.EXAMPLE/x",
    'https://x.example/a"onerror="alert(1)',
    "https://x.example/<b>",
  ),
);
const value = fc.oneof(
  { weight: 5, arbitrary: nasty },
  { weight: 1, arbitrary: fc.integer() },
  { weight: 1, arbitrary: fc.constant(null) },
  { weight: 1, arbitrary: fc.boolean() },
  { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 3 }) },
);
const keys = ["full_name", "name", "given_name", "family_name", "user_name", "preferred_username", "nickname",
  "avatar_url", "picture", "role", "email"];
const metaObject = fc.dictionary(fc.constantFrom(...keys), value, { maxKeys: 8 });
const userMeta = fc.oneof(
  { weight: 6, arbitrary: metaObject },
  { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 4 }) }, // arrays, scalars, null, deep nesting
);
const appMeta = fc.oneof(
  { weight: 4, arbitrary: fc.record({
    provider: fc.oneof(fc.constantFrom("email", "google", "github", "phone"), value),
    providers: fc.oneof(fc.array(fc.oneof(fc.constantFrom("email", "google"), value), { maxLength: 4 }), value),
    role: fc.oneof(fc.constantFrom("admin", "user", "superuser", "ADMIN"), value),
  }, { requiredKeys: [] }) },
  { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 3 }) },
);
const email = fc.oneof(
  fc.constant(null),
  fc.tuple(fc.string({ unit: "grapheme", minLength: 1, maxLength: 30 }), fc.uuid())
    .map(([local, u]) => `${noNul(local).replaceAll("@", "")}.${u.slice(0, 8)}@example.com`),
);

Deno.test("any metadata: sign-up succeeds, no error is recorded, the profile follows the field rules", async () => {
  const sql = connect();
  let cases = 0;
  try {
    await fc.assert(
      fc.asyncProperty(fc.uuid({ version: 4 }), email, userMeta, appMeta, async (id, mail, meta, app) => {
        cases++;
        await inRolledBackTx(sql, async (tx) => {
          await insertAuthUser(tx, { id, email: mail, userMeta: meta, appMeta: app });
          const [p] = await tx`select name, avatar_url, role, email from public.users where id = ${id}`;
          const [{ n }] = await tx`select count(*)::int as n from user_sync.errors where user_id = ${id}`;
          assert.equal(n, 0, "no sync error recorded");
          assert.ok(p, "the profile exists");
          assert.equal(p.email, mail === "" ? null : mail);
          assert.equal(p.name, expectedName(meta, mail));
          if (p.name !== null) {
            assert.ok([...p.name].length <= NAME_MAX, "name is bounded");
            assert.ok(!/[\p{Cc}\u202a-\u202e\u2066-\u2069]/u.test(p.name), "name has no control characters");
          }
          assert.equal(p.avatar_url, expectedAvatar(meta));
          assert.equal(p.role, expectedRole(app));
        });
      }),
      { numRuns: RUNS },
    );
  } finally {
    await sql.end();
  }
  console.log(JSON.stringify({ property: "sign-up field rules", cases }));
});

Deno.test("any metadata update (sign-in merge, updateUser): the update succeeds and the profile follows", async () => {
  const sql = connect();
  let cases = 0;
  try {
    await fc.assert(
      fc.asyncProperty(fc.uuid({ version: 4 }), userMeta, appMeta, async (id, meta, app) => {
        cases++;
        await inRolledBackTx(sql, async (tx) => {
          const mail = `upd.${id.slice(0, 8)}@example.com`;
          await insertAuthUser(tx, { id, email: mail, userMeta: { full_name: "Before" }, appMeta: { provider: "email" } });
          await tx`set local role supabase_auth_admin`;
          await tx`set local search_path = auth`;
          await tx`update users set raw_user_meta_data = ${tx.json(meta as never)}, raw_app_meta_data = ${tx.json(app as never)},
                    last_sign_in_at = now() where id = ${id}`;
          await tx`reset role`;
          const [p] = await tx`select name, avatar_url, role from public.users where id = ${id}`;
          const [{ n }] = await tx`select count(*)::int as n from user_sync.errors where user_id = ${id}`;
          assert.equal(n, 0);
          assert.equal(p.name, expectedName(meta, mail));
          assert.equal(p.avatar_url, expectedAvatar(meta));
          assert.equal(p.role, expectedRole(app));
        });
      }),
      { numRuns: RUNS },
    );
  } finally {
    await sql.end();
  }
  console.log(JSON.stringify({ property: "update field rules", cases }));
});
