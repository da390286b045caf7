// useUserSync: the signed-in user's profile for a React app (the seed's global sync
// hook). It loads the profile at mount and on every auth state change (sign-in,
// sign-out, token refresh, user update), creates it by a self-sync when it is missing
// (POST /functions/v1/sync-all {user_id}), shares one request between every component
// that asks at the same time, ignores answers that arrive after unmount or after a newer
// auth event, and optionally follows changes of the user's own row through Realtime.
import { useCallback, useEffect, useMemo, useRef, useState } from "react";
import type { SupabaseClient } from "@supabase/supabase-js";
import { createUserSyncClient, type UserSyncClient } from "../client.ts";
import { UserSyncError } from "../errors.ts";
import type { Profile, ProfileUpdate } from "../types.ts";

export interface UseUserSyncOptions {
  /**
   * Subscribe to changes of the user's own row through Supabase Realtime
   * (`postgres_changes` on public.users, filter `id=eq.<uid>`), so an admin's role change
   * or a sync shows up without a reload. Needs the table in the `supabase_realtime`
   * publication (`alter publication supabase_realtime add table public.users;`); RLS
   * applies to what Realtime sends. Default false.
   */
  realtime?: boolean;
}

export interface UseUserSyncResult {
  /** The signed-in user's profile; null while signed out (or before the first load). */
  profile: Profile | null;
  /** True until the first answer for the current session, and during a refresh. */
  loading: boolean;
  /** The last failure (cleared by the next success). */
  error: UserSyncError | null;
  /** Loads the profile again (self-syncing if it is missing). */
  refresh: () => Promise<void>;
  /** Edits the signed-in user's name / avatar_url and answers the new profile. */
  update: (patch: ProfileUpdate) => Promise<Profile>;
}

// deno-lint-ignore no-explicit-any
type AnySupabaseClient = SupabaseClient<any, any, any>;

function asUserSyncError(err: unknown): UserSyncError {
  if (err instanceof UserSyncError) return err;
  return new UserSyncError(0, {
    error: { code: "client_error", message: err instanceof Error ? err.message : String(err) },
  });
}

export function useUserSync(
  supabase: AnySupabaseClient,
  options: UseUserSyncOptions = {},
): UseUserSyncResult {
  const client: UserSyncClient = useMemo(() => createUserSyncClient(supabase), [supabase]);
  const [profile, setProfile] = useState<Profile | null>(null);
  const [loading, setLoading] = useState(true);
  const [error, setError] = useState<UserSyncError | null>(null);
  const [userId, setUserId] = useState<string | null>(null);
  // Every load gets a number; only the latest one may set state, and none after unmount.
  const generation = useRef(0);
  const mounted = useRef(true);

  const load = useCallback(async () => {
    const mine = ++generation.current;
    setLoading(true);
    try {
      const next = await client.ensureMyProfile();
      if (!mounted.current || mine !== generation.current) return;
      setProfile(next);
      setUserId(next?.id ?? null);
      setError(null);
    } catch (err) {
      if (!mounted.current || mine !== generation.current) return;
      setError(asUserSyncError(err));
    } finally {
      if (mounted.current && mine === generation.current) setLoading(false);
    }
  }, [client]);

  useEffect(() => {
    mounted.current = true;
    let timer: ReturnType<typeof setTimeout> | undefined;
    // supabase-js fires INITIAL_SESSION right after subscribing (the load at start), then
    // SIGNED_IN, SIGNED_OUT, TOKEN_REFRESHED, USER_UPDATED... Supabase calls made inside
    // the callback can deadlock the auth lock: the load runs on the next tick.
    const { data } = supabase.auth.onAuthStateChange((_event, session) => {
      if (timer !== undefined) clearTimeout(timer);
      if (!session) {
        generation.current++;
        setProfile(null);
        setUserId(null);
        setError(null);
        setLoading(false);
        return;
      }
      timer = setTimeout(() => {
        timer = undefined;
        if (mounted.current) void load();
      }, 0);
    });
    return () => {
      mounted.current = false;
      generation.current++;
      if (timer !== undefined) clearTimeout(timer);
      data.subscription.unsubscribe();
    };
  }, [supabase, load]);

  useEffect(() => {
    if (!options.realtime || !userId) return;
    const channel = supabase
      .channel(`user-sync:profile:${userId}`)
      .on(
        // deno-lint-ignore no-explicit-any
        "postgres_changes" as any,
        { event: "*", schema: "public", table: "users", filter: `id=eq.${userId}` },
        (payload: { eventType: string; new: Profile }) => {
          if (!mounted.current) return;
          if (payload.eventType === "DELETE") setProfile(null);
          else setProfile(payload.new);
        },
      )
      .subscribe();
    return () => {
      void supabase.removeChannel(channel);
    };
  }, [supabase, options.realtime, userId]);

  const update = useCallback(async (patch: ProfileUpdate) => {
    try {
      const next = await client.updateMyProfile(patch);
      generation.current++;
      if (mounted.current) {
        setProfile(next);
        setError(null);
        setLoading(false);
      }
      return next;
    } catch (err) {
      const e = asUserSyncError(err);
      if (mounted.current) setError(e);
      throw e;
    }
  }, [client]);

  return { profile, loading, error, refresh: load, update };
}
