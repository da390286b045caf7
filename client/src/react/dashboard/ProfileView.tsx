// What a signed-in user who is not an admin sees: their own profile, with name and avatar
// editing (the only columns a user may change; RLS and column grants enforce it).
import { useEffect, useState } from "react";
import type { DashboardApi, Profile } from "./api.ts";
import { Avatar } from "./Avatar.tsx";
import { when } from "./format.ts";

export function ProfileView({ api, profile, onSaved }: { api: DashboardApi; profile: Profile; onSaved: (p: Profile) => void }) {
  const [name, setName] = useState(profile.name ?? "");
  const [avatar, setAvatar] = useState(profile.avatar_url ?? "");
  const [saving, setSaving] = useState(false);
  const [message, setMessage] = useState<{ ok: boolean; text: string } | null>(null);

  useEffect(() => {
    setName(profile.name ?? "");
    setAvatar(profile.avatar_url ?? "");
  }, [profile.id, profile.name, profile.avatar_url]);

  const save = async (e: React.FormEvent) => {
    e.preventDefault();
    setSaving(true);
    setMessage(null);
    try {
      const saved = await api.updateMyProfile({ name: name.trim() || null, avatar_url: avatar.trim() || null });
      onSaved(saved);
      setMessage({ ok: true, text: "Saved. Sync keeps your edit from now on." });
    } catch (err) {
      setMessage({ ok: false, text: `Not saved: ${err instanceof Error ? err.message : String(err)}` });
    } finally {
      setSaving(false);
    }
  };

  return (
    <section className="usd-panel usd-profile" aria-label="Your profile" data-testid="profile-view">
      <h2>Your profile</h2>
      <div className="usd-profile-head">
        <Avatar url={profile.avatar_url} size="lg" testId="profile-avatar" />
        <div>
          <div className="usd-profile-name" data-testid="profile-name">{profile.name ?? "no name"}</div>
          <div className="usd-muted" data-testid="profile-email">{profile.email ?? profile.phone ?? "anonymous"}</div>
          <div className="usd-muted">
            role <strong data-testid="profile-role">{profile.role}</strong> · {profile.provider ?? "–"} · since {when(profile.created_at)}
          </div>
        </div>
      </div>
      <form className="usd-form" onSubmit={(e) => void save(e)} data-testid="profile-form">
        <label>
          Name
          <input value={name} onChange={(e) => setName(e.target.value)} maxLength={200} data-testid="profile-name-input" />
        </label>
        <label>
          Avatar URL
          <input type="url" value={avatar} onChange={(e) => setAvatar(e.target.value)} placeholder="https://…" data-testid="profile-avatar-input" />
        </label>
        <button type="submit" className="usd-primary" disabled={saving} data-testid="profile-save">
          {saving ? "Saving…" : "Save"}
        </button>
        {message && (
          <div className={message.ok ? "usd-notice" : "usd-alert"} role={message.ok ? "status" : "alert"} data-testid="profile-message">
            {message.text}
          </div>
        )}
      </form>
    </section>
  );
}
