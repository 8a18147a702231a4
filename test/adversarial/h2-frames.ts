/**
 * A raw HTTP/2 client that writes frames by hand — what an attacker does, and what a well-behaved
 * library never lets a test do: reset streams the instant they open, send malformed SETTINGS,
 * frames on the wrong stream, headers that are not HPACK. Only literal header fields without
 * indexing are encoded (RFC 7541 §6.2.2), which every decoder must accept.
 */
import type { TLSSocket } from 'node:tls';

export const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');

export const FrameType = {
  DATA: 0,
  HEADERS: 1,
  PRIORITY: 2,
  RST_STREAM: 3,
  SETTINGS: 4,
  PUSH_PROMISE: 5,
  PING: 6,
  GOAWAY: 7,
  WINDOW_UPDATE: 8,
  CONTINUATION: 9,
} as const;
export const Flags = { END_STREAM: 0x1, ACK: 0x1, END_HEADERS: 0x4 } as const;
export const ENHANCE_YOUR_CALM = 0xb;

export function frame(type: number, flags: number, streamId: number, payload: Buffer = Buffer.alloc(0)): Buffer {
  const header = Buffer.alloc(9);
  header.writeUIntBE(payload.length, 0, 3);
  header.writeUInt8(type, 3);
  header.writeUInt8(flags, 4);
  header.writeUInt32BE(streamId & 0x7fffffff, 5);
  return Buffer.concat([header, payload]);
}

function hpackInteger(value: number, prefixBits: number, firstByte: number): Buffer {
  const max = (1 << prefixBits) - 1;
  if (value < max) return Buffer.from([firstByte | value]);
  const bytes = [firstByte | max];
  let rest = value - max;
  while (rest >= 128) {
    bytes.push((rest % 128) + 128);
    rest = Math.floor(rest / 128);
  }
  bytes.push(rest);
  return Buffer.from(bytes);
}

/** An HPACK block of literal fields without indexing, new names, no Huffman coding. */
export function hpack(headers: [string, string][]): Buffer {
  const parts: Buffer[] = [];
  for (const [name, value] of headers) {
    parts.push(
      Buffer.from([0x00]),
      hpackInteger(name.length, 7, 0),
      Buffer.from(name),
      hpackInteger(value.length, 7, 0),
      Buffer.from(value),
    );
  }
  return Buffer.concat(parts);
}

export function requestHeaders(path: string, method = 'POST', extra: [string, string][] = []): Buffer {
  return hpack([[':method', method], [':scheme', 'https'], [':authority', 'localhost'], [':path', path], ...extra]);
}

export function headersFrame(streamId: number, path: string, endStream: boolean, method = 'POST'): Buffer {
  return frame(FrameType.HEADERS, Flags.END_HEADERS | (endStream ? Flags.END_STREAM : 0), streamId, requestHeaders(path, method));
}

export function rstStream(streamId: number, code = 0x8 /* CANCEL */): Buffer {
  const payload = Buffer.alloc(4);
  payload.writeUInt32BE(code);
  return frame(FrameType.RST_STREAM, 0, streamId, payload);
}

export function settings(values: [number, number][] = []): Buffer {
  const payload = Buffer.alloc(values.length * 6);
  values.forEach(([id, value], i) => {
    payload.writeUInt16BE(id, i * 6);
    payload.writeUInt32BE(value, i * 6 + 2);
  });
  return frame(FrameType.SETTINGS, 0, 0, payload);
}

export interface ReceivedFrame {
  readonly type: number;
  readonly flags: number;
  readonly streamId: number;
  readonly payload: Buffer;
}

/** Collects the frames the server sends on `socket` (after the client preface has been written). */
export function readFrames(socket: TLSSocket): { frames: ReceivedFrame[]; closed: Promise<void> } {
  const frames: ReceivedFrame[] = [];
  let pending = Buffer.alloc(0);
  socket.on('data', (chunk: Buffer) => {
    pending = Buffer.concat([pending, chunk]);
    while (pending.length >= 9) {
      const length = pending.readUIntBE(0, 3);
      if (pending.length < 9 + length) break;
      frames.push({
        type: pending.readUInt8(3),
        flags: pending.readUInt8(4),
        streamId: pending.readUInt32BE(5) & 0x7fffffff,
        payload: pending.subarray(9, 9 + length),
      });
      pending = pending.subarray(9 + length);
    }
  });
  socket.on('error', () => undefined);
  // Not once(): it would reject on the socket's 'error', and nobody may be waiting.
  const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  return { frames, closed };
}

/** The error code of the first GOAWAY the server sent, if any. */
export function goawayCode(frames: readonly ReceivedFrame[]): number | undefined {
  const goaway = frames.find((f) => f.type === FrameType.GOAWAY);
  return goaway ? goaway.payload.readUInt32BE(4) : undefined;
}
