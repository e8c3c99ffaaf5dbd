import { describe, expect, test } from "bun:test"
import { type BatchOutcome, createWriteBatcher } from "../src/db/write-batcher.ts"

describe("write batcher (group commit)", () => {
  test("concurrent writes share a batch; writes arriving during a commit form the next one", async () => {
    const batches: number[][] = []
    let release!: () => void
    const batcher = createWriteBatcher<number, number>(async (inputs) => {
      batches.push(inputs)
      if (batches.length === 1) await new Promise<void>((r) => (release = r))
      return inputs.map((n) => ({ ok: true, value: n * 2 }))
    })
    const first = [1, 2, 3].map((n) => batcher.submit(n))
    await Bun.sleep(5)
    const second = [4, 5].map((n) => batcher.submit(n))
    await Bun.sleep(5)
    expect(batches).toEqual([[1, 2, 3]])
    release()
    expect(await Promise.all([...first, ...second])).toEqual([2, 4, 6, 8, 10])
    expect(batches).toEqual([
      [1, 2, 3],
      [4, 5],
    ])
  })

  test("a caller is answered only after its batch committed", async () => {
    let committed = false
    const batcher = createWriteBatcher<string, boolean>(async (inputs) => {
      await Bun.sleep(10)
      committed = true
      return inputs.map(() => ({ ok: true, value: committed }))
    })
    expect(await batcher.submit("x")).toBe(true)
  })

  test("a failed batch is retried write by write: only the bad write fails", async () => {
    const calls: string[][] = []
    const batcher = createWriteBatcher<string, string>(async (inputs) => {
      calls.push(inputs)
      if (inputs.includes("poison")) throw new Error("constraint violated")
      return inputs.map((s): BatchOutcome<string> => ({ ok: true, value: s.toUpperCase() }))
    })
    const results = await Promise.allSettled(["a", "poison", "b"].map((s) => batcher.submit(s)))
    expect(results.map((r) => (r.status === "fulfilled" ? r.value : (r.reason as Error).message))).toEqual([
      "A",
      "constraint violated",
      "B",
    ])
    expect(calls).toEqual([["a", "poison", "b"], ["a"], ["poison"], ["b"]])
  })

  test("per-write outcomes: one write's error does not touch the others of the batch", async () => {
    const batcher = createWriteBatcher<number, number>(async (inputs) =>
      inputs.map((n) => (n < 0 ? { ok: false, error: new Error(`negative ${n}`) } : { ok: true, value: n })),
    )
    const results = await Promise.allSettled([1, -1, 2].map((n) => batcher.submit(n)))
    expect(results.map((r) => r.status)).toEqual(["fulfilled", "rejected", "fulfilled"])
    await batcher.drain()
  })

  test("batches are bounded by maxBatch", async () => {
    const sizes: number[] = []
    const batcher = createWriteBatcher<number, number>(
      async (inputs) => {
        sizes.push(inputs.length)
        return inputs.map((n) => ({ ok: true, value: n }))
      },
      { maxBatch: 4 },
    )
    await Promise.all(Array.from({ length: 10 }, (_, i) => batcher.submit(i)))
    expect(sizes).toEqual([4, 4, 2])
  })
})
