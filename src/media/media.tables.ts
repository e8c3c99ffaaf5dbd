import type { Millis } from "../db/schema.ts"
import type { MediaKind } from "./sniff.ts"

/** `media`: one completed upload; its file is served while the row exists. */
export interface MediaTable {
  id: string
  user_id: string
  /** Storage key and path of the file URL: `<folder>/<user id>/<YYYY>/<MM>/<32 hex>_<safe name>`. */
  file_key: string
  file_url: string
  /** `<file_key>.thumb.jpg` for images with a thumbnail. */
  thumbnail_key: string | null
  thumbnail_url: string | null
  file_name: string
  file_type: MediaKind
  /** Sniffed from the bytes, never the client's claim. */
  mime_type: string
  file_size: number
  duration: number | null
  width: number | null
  height: number | null
  created_at: Millis
  updated_at: Millis
}
