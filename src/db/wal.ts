import type { Database as SqliteDatabase } from "bun:sqlite"
import { type FileHandle, open } from "node:fs/promises"

/**
 * SQLite's WAL, kept off the event loop. bun:sqlite is synchronous: with `synchronous = FULL` every commit
 * blocks the server for an fsync (milliseconds on a virtual disk), and every ~1,000 pages a commit also runs
 * the checkpoint (copy the WAL into the database file, two more fsyncs). Both are moved to other threads:
 *
 * - `sync()`: the send batch commits with `synchronous = NORMAL` (the frames are written, not fsynced), then
 *   awaits an fdatasync of the WAL on Bun's I/O threads and only then answers: the same guarantee as FULL for
 *   every acknowledged send (anything later in the WAL than an unsynced frame is only acknowledged after a
 *   sync that covers both), while the event loop serves other requests. Concurrent callers share one fsync.
 * - the checkpointer: a worker thread with its own connection runs PASSIVE checkpoints (they never block the
 *   writer) whenever the WAL has frames; the server's own connection only checkpoints as a backstop when the
 *   WAL passes `backstopPages` (the worker stopped or readers kept it from finishing).
 */
export type Wal = {
  /** Resolves once everything committed before the call is on disk. */
  sync(): Promise<void>
  /** Starts the background checkpointer (the server; CLI commands do not need it); `onError` hears its failure. */
  startCheckpointer(onError?: (message: string) => void): void
  /** Stops the checkpointer and closes the WAL handle. */
  close(): Promise<void>
}

/**
 * Pages the server's connection lets the WAL grow to before it checkpoints itself. Under a steady write load
 * the worker's PASSIVE checkpoints never catch up with the writer (frames arrive while they copy and fsync)
 * and SQLite rewinds only a wholly checkpointed WAL, so this backstop is what rewinds it, blocking the event
 * loop for the rest of the copy and two fsyncs (15–20 ms in 1:1 at 1,000 msg/s): 256 MiB makes that four
 * times rarer than 64 MiB. (A RESTART checkpoint from the worker holds the write lock while it fsyncs: sends
 * waited longer.)
 */
export const backstopPages = 65536

// The worker is a blob so the single-file binary needs no extra entry point (bun:sqlite is built in). Niced
// (this thread only): its copies and fsyncs wait, the event loop does not.
const checkpointerSource = `
try { require("node:os").setPriority(10) } catch {}
const { Database } = require("bun:sqlite")
let db = null, timer = null
self.onmessage = (event) => {
  if (event.data.type === "start") {
    db = new Database(event.data.path)
    db.exec("PRAGMA busy_timeout = 1000")
    const tick = () => {
      try { db.query("PRAGMA wal_checkpoint(PASSIVE)").get() } catch {}
      timer = setTimeout(tick, event.data.intervalMs)
    }
    tick()
  } else if (event.data.type === "stop") {
    clearTimeout(timer)
    if (db) db.close(false)
    postMessage({ type: "stopped" })
  }
}`

/** The WAL of the server's connection `sqlite` to the database file at `databasePath`. */
export function createWal(
  sqlite: SqliteDatabase,
  databasePath: string,
  options: { checkpointIntervalMs?: number } = {},
): Wal {
  let handle: Promise<FileHandle> | null = null
  let running: Promise<void> | null = null
  let next: Promise<void> | null = null
  let worker: Worker | null = null

  const fdatasync = async () => {
    // The WAL file lives as long as the server's connection: opened once, on the first sync after a commit.
    handle ??= open(`${databasePath}-wal`, "r").catch((error) => {
      handle = null
      throw error
    })
    await (await handle).datasync()
  }

  // A sync that started before a caller's commit may miss it: callers arriving while one runs wait for the next.
  const sync = (): Promise<void> => {
    if (!running) {
      running = fdatasync().finally(() => {
        running = null
      })
      return running
    }
    next ??= running
      .catch(() => {})
      .then(() => {
        next = null
        return sync()
      })
    return next
  }

  return {
    sync,
    startCheckpointer() {
      if (worker) return
      worker = new Worker(
        URL.createObjectURL(new Blob([checkpointerSource], { type: "application/javascript" })),
      )
      worker.unref()
      worker.postMessage({
        type: "start",
        path: databasePath,
        intervalMs: options.checkpointIntervalMs ?? 100,
      })
      sqlite.exec(`PRAGMA wal_autocheckpoint = ${backstopPages}`)
    },
    async close() {
      if (worker) {
        const stopped = worker
        worker = null
        await new Promise<void>((resolve) => {
          const timeout = setTimeout(resolve, 2000)
          stopped.onmessage = () => {
            clearTimeout(timeout)
            resolve()
          }
          stopped.postMessage({ type: "stop" })
        })
        stopped.terminate()
      }
      if (handle) await (await handle).close().catch(() => {})
      handle = null
    },
  }
}
