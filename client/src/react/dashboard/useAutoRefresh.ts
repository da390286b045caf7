// Calls `refresh` now and every `intervalMs` while the page is visible; stops while the tab
// is hidden (document.visibilityState), refreshes at once when it shows again, and stops
// for good on unmount. Never runs two refreshes at once.
import { useEffect, useRef, useState } from "react";

export interface AutoRefreshState {
  /** False while the tab is hidden (or intervalMs is 0). */
  active: boolean;
  /** When the last refresh finished. */
  lastRefreshed: Date | null;
}

export function useAutoRefresh(
  refresh: () => Promise<void>,
  intervalMs: number,
  enabled = true,
): AutoRefreshState {
  const latest = useRef(refresh);
  latest.current = refresh;
  const [active, setActive] = useState(false);
  const [lastRefreshed, setLastRefreshed] = useState<Date | null>(null);

  useEffect(() => {
    if (!enabled) return;
    let timer: ReturnType<typeof setInterval> | null = null;
    let running = false;
    let disposed = false;
    const tick = async () => {
      if (running || disposed) return;
      running = true;
      try {
        await latest.current();
      } finally {
        running = false;
        if (!disposed) setLastRefreshed(new Date());
      }
    };
    const stop = () => {
      if (timer !== null) clearInterval(timer);
      timer = null;
      setActive(false);
    };
    const start = () => {
      if (timer !== null || intervalMs <= 0) return;
      timer = setInterval(() => void tick(), intervalMs);
      setActive(true);
    };
    const onVisibility = () => {
      if (document.visibilityState === "hidden") stop();
      else {
        void tick();
        start();
      }
    };
    void tick();
    if (document.visibilityState !== "hidden") start();
    document.addEventListener("visibilitychange", onVisibility);
    return () => {
      disposed = true;
      stop();
      document.removeEventListener("visibilitychange", onVisibility);
    };
  }, [intervalMs, enabled]);

  return { active, lastRefreshed };
}
