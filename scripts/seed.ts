// Demo/benchmark data: signs N users up through the local Auth stand-in with
// supabase-js, with realistic provider-shaped metadata (email/password sign-ups,
// Google, GitHub, Azure, Discord, Apple without a name, phone-only, anonymous), so
// that the real trigger creates every profile. Needs `npm start` running.
//   npm run seed -- --users 1000 [--concurrency 8] [--url http://127.0.0.1:54321]
import { createClient } from "@supabase/supabase-js";
import { parseArgs } from "node:util";
import { apiKey, localApiPort } from "../platform/local.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    users: { type: "string", default: "100" },
    concurrency: { type: "string", default: "8" },
    url: { type: "string", default: `http://127.0.0.1:${localApiPort()}` },
  },
});
const total = Number(values.users);
const concurrency = Number(values.concurrency);
if (!Number.isInteger(total) || total < 1 || !Number.isInteger(concurrency) || concurrency < 1) {
  console.error("usage: npm run seed -- --users N [--concurrency C] [--url URL]");
  Deno.exit(2);
}

const url = values.url!;
const serviceKey = await apiKey("service_role");
const anonKey = await apiKey("anon");
const admin = createClient(url, serviceKey, { auth: { persistSession: false, autoRefreshToken: false } });

const FIRST = ["Ada", "Grace", "Alan", "Katherine", "Linus", "Margaret", "Dennis", "Barbara", "Ken", "Radia", "Zoë", "José", "Åsa", "美咲", "Mirjam"];
const LAST = ["Lovelace", "Hopper", "Turing", "Johnson", "Torvalds", "Hamilton", "Ritchie", "Liskov", "Thompson", "Perlman", "Müller", "Núñez", "Øberg", "佐藤", "Cohen"];
const run = crypto.randomUUID().slice(0, 8);
const pick = <T>(a: T[], i: number) => a[i % a.length];

type Job = () => Promise<unknown>;
function jobFor(i: number): Job {
  const first = pick(FIRST, i * 7), last = pick(LAST, i * 11), full = `${first} ${last}`;
  const handle = `${first}.${last}.${run}.${i}`.toLowerCase().replace(/[^a-z0-9.]/g, "x");
  const oauth = (provider: string, userMeta: Record<string, unknown>, email = `${handle}@example.com`) => async () => {
    const { error } = await admin.auth.admin.createUser({
      email,
      email_confirm: true,
      user_metadata: { iss: `https://${provider}.example`, sub: String(100000 + i), email, email_verified: true, provider_id: String(100000 + i), ...userMeta },
      app_metadata: { provider, providers: [provider] },
    });
    if (error) throw error;
  };
  switch (i % 9) {
    case 0:
    case 1: // email + password, through the public sign-up endpoint
      return async () => {
        const client = createClient(url, anonKey, { auth: { persistSession: false, autoRefreshToken: false } });
        const { error } = await client.auth.signUp({ email: `${handle}@example.com`, password: `pw-${run}-${i}-Aa1!`, options: { data: i % 2 ? { full_name: full } : {} } });
        if (error) throw error;
      };
    case 2:
      return oauth("google", { name: full, full_name: full, picture: `https://lh3.googleusercontent.com/a/${handle}`, avatar_url: `https://lh3.googleusercontent.com/a/${handle}` });
    case 3:
      return oauth("github", { user_name: handle.split(".")[0], preferred_username: handle.split(".")[0], avatar_url: `https://avatars.githubusercontent.com/u/${100000 + i}?v=4`, ...(i % 2 ? { full_name: full, name: full } : {}) });
    case 4:
      return oauth("azure", { given_name: first, family_name: last, custom_claims: { tid: "9188040d-6c67-4c5b-b112-36a304b66dad" } });
    case 5:
      return oauth("discord", { name: `${first.toLowerCase()}#0`, full_name: first.toLowerCase(), avatar_url: `https://cdn.discordapp.com/avatars/${i}/a.png`, custom_claims: { global_name: first } });
    case 6:
      return oauth("apple", { custom_claims: { is_private_email: true } }, `${handle.replace(/\./g, "")}@privaterelay.appleid.com`);
    case 7: // phone-only
      return async () => {
        const { error } = await admin.auth.admin.createUser({ phone: `1555${String(i).padStart(7, "0")}${run.slice(0, 2).replace(/\D/g, "0")}`.slice(0, 15), phone_confirm: true });
        if (error) throw error;
      };
    default: // anonymous
      return async () => {
        const client = createClient(url, anonKey, { auth: { persistSession: false, autoRefreshToken: false } });
        const { error } = await client.auth.signInAnonymously();
        if (error) throw error;
      };
  }
}

const started = performance.now();
let next = 0, created = 0, failed = 0;
const failures = new Map<string, number>();
await Promise.all(Array.from({ length: Math.min(concurrency, total) }, async () => {
  while (next < total) {
    const i = next++;
    try {
      await jobFor(i)();
      created++;
    } catch (e) {
      failed++;
      const key = e instanceof Error ? e.message : String(e);
      failures.set(key, (failures.get(key) ?? 0) + 1);
    }
    if ((created + failed) % 500 === 0) console.log(JSON.stringify({ event: "seed progress", created, failed }));
  }
}));
const ms = Math.round(performance.now() - started);
console.log(JSON.stringify({
  event: "seed done", created, failed, duration_ms: ms, per_second: Math.round((created / ms) * 1000),
  failures: Object.fromEntries(failures),
}));
if (failed > 0) Deno.exit(1);
