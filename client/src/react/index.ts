// @user-sync/client/react: the useUserSync hook (React 18 or 19 as a peer dependency).
export { useUserSync, type UseUserSyncOptions, type UseUserSyncResult } from "./use_user_sync.ts";
