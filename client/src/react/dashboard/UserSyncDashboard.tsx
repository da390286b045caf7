// <UserSyncDashboard supabase={client} />: the User Sync admin dashboard as one component.
// Signed out: email + password sign-in. An admin (profile role `admin`): status, health,
// runs, open errors, sync buttons, users. Anyone else: only their own profile. Data for
// admins is asked for only once the signed-in user's own profile says admin, and the
// server (RLS, sync-all's caller check) refuses it to anyone else anyway.
import type { SupabaseClient } from "@supabase/supabase-js";
import { useEffect, useMemo, useState } from "react";
import { AdminView } from "./AdminView.tsx";
import { createDashboardApi, type DashboardApi, type Profile } from "./api.ts";
import { ProfileView } from "./ProfileView.tsx";
import { SignIn } from "./SignIn.tsx";
import { DASHBOARD_CSS } from "./styles.ts";

export interface UserSyncDashboardProps {
  /** A supabase-js client made with the project URL and the anon (publishable) key. */
  supabase: SupabaseClient;
  /** How often status, runs and errors refresh while the page is visible (0: never). */
  refreshIntervalMs?: number;
  /** Roles offered in the users table (user_sync.roles). */
  roles?: string[];
  /** Heading. */
  title?: string;
  /** Replaces the data layer (tests, or an app that proxies the calls). */
  api?: DashboardApi;
}

type Me =
  | { state: "loading" }
  | { state: "signed-out" }
  | { state: "profile"; userId: string; email: string | null; profile: Profile | null; error: string | null; loading: boolean };

export function UserSyncDashboard({
  supabase,
  refreshIntervalMs = 15_000,
  roles = ["user", "admin"],
  title = "User Sync",
  api: apiOverride,
}: UserSyncDashboardProps) {
  const api = useMemo(() => apiOverride ?? createDashboardApi(supabase), [apiOverride, supabase]);
  const [me, setMe] = useState<Me>({ state: "loading" });
  const [userId, setUserId] = useState<string | null | undefined>(undefined);
  const [email, setEmail] = useState<string | null>(null);

  // Who is signed in (now, and at every auth state change).
  useEffect(() => {
    let current = true;
    void supabase.auth.getSession().then(({ data }) => {
      if (!current) return;
      setUserId(data.session?.user.id ?? null);
      setEmail(data.session?.user.email ?? null);
    });
    const { data } = supabase.auth.onAuthStateChange((_event, session) => {
      setUserId(session?.user.id ?? null);
      setEmail(session?.user.email ?? null);
    });
    return () => {
      current = false;
      data.subscription.unsubscribe();
    };
  }, [supabase]);

  // Their profile: loaded once per signed-in user; a missing one is synced first.
  useEffect(() => {
    if (userId === undefined) return;
    if (userId === null) {
      setMe({ state: "signed-out" });
      return;
    }
    let current = true;
    setMe({ state: "profile", userId, email: null, profile: null, error: null, loading: true });
    (async () => {
      try {
        const profile = await api.getMyProfile();
        if (current) setMe({ state: "profile", userId, email: null, profile, error: profile ? null : "Your profile does not exist yet.", loading: false });
      } catch (err) {
        if (current) {
          setMe({ state: "profile", userId, email: null, profile: null, error: err instanceof Error ? err.message : String(err), loading: false });
        }
      }
    })();
    return () => {
      current = false;
    };
  }, [api, userId]);

  const signOut = () => void supabase.auth.signOut();
  const isAdmin = me.state === "profile" && me.profile?.role === "admin" && !me.profile.deleted_at;

  return (
    <div className="usd-root" data-testid="user-sync-dashboard">
      <style>{DASHBOARD_CSS}</style>
      <header className="usd-header">
        <h1>{title}{isAdmin ? <span className="usd-badge usd-admin-badge" data-testid="admin-badge">admin</span> : null}</h1>
        {me.state === "profile" && (
          <div className="usd-who">
            <span className="usd-muted" data-testid="signed-in-as">{me.profile?.email ?? email ?? me.userId}</span>
            <button type="button" onClick={signOut} data-testid="sign-out">Sign out</button>
          </div>
        )}
      </header>
      <main>
        {me.state === "loading" && <div className="usd-loading" data-testid="loading">Loading…</div>}
        {me.state === "signed-out" && <SignIn supabase={supabase} />}
        {me.state === "profile" && me.loading && <div className="usd-loading" data-testid="loading">Loading your profile…</div>}
        {me.state === "profile" && !me.loading && me.error && (
          <div className="usd-alert" role="alert" data-testid="profile-error">Cannot load your profile: {me.error}</div>
        )}
        {me.state === "profile" && !me.loading && me.profile && (
          isAdmin
            ? <AdminView api={api} refreshIntervalMs={refreshIntervalMs} roles={roles} />
            : <ProfileView api={api} profile={me.profile} onSaved={(profile) => setMe({ ...me, profile })} />
        )}
      </main>
    </div>
  );
}
