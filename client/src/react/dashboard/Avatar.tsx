// A profile picture, or a grey circle when there is none or it cannot be loaded.
import { useState } from "react";

export function Avatar({ url, size, testId }: { url: string | null; size: "sm" | "lg"; testId?: string }) {
  const [broken, setBroken] = useState<string | null>(null);
  const cls = size === "sm" ? "usd-avatar-sm" : "usd-avatar";
  if (!url || broken === url) return <span className={`${cls} usd-avatar-blank`} />;
  return <img src={url} alt="" className={cls} referrerPolicy="no-referrer" onError={() => setBroken(url)} data-testid={testId} />;
}
