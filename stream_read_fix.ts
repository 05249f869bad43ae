/**
 * Works around a Deno 2.9.6 node:stream difference that breaks aedes.
 *
 * aedes drains each connection with `conn.read(null)` on 'readable' and
 * expects every buffered byte back (Node's behaviour for a paused stream in
 * non-flowing mode). Under Deno, that call returns only the first buffered
 * chunk, so the rest of an MQTT packet sits in the buffer until more bytes
 * arrive: WebSocket clients time out waiting for CONNACK and large TCP
 * publishes stall. Asking for `readableLength` explicitly returns it all.
 * On TLS sockets that read can pull more bytes into the buffer without a
 * further 'readable' event, so we keep reading until the buffer is empty.
 *
 * Kept in this one place; tests/stream_read_fix_test.ts fails without it.
 */
import { Buffer } from "node:buffer";
import type { Duplex } from "node:stream";

const patched = Symbol("readAllPatched");

/** Make `stream.read()` / `stream.read(null)` return everything buffered. */
export function readAllOnRead<S extends Duplex>(stream: S): S {
  const s = stream as S & { [patched]?: true };
  if (s[patched]) return stream;
  const original = stream.read.bind(stream);
  stream.read = (size?: number | null) => {
    if (size != null) return original(size);
    let out = original(stream.readableLength || undefined);
    while (out instanceof Uint8Array && stream.readableLength > 0) {
      const more = original(stream.readableLength);
      if (!(more instanceof Uint8Array)) break;
      out = Buffer.concat([out, more]);
    }
    return out;
  };
  s[patched] = true;
  return stream;
}
