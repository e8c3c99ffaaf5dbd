/**
 * Group commit: concurrent writes of one kind are committed together in one transaction, so a durable commit
 * (an fsync on SQLite with synchronous=FULL, a WAL flush on Postgres) is paid once per batch instead of once
 * per write. No timer: a batch starts one event-loop turn after the first write (so an idle server answers at
 * once); writes that arrive while a batch is committing form the next one.
 *
 * `runBatch` gets every queued input and returns one outcome per input (same order). If it throws (the whole
 * transaction failed), each input is retried alone through `runBatch([input])`, so one bad write fails only
 * itself. Each caller's promise settles only after its batch committed (or failed).
 */
export type WriteBatcher<I, O> = {
  /** Queues one write; resolves with its result once the transaction holding it has committed. */
  submit(input: I): Promise<O>
  /** Resolves when nothing is queued or running (shutdown, tests). */
  drain(): Promise<void>
}

/** One input's result inside a batch: a value, or an error for that input only. */
export type BatchOutcome<O> = { ok: true; value: O } | { ok: false; error: unknown }

type Pending<I, O> = { input: I; resolve: (value: O) => void; reject: (error: unknown) => void }

/** Creates a batcher; `maxBatch` bounds how many writes one transaction holds. */
export function createWriteBatcher<I, O>(
  runBatch: (inputs: I[]) => Promise<BatchOutcome<O>[]>,
  options: { maxBatch?: number } = {},
): WriteBatcher<I, O> {
  const maxBatch = options.maxBatch ?? 512
  let queue: Pending<I, O>[] = []
  let running: Promise<void> | null = null

  const settle = (batch: Pending<I, O>[], outcomes: BatchOutcome<O>[]) => {
    batch.forEach((p, i) => {
      const outcome = outcomes[i]
      if (!outcome) p.reject(new Error("write batch returned no outcome"))
      else if (outcome.ok) p.resolve(outcome.value)
      else p.reject(outcome.error)
    })
  }

  const runOne = async (batch: Pending<I, O>[]) => {
    try {
      settle(batch, await runBatch(batch.map((p) => p.input)))
    } catch (error) {
      if (batch.length === 1) return batch[0]!.reject(error)
      // The shared transaction failed: isolate the culprit by committing each write alone.
      for (const p of batch) {
        try {
          settle([p], await runBatch([p.input]))
        } catch (single) {
          p.reject(single)
        }
      }
    }
  }

  // One event-loop turn (not a timer): requests already in flight finish their reads and join the batch. On
  // SQLite those reads share the single connection with the batch transaction, so they wait for its commit;
  // without this turn the next batch would start before any of them is queued, and every batch held one write.
  const nextTurn = () => new Promise<void>((resolve) => setImmediate(resolve))

  const loop = async () => {
    await nextTurn()
    while (queue.length > 0) {
      const batch = queue.length <= maxBatch ? queue : queue.slice(0, maxBatch)
      queue = queue.length <= maxBatch ? [] : queue.slice(maxBatch)
      await runOne(batch)
      if (queue.length === 0) await nextTurn()
    }
    running = null
  }

  return {
    submit(input) {
      return new Promise<O>((resolve, reject) => {
        queue.push({ input, resolve, reject })
        running ??= loop()
      })
    },
    async drain() {
      while (running) await running
    },
  }
}
