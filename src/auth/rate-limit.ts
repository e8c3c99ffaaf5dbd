import type { RateLimit } from "../config.ts"
import type { Clock } from "../clock.ts"
import { tooManyRequests } from "../errors.ts"

/** Fixed-window request counters per key, in this process's memory (a restart or another instance starts fresh). */
export type RateLimiter = {
  /** Counts one request for `key` under `rule`; throws 429 `auth.rate_limited` with Retry-After once over. */
  hit(key: string, rule: RateLimit): void
}

/** Creates a limiter; `enabled: false` lets everything through (tests, trusted networks). */
export function createRateLimiter(clock: Clock, enabled: boolean): RateLimiter {
  const windows = new Map<string, { count: number; resetAt: number }>()
  let nextSweep = 0
  return {
    hit(key, rule) {
      if (!enabled || !rule) return
      const now = clock.now()
      if (now >= nextSweep) {
        // Forget finished windows now and then, so the map stays as small as the recent traffic.
        for (const [k, w] of windows) if (w.resetAt <= now) windows.delete(k)
        nextSweep = now + 60_000
      }
      let window = windows.get(key)
      if (!window || window.resetAt <= now) {
        window = { count: 0, resetAt: now + rule.windowSeconds * 1000 }
        windows.set(key, window)
      }
      window.count++
      if (window.count > rule.limit)
        throw tooManyRequests(
          "auth.rate_limited",
          "Too many attempts. Please try again later.",
          (window.resetAt - now) / 1000,
        )
    },
  }
}
