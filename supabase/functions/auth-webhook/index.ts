// Entry point of the auth-webhook Edge Function (logic in handler.ts).
import { serveIfMain } from "../_shared/runtime.ts";
import { createAuthWebhookHandler, FN } from "./handler.ts";

export const handler = createAuthWebhookHandler();
serveIfMain(import.meta, handler, FN);
