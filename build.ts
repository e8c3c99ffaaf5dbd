#!/usr/bin/env bun
/**
 * Builds the single binary: `bun run build.ts` → dist/urge (server and admin CLI).
 *
 * Inside: every module (migrations are static imports), the Swagger UI assets (`with { type: "file" }` in
 * src/http/docs.plugin.ts) and sharp. sharp cannot load from a plain compile (its addon is required through a
 * computed path and needs libvips beside it), so a plugin replaces sharp's loader with one that embeds the addon
 * and libvips and loads them through src/media/native-addon.ts (extracted to a cache directory on first use).
 *
 * Flags: --outfile PATH (default dist/urge), --no-bytecode, --no-sharp (a binary without images, for comparison).
 */
import { createHash } from "node:crypto"
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs"
import { tmpdir } from "node:os"
import { basename, join, relative, resolve } from "node:path"
import { parseArgs } from "node:util"
import type { BunPlugin } from "bun"

const root = import.meta.dir
const nodeModules = join(root, "node_modules")

/** The native files of sharp for this machine, as they sit under node_modules/@img. */
type SharpNative = { platform: string; version: string; addon: string; libraries: string[] }

/** Finds sharp's prebuilt addon and libvips for the platform we build on (glibc or musl). */
export function findSharpNative(): SharpNative | null {
  for (const platform of [`${process.platform}-${process.arch}`, `${process.platform}musl-${process.arch}`]) {
    const addonDir = join(nodeModules, "@img", `sharp-${platform}`)
    const libvipsDir = join(nodeModules, "@img", `sharp-libvips-${platform}`, "lib")
    if (!existsSync(join(addonDir, "package.json")) || !existsSync(libvipsDir)) continue
    const { version } = JSON.parse(readFileSync(join(addonDir, "package.json"), "utf8")) as {
      version: string
    }
    const addon = join(addonDir, "lib", `sharp-${platform}-${version}.node`)
    const libraries = readdirSync(libvipsDir)
      .filter((name) => /\.so(\.\d+)*$|\.dylib$/.test(name))
      .map((name) => join(libvipsDir, name))
    if (existsSync(addon) && libraries.length) return { platform, version, addon, libraries }
  }
  return null
}

/**
 * A zstd-compressed copy of a file, kept in node_modules/.cache under the content digest so later builds reuse
 * it (compressing takes about a second). A cached copy is used only if it decompresses to the exact bytes of
 * the file; a new one is written under a temp name and renamed, so parallel builds are safe.
 */
function compressed(file: string, digest: string): string {
  const dir = join(nodeModules, ".cache", "urge-build", digest)
  const target = join(dir, `${basename(file)}.zst`)
  const original = readFileSync(file)
  try {
    if (Bun.zstdDecompressSync(readFileSync(target)).equals(original)) return target
  } catch {}
  const data = Bun.zstdCompressSync(original, { level: 10 })
  try {
    mkdirSync(dir, { recursive: true })
    const temp = `${target}.${process.pid}.tmp`
    writeFileSync(temp, data)
    renameSync(temp, target)
    return target
  } catch {
    // node_modules not writable by this user: a private temp directory, used for this build only.
    const own = join(mkdtempSync(join(tmpdir(), "urge-build-")), `${basename(file)}.zst`)
    writeFileSync(own, data)
    return own
  }
}

/** Replaces sharp's dist/sharp.mjs (the addon loader) with one that loads the embedded files. */
export function sharpEmbedPlugin(native: SharpNative | null): BunPlugin {
  return {
    name: "embed-sharp",
    setup(build) {
      build.onLoad({ filter: /[\\/]sharp[\\/]dist[\\/]sharp\.mjs$/ }, () => {
        if (!native)
          return {
            loader: "js",
            contents: `throw new Error("sharp is not in this build (no prebuilt sharp for ${process.platform}-${process.arch}, or --no-sharp)")\nexport default null`,
          }
        const files = [native.addon, ...native.libraries]
        // The extraction directory is named after the exact bytes, so a new build never reuses stale files.
        const hash = createHash("sha256")
        for (const file of files) hash.update(readFileSync(file))
        const digest = hash.digest("hex").slice(0, 12)
        const name = `sharp-${native.version}-${native.platform}-${digest}`
        // Paths under the extraction directory mirror node_modules/@img, so the addon's RPATH
        // ($ORIGIN/../../sharp-libvips-<platform>/lib) finds libvips. Embedded zstd-compressed: libvips shrinks
        // from ~18 MiB to ~7 MiB; decompressing costs a few tens of ms, once, at the first extraction.
        const entries = files.map((file, i) => ({
          id: `file${i}`,
          file: compressed(file, digest),
          path: relative(nodeModules, file),
          size: statSync(file).size,
        }))
        const contents = [
          ...entries.map((e) => `import ${e.id} from ${JSON.stringify(e.file)} with { type: "file" }`),
          `import { loadEmbeddedAddon } from ${JSON.stringify(join(root, "src", "media", "native-addon.ts"))}`,
          `const sharp = loadEmbeddedAddon({`,
          `  name: ${JSON.stringify(name)},`,
          `  addon: ${JSON.stringify(relative(nodeModules, native.addon))},`,
          `  files: [${entries.map((e) => `{ embedded: ${e.id}, path: ${JSON.stringify(e.path)}, size: ${e.size} }`).join(", ")}],`,
          `})`,
          // The check sharp's own loader makes: its prebuilt x64 binaries need the x86-64-v2 instruction set.
          native.platform.endsWith("x64")
            ? `if (!sharp._isUsingX64V2()) throw new Error("sharp's prebuilt binaries need an x86-64-v2 CPU")`
            : "",
          `export default sharp`,
        ].join("\n")
        return { loader: "js", contents }
      })
    },
  }
}

/** Builds the binary; returns its path. */
export async function buildBinary(
  options: { outfile?: string; bytecode?: boolean; sharp?: boolean } = {},
): Promise<string> {
  const outfile = resolve(root, options.outfile ?? "dist/urge")
  const bytecode = options.bytecode ?? true
  const plugins: BunPlugin[] = []
  let native: SharpNative | null = null
  if (options.sharp ?? true) {
    native = findSharpNative()
    if (!native)
      console.warn(
        `warning: no prebuilt sharp for ${process.platform}-${process.arch} in node_modules/@img: the binary will run without image processing`,
      )
    plugins.push(sharpEmbedPlugin(native))
  } else {
    plugins.push(sharpEmbedPlugin(null))
  }
  const result = await Bun.build({
    entrypoints: [join(root, "cli", "main.ts")],
    target: "bun",
    // bytecode with top-level await (cli/main.ts) needs ESM.
    format: "esm",
    bytecode,
    minify: true,
    sourcemap: "linked",
    plugins,
    compile: {
      outfile,
      // The binary reads its configuration from config.toml, URGE_* variables and flags only: a stray .env or
      // bunfig.toml in the working directory must not change what it does.
      autoloadDotenv: false,
      autoloadBunfig: false,
    },
  })
  if (!result.success) {
    for (const log of result.logs) console.error(log)
    throw new Error("build failed")
  }
  // The source map is embedded in the binary (stack traces point at the TypeScript); the copy beside it is not needed.
  rmSync(`${outfile}.map`, { force: true })
  return outfile
}

if (import.meta.main) {
  const { values } = parseArgs({
    args: Bun.argv.slice(2),
    options: {
      outfile: { type: "string" },
      "no-bytecode": { type: "boolean", default: false },
      "no-sharp": { type: "boolean", default: false },
    },
  })
  const started = performance.now()
  const outfile = await buildBinary({
    outfile: values.outfile,
    bytecode: !values["no-bytecode"],
    sharp: !values["no-sharp"],
  })
  const mb = (statSync(outfile).size / 1024 / 1024).toFixed(1)
  const shown = relative(process.cwd(), outfile)
  console.log(
    `built ${shown.startsWith("..") ? outfile : shown} (${mb} MiB) in ${((performance.now() - started) / 1000).toFixed(1)}s`,
  )
}
