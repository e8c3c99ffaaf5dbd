import type { default as SharpConstructor } from "sharp"
import type { Logger } from "../logger.ts"
import { setNativeDataDir } from "./native-addon.ts"

/**
 * Image processing (thumbnails) through sharp, loaded lazily and guarded: sharp is a native addon plus libvips,
 * and in the compiled binary they are extracted to a cache directory on first use (see native-addon.ts and
 * build.ts). When that is impossible the server still runs, with images reported unavailable.
 */

/** The sharp function (`sharp(input).resize(...)`). */
export type Sharp = typeof SharpConstructor

/** Whether image processing works here, and with which versions; `reason` says why not. */
export type ImageSupport =
  { available: true; sharp: string; libvips: string } | { available: false; reason: string }

let loading: Promise<{ sharp: Sharp } | { error: Error }> | undefined

/**
 * Loads sharp once (later calls share the result); null when it cannot load. `dataDir` is a fallback place to
 * extract the native files in the binary when the user cache directory is not writable.
 */
export async function loadSharp(options: { dataDir?: string } = {}): Promise<Sharp | null> {
  if (!loading) {
    if (options.dataDir) setNativeDataDir(options.dataDir)
    loading = import("sharp").then(
      (module) => ({ sharp: module.default }),
      (error: unknown) => ({ error: error instanceof Error ? error : new Error(String(error)) }),
    )
  }
  const result = await loading
  return "sharp" in result ? result.sharp : null
}

/**
 * Loads sharp and proves it works: a tiny PNG generated in memory is decoded, resized and encoded again.
 * A library that loads but cannot process an image counts as unavailable.
 */
export async function imageSupport(options: { dataDir?: string } = {}): Promise<ImageSupport> {
  const sharp = await loadSharp(options)
  if (!sharp) {
    const result = await loading!
    return { available: false, reason: "error" in result ? firstLine(result.error.message) : "not loaded" }
  }
  try {
    const png = await sharp({ create: { width: 8, height: 6, channels: 3, background: "#ff8800" } })
      .png()
      .toBuffer()
    const { data, info } = await sharp(png).resize(4, 3).png().toBuffer({ resolveWithObject: true })
    const decoded = await sharp(data).raw().toBuffer({ resolveWithObject: true })
    const [r, g, b] = decoded.data
    if (info.format !== "png" || info.width !== 4 || info.height !== 3 || r !== 255 || g !== 136 || b !== 0)
      return { available: false, reason: "resizing a test image gave a wrong result" }
    return { available: true, sharp: sharp.versions.sharp, libvips: sharp.versions.vips }
  } catch (error) {
    return { available: false, reason: firstLine((error as Error).message) }
  }
}

/** Checks image support and logs the outcome once: the operator learns at start whether thumbnails work. */
export async function logImageSupport(logger: Logger, dataDir: string): Promise<ImageSupport> {
  const support = await imageSupport({ dataDir })
  if (support.available)
    logger.info("images: sharp loaded", { sharp: support.sharp, libvips: support.libvips })
  else logger.warn("images unavailable: no thumbnails or image resizing", { reason: support.reason })
  return support
}

const firstLine = (text: string) => text.split("\n")[0] ?? text
