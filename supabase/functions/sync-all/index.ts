// Entry point of the sync-all Edge Function (logic in handler.ts).
import { serveIfMain } from "../_shared/runtime.ts";
import { createSyncAllHandler, FN } from "./handler.ts";

export const handler = createSyncAllHandler();
serveIfMain(import.meta, handler, FN);
