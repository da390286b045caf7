// The users table: search over email and name, filters (role, provider, deleted), paging,
// and the role of each user (an admin's change goes through RLS; the role is written back
// to app_metadata, so the user's next token carries it).
import { useEffect, useState } from "react";
import type { ListUsersResult } from "../../types.ts";
import type { DashboardApi, Profile } from "./api.ts";
import { Avatar } from "./Avatar.tsx";
import { count, when } from "./format.ts";

const PAGE_SIZE = 20;
const PROVIDERS = ["email", "phone", "google", "github", "apple", "azure", "discord", "anonymous"];

export function UsersTable({ api, roles, reloadKey }: { api: DashboardApi; roles: string[]; reloadKey: number }) {
  const [searchInput, setSearchInput] = useState("");
  const [search, setSearch] = useState("");
  const [role, setRole] = useState("");
  const [provider, setProvider] = useState("");
  const [includeDeleted, setIncludeDeleted] = useState(false);
  const [page, setPage] = useState(1);
  const [result, setResult] = useState<ListUsersResult | null>(null);
  const [loading, setLoading] = useState(true);
  const [error, setError] = useState<string | null>(null);
  const [saving, setSaving] = useState<string | null>(null);
  const [notice, setNotice] = useState<string | null>(null);
  const [version, setVersion] = useState(0);

  // Search as you type, once typing pauses.
  useEffect(() => {
    const t = setTimeout(() => {
      setSearch(searchInput);
      setPage(1);
    }, 300);
    return () => clearTimeout(t);
  }, [searchInput]);

  useEffect(() => {
    let current = true;
    setLoading(true);
    api.listUsers({ search, role: role || undefined, provider: provider || undefined, includeDeleted, page, pageSize: PAGE_SIZE })
      .then((r) => {
        if (!current) return;
        setResult(r);
        setError(null);
      })
      .catch((err) => current && setError(err instanceof Error ? err.message : String(err)))
      .finally(() => current && setLoading(false));
    return () => {
      current = false;
    };
  }, [api, search, role, provider, includeDeleted, page, reloadKey, version]);

  const changeRole = async (user: Profile, next: string) => {
    setSaving(user.id);
    setNotice(null);
    try {
      const saved = await api.setRole(user.id, next);
      setNotice(`${saved.email ?? saved.id} is now ${saved.role}. Their next token carries the new role.`);
      setVersion((v) => v + 1);
    } catch (err) {
      setError(`Role change failed: ${err instanceof Error ? err.message : String(err)}`);
    } finally {
      setSaving(null);
    }
  };

  const pages = result ? Math.max(1, Math.ceil(result.total / PAGE_SIZE)) : 1;

  return (
    <section className="usd-panel" aria-label="Users" data-testid="users">
      <h2>Users {result ? <span className="usd-muted" data-testid="users-total">({result.totalIsEstimate ? "about " : ""}{count(result.total)})</span> : null}</h2>
      <div className="usd-filters">
        <input
          type="search"
          placeholder="Search email or name"
          value={searchInput}
          onChange={(e) => setSearchInput(e.target.value)}
          aria-label="Search users"
          data-testid="users-search"
        />
        <select value={role} onChange={(e) => { setRole(e.target.value); setPage(1); }} aria-label="Role" data-testid="users-role">
          <option value="">any role</option>
          {roles.map((r) => <option key={r} value={r}>{r}</option>)}
        </select>
        <select value={provider} onChange={(e) => { setProvider(e.target.value); setPage(1); }} aria-label="Provider" data-testid="users-provider">
          <option value="">any provider</option>
          {PROVIDERS.map((p) => <option key={p} value={p}>{p}</option>)}
        </select>
        <label className="usd-check">
          <input
            type="checkbox"
            checked={includeDeleted}
            onChange={(e) => { setIncludeDeleted(e.target.checked); setPage(1); }}
            data-testid="users-deleted"
          />
          include deleted
        </label>
      </div>
      {notice && <div className="usd-notice" data-testid="users-notice">{notice}</div>}
      {error && <div className="usd-alert" role="alert" data-testid="users-error">{error}</div>}
      {loading && !result && <div className="usd-loading">Loading users…</div>}
      {result && result.users.length === 0 && !loading && <div className="usd-empty" data-testid="users-empty">No users match.</div>}
      {result && result.users.length > 0 && (
        <div className={`usd-table-wrap${loading ? " usd-stale" : ""}`}>
          <table className="usd-table" data-testid="users-table">
            <thead>
              <tr>
                <th>user</th>
                <th>provider</th>
                <th>role</th>
                <th>created</th>
                <th>last sign-in</th>
              </tr>
            </thead>
            <tbody>
              {result.users.map((u) => (
                <tr key={u.id} data-testid="user-row" data-user-id={u.id} className={u.deleted_at ? "usd-deleted" : undefined}>
                  <td>
                    <div className="usd-user">
                      <Avatar url={u.avatar_url} size="sm" />
                      <div>
                        <div>{u.name ?? <span className="usd-muted">no name</span>}</div>
                        <div className="usd-muted">{u.email ?? u.phone ?? (u.is_anonymous ? "anonymous" : u.id)}</div>
                        {u.deleted_at ? <span className="usd-badge usd-status-failed">deleted {when(u.deleted_at)}</span> : null}
                      </div>
                    </div>
                  </td>
                  <td>{u.provider ?? "–"}</td>
                  <td>
                    <select
                      value={u.role}
                      disabled={saving === u.id}
                      onChange={(e) => void changeRole(u, e.target.value)}
                      aria-label={`Role of ${u.email ?? u.id}`}
                      data-testid="user-role"
                    >
                      {(roles.includes(u.role) ? roles : [...roles, u.role]).map((r) => <option key={r} value={r}>{r}</option>)}
                    </select>
                  </td>
                  <td>{when(u.created_at)}</td>
                  <td>{when(u.last_sign_in_at)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      <div className="usd-pager">
        <button type="button" onClick={() => setPage((p) => Math.max(1, p - 1))} disabled={page <= 1 || loading} data-testid="users-prev">
          Previous
        </button>
        <span data-testid="users-page">Page {page} of {result?.totalIsEstimate ? "about " : ""}{count(pages)}</span>
        <button type="button" onClick={() => setPage((p) => p + 1)} disabled={loading || (result?.totalIsEstimate ? (result.users.length < PAGE_SIZE) : page >= pages)} data-testid="users-next">
          Next
        </button>
      </div>
    </section>
  );
}
