// Serves one Edge Function from its exported handler, as the Edge Runtime serves a
// function: one process per function. Used by bench/run.ts for the HTTP and memory
// scenarios. Usage: deno run -A bench/serve.ts <auth-webhook|sync-all> <port>
// Configuration comes from the environment (the same variables as on the platform).
import { createAuthWebhookHandler } from "../supabase/functions/auth-webhook/handler.ts";
import { createSyncAllHandler } from "../supabase/functions/sync-all/handler.ts";

const [name, port] = Deno.args;
const create = { "auth-webhook": createAuthWebhookHandler, "sync-all": createSyncAllHandler }[name];
if (!create || !port) {
  console.error("usage: serve.ts <auth-webhook|sync-all> <port>");
  Deno.exit(2);
}
const handler = create();
const server = Deno.serve({
  hostname: "127.0.0.1",
  port: Number(port),
  onListen: () => console.error(`bench: ${name} listening on 127.0.0.1:${port}`),
}, handler);
const stop = async () => {
  await server.shutdown();
  await handler.close();
  Deno.exit(0);
};
Deno.addSignalListener("SIGTERM", stop);
Deno.addSignalListener("SIGINT", stop);
