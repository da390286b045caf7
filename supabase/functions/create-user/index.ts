// Entry point of the create-user Edge Function (logic in handler.ts).
import { serveIfMain } from "../_shared/runtime.ts";
import { createCreateUserHandler, FN } from "./handler.ts";

export const handler = createCreateUserHandler();
serveIfMain(import.meta, handler, FN);
