/**
 * Connections that answered a refusal and are closing. Node's HTTP/1.1 parser has already read the
 * requests a client pipelined behind the refused one and emits each of them: authorizing,
 * counting and logging those (200 pipelined denied requests were 200 denials and 200 access lines
 * for one connection) or forwarding them would serve a connection that is being closed. A request
 * on a closing connection is ignored: no answer, no count, no log line; the connection ends once
 * the refusal is written, and with it the ignored requests.
 */
import type { Socket } from 'node:net';

const closing = new WeakSet<Socket>();

/** Marks `socket` as closing after the answer being sent on it. */
export function closeAfterAnswer(socket: Socket): void {
  closing.add(socket);
}

/** Whether a request on `socket` must be ignored: the connection answered a refusal and is closing. */
export function isClosing(socket: Socket): boolean {
  return closing.has(socket);
}
