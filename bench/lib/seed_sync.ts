// The seed's approach, for comparison: an app-side bulk sync written the way the
// seed's UserSyncService.syncAuthUsersToCustomTable() works. It lists the auth users
// page by page (1,000 a page, ordered by created_at, OFFSET paging, as Supabase
// Auth's admin listUsers does), checks each user with its own query, and inserts each
// missing one with its own statement (each one a transaction, as every PostgREST call
// is). The profile fields are computed in the app, with the same rules as
// user_sync.expected_profiles_sql(), so that the result passes the same correctness check.
//
// It runs over a plain SQL connection (postgres.js, prepared statements), which is
// kinder to it than the seed's HTTP round trips through Auth and PostgREST.
import type { Sql } from "./pg.ts";

const PAGE = 1000;
const NAME_MAX = 200;
// translate() targets of the field rules: these become spaces ...
const TO_SPACE = new Set(["\t", "\n", "\r", "\u000b", "\u000c", "\u0085", "\u2028", "\u2029"]);
// ... and these go.
const DROP = new Set<string>();
for (let c = 0x01; c <= 0x1f; c++) {
  if (!TO_SPACE.has(String.fromCodePoint(c))) DROP.add(String.fromCodePoint(c));
}
for (let c = 0x7f; c <= 0x9f; c++) if (c !== 0x85) DROP.add(String.fromCodePoint(c));
for (
  const c of [
    0x200b,
    0x200c,
    0x200d,
    0x200e,
    0x200f,
    0x202a,
    0x202b,
    0x202c,
    0x202d,
    0x202e,
    0x2060,
    0x2066,
    0x2067,
    0x2068,
    0x2069,
    0xfeff,
  ]
) {
  DROP.add(String.fromCodePoint(c));
}
const WS = new Set([" ", "\u00a0", "\u1680", "\u202f", "\u205f", "\u3000"]);
for (let c = 0x2000; c <= 0x200a; c++) WS.add(String.fromCodePoint(c));
const URL_RE = /^https?:\/\/[^\s\p{Cc}]+$/iu;
const KNOWN_ROLES = new Set(["user", "admin"]);

type Json = Record<string, unknown> | unknown[] | string | number | boolean | null;

function str(meta: Json, key: string): string | null {
  if (!meta || typeof meta !== "object" || Array.isArray(meta)) return null;
  const v = (meta as Record<string, unknown>)[key];
  return typeof v === "string" ? v : null;
}

function trimSet(chars: string[], set: Set<string>, left: boolean): string[] {
  let a = 0;
  let b = chars.length;
  if (left) { while (a < b && set.has(chars[a])) a++; }
  while (b > a && set.has(chars[b - 1])) b--;
  return chars.slice(a, b);
}

function clean(x: string | null): string | null {
  if (x === null) return null;
  const out: string[] = [];
  for (const ch of x) {
    if (TO_SPACE.has(ch)) out.push(" ");
    else if (!DROP.has(ch)) out.push(ch);
  }
  const t = trimSet(out, WS, true);
  return t.length ? t.join("") : null;
}

function url(x: string | null): string | null {
  if (x === null) return null;
  const t = x.replace(/^ +| +$/g, "");
  return [...t].length <= 2048 && URL_RE.test(t) ? t : null;
}

export interface AuthRow {
  id: string;
  email: string | null;
  phone: string | null;
  raw_user_meta_data: Json;
  raw_app_meta_data: Json;
  is_anonymous: boolean | null;
  created_at: string | null;
  email_confirmed_at: string | null;
  last_sign_in_at: string | null;
  deleted_at: string | null;
}

/** The seed's "extract names from various metadata fields, set default roles". */
export function profileOf(u: AuthRow) {
  const m = u.raw_user_meta_data;
  const a = u.raw_app_meta_data;
  const given = str(m, "given_name");
  const family = str(m, "family_name");
  const givenFamily = [given, family].filter((s) => s !== null).join(" ");
  const local = u.email === null ? null : u.email.split("@")[0];
  let name: string | null = null;
  for (
    const c of [
      str(m, "full_name"),
      str(m, "name"),
      givenFamily,
      str(m, "user_name"),
      str(m, "preferred_username"),
      str(m, "nickname"),
      local,
    ]
  ) {
    name = clean(c);
    if (name !== null) break;
  }
  if (name !== null) {
    const cut = trimSet([...name].slice(0, NAME_MAX), WS, false);
    name = cut.length ? cut.join("") : null;
  }
  const role = str(a, "role");
  const providers = a && typeof a === "object" && !Array.isArray(a) &&
      Array.isArray((a as Record<string, unknown>).providers)
    ? ((a as Record<string, unknown>).providers as unknown[]).filter((p): p is string =>
      typeof p === "string"
    ).map((p) => [...p].slice(0, 200).join(""))
    : [];
  const provider = str(a, "provider");
  return {
    id: u.id,
    email: u.email === "" ? null : u.email,
    phone: u.phone === "" ? null : u.phone,
    name,
    avatar_url: url(str(m, "avatar_url")) ?? url(str(m, "picture")),
    role: role !== null && KNOWN_ROLES.has(role) ? role : "user",
    provider: provider === null ? null : [...provider].slice(0, 200).join(""),
    providers,
    is_anonymous: u.is_anonymous ?? false,
    email_confirmed_at: u.email_confirmed_at,
    last_sign_in_at: u.last_sign_in_at,
    created_at: u.created_at ?? new Date().toISOString(),
    deleted_at: u.deleted_at,
  };
}

export interface SeedSyncResult {
  listed: number;
  checked: number;
  inserted: number;
  pages: number;
  roundTrips: number;
}

/** syncAuthUsersToCustomTable(), over SQL. */
export async function seedStyleSync(sql: Sql): Promise<SeedSyncResult> {
  const r: SeedSyncResult = { listed: 0, checked: 0, inserted: 0, pages: 0, roundTrips: 0 };
  for (let page = 0;; page++) {
    // auth.admin.listUsers({ page, perPage: 1000 })
    const users = await sql<AuthRow[]>`
      select id, email, phone, raw_user_meta_data, raw_app_meta_data, is_anonymous,
             created_at::text as created_at, email_confirmed_at::text as email_confirmed_at,
             last_sign_in_at::text as last_sign_in_at, deleted_at::text as deleted_at
      from auth.users
      where instance_id = '00000000-0000-0000-0000-000000000000' and aud = 'authenticated'
      order by created_at desc
      limit ${PAGE} offset ${page * PAGE}`;
    r.pages++;
    r.roundTrips++;
    r.listed += users.length;
    for (const u of users) {
      // from('users').select('id').eq('id', user.id).single()
      const existing = await sql`select id from public.users where id = ${u.id}`;
      r.checked++;
      r.roundTrips++;
      if (existing.length === 0) {
        const p = profileOf(u);
        // from('users').insert({...})
        await sql`
          insert into public.users (id, email, phone, name, avatar_url, role, provider, providers,
            is_anonymous, email_confirmed_at, last_sign_in_at, created_at, deleted_at)
          values (${p.id}, ${p.email}, ${p.phone}, ${p.name}, ${p.avatar_url}, ${p.role}, ${p.provider},
            ${
          sql.array(p.providers)
        }::text[], ${p.is_anonymous}, ${p.email_confirmed_at}, ${p.last_sign_in_at},
            ${p.created_at}, ${p.deleted_at})`;
        r.inserted++;
        r.roundTrips++;
      }
    }
    if (users.length < PAGE) break;
  }
  return r;
}
