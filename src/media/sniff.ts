/**
 * What a file really is, from its first bytes (magic numbers), never from the name or the client's
 * Content-Type. Only the types the app may upload are recognised; anything else (an executable renamed .jpg,
 * HTML, SVG) is null and refused.
 */

/** How many leading bytes `sniffMime` needs. */
export const sniffHeadBytes = 4096
/** How many trailing bytes (a zip's central directory, where a .docx names its parts) it looks at. */
export const sniffTailBytes = 65536

const docxMime = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"

/** The MIME type of a file from its head (first `sniffHeadBytes`) and tail (last `sniffTailBytes`), or null. */
export function sniffMime(head: Uint8Array, tail: Uint8Array = head): string | null {
  const ascii = (start: number, text: string) => {
    if (head.length < start + text.length) return false
    for (let i = 0; i < text.length; i++) if (head[start + i] !== text.charCodeAt(i)) return false
    return true
  }
  const bytes = (start: number, ...values: number[]) =>
    head.length >= start + values.length && values.every((v, i) => head[start + i] === v)

  if (bytes(0, 0xff, 0xd8, 0xff)) return "image/jpeg"
  if (bytes(0, 0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a)) return "image/png"
  if (ascii(0, "GIF87a") || ascii(0, "GIF89a")) return "image/gif"
  if (ascii(0, "RIFF") && ascii(8, "WEBP")) return "image/webp"
  if (ascii(0, "RIFF") && ascii(8, "WAVE")) return "audio/wav"
  if (ascii(0, "%PDF-")) return "application/pdf"
  // OLE2 compound file: Word 97-2003 (.doc); the app's documents folder allows it.
  if (bytes(0, 0xd0, 0xcf, 0x11, 0xe0, 0xa1, 0xb1, 0x1a, 0xe1)) return "application/msword"
  // A .docx is a zip whose central directory (at the end) names word/document.xml.
  if (bytes(0, 0x50, 0x4b, 0x03, 0x04)) return includes(tail, "word/document.xml") ? docxMime : null
  if (ascii(4, "ftyp")) return isoMediaType(ascii)
  if (ascii(0, "ID3")) return "audio/mpeg"
  if (head.length >= 2 && head[0] === 0xff && (head[1]! & 0xe0) === 0xe0) {
    const layer = (head[1]! >> 1) & 0x03
    // MPEG audio frame sync: layer bits 00 is AAC in ADTS framing, anything else MP1/2/3.
    return layer === 0 ? "audio/aac" : "audio/mpeg"
  }
  return null
}

/** ISO base media (ftyp box): the major brand says QuickTime, M4A audio or MP4 video. */
function isoMediaType(ascii: (start: number, text: string) => boolean): string {
  if (ascii(8, "qt  ")) return "video/quicktime"
  if (ascii(8, "M4A ") || ascii(8, "M4B ") || ascii(8, "M4P ")) return "audio/mp4"
  return "video/mp4"
}

function includes(haystack: Uint8Array, needle: string): boolean {
  const first = needle.charCodeAt(0)
  outer: for (
    let i = haystack.indexOf(first);
    i !== -1 && i <= haystack.length - needle.length;
    i = haystack.indexOf(first, i + 1)
  ) {
    for (let j = 1; j < needle.length; j++) if (haystack[i + j] !== needle.charCodeAt(j)) continue outer
    return true
  }
  return false
}

/** The four kinds of the contract (`file_type`) and the MIME types each folder accepts (CONTRACT §2.6). */
export type MediaKind = "IMAGE" | "VIDEO" | "AUDIO" | "DOCUMENT"
export type MediaFolder = "avatars" | "media" | "documents" | "voice"
export const mediaFolders: readonly MediaFolder[] = ["avatars", "media", "documents", "voice"]

const images = ["image/jpeg", "image/png", "image/gif", "image/webp"]
export const folderMimes: Record<MediaFolder, readonly string[]> = {
  avatars: images,
  media: [...images, "video/mp4", "video/quicktime"],
  documents: ["application/pdf", "application/msword", docxMime],
  // What the app declares for voice notes; sniffing gives audio/mp4 for .m4a and audio/mpeg, wav, aac.
  voice: [
    "audio/m4a",
    "audio/x-m4a",
    "audio/mp4",
    "audio/mpeg",
    "audio/mp3",
    "audio/wav",
    "audio/x-wav",
    "audio/aac",
  ],
}

/** The kind of a (sniffed) MIME type. */
export function kindOf(mime: string): MediaKind {
  if (mime.startsWith("image/")) return "IMAGE"
  if (mime.startsWith("video/")) return "VIDEO"
  if (mime.startsWith("audio/")) return "AUDIO"
  return "DOCUMENT"
}

/** Where `POST /media/upload` files a (sniffed) type: image or video → media, audio → voice, else documents. */
export function folderFor(mime: string): MediaFolder {
  const kind = kindOf(mime)
  return kind === "IMAGE" || kind === "VIDEO" ? "media" : kind === "AUDIO" ? "voice" : "documents"
}
