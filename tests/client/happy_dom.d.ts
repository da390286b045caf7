// The part of happy-dom's API tests/client/_dom.ts uses (see there why not its own typings).
export declare class Window {
  constructor(options?: { url?: string });
  happyDOM: { close(): Promise<void> };
}
