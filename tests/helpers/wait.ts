/** Polls until `check` returns a truthy value (or throws after `timeoutMs`): for effects that land just after a response. */
export async function waitFor<T>(
  check: () => T | Promise<T>,
  timeoutMs = 2000,
  what = "condition",
): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const value = await check()
    if (value) return value as NonNullable<T>
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await Bun.sleep(5)
  }
}
