// Email + password sign-in (Supabase Auth; the Auth stand-in locally).
import type { SupabaseClient } from "@supabase/supabase-js";
import { useState } from "react";

export function SignIn({ supabase }: { supabase: SupabaseClient }) {
  const [email, setEmail] = useState("");
  const [password, setPassword] = useState("");
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);

  const submit = async (e: React.FormEvent) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      const { error } = await supabase.auth.signInWithPassword({ email: email.trim(), password });
      if (error) setError(error.status && error.status >= 500 ? `Auth is unavailable (${error.message}).` : error.message);
    } catch (err) {
      setError(`Auth cannot be reached: ${err instanceof Error ? err.message : String(err)}`);
    } finally {
      setBusy(false);
    }
  };

  return (
    <form className="usd-panel usd-form usd-signin" onSubmit={(e) => void submit(e)} data-testid="sign-in">
      <h2>Sign in</h2>
      <label>
        Email
        <input type="email" autoComplete="username" value={email} onChange={(e) => setEmail(e.target.value)} required data-testid="sign-in-email" />
      </label>
      <label>
        Password
        <input type="password" autoComplete="current-password" value={password} onChange={(e) => setPassword(e.target.value)} required data-testid="sign-in-password" />
      </label>
      <button type="submit" className="usd-primary" disabled={busy} data-testid="sign-in-submit">{busy ? "Signing in…" : "Sign in"}</button>
      {error && <div className="usd-alert" role="alert" data-testid="sign-in-error">{error}</div>}
    </form>
  );
}
