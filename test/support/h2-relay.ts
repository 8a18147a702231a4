/**
 * The h2 relay as the h2 listeners use it (H2Session + relayStream), in front of an upstream on
 * loopback, without TLS: for tests of what the relay does with what an upstream answers.
 */
import { once } from 'node:events';
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import { type ErrorCode, ErrorCodes } from '../../src/errors.js';
import { forwardHeaders } from '../../src/proxy/h2/h2-answers.js';
import { relayStream } from '../../src/proxy/h2/h2-relay.js';
import { H2Session } from '../../src/proxy/h2/h2-session.js';

/**
 * Starts a relay to `upstreamPort`; a failure answers 502 with `code` and the error's own code as
 * its message. What it opens is closed by the functions it adds to `cleanup`. Returns its port.
 */
export async function relayInFront(
  upstreamPort: number,
  cleanup: (() => void)[],
  code: ErrorCode = ErrorCodes.UPSTREAM_RESET,
): Promise<number> {
  const upstream = new H2Session(`http://127.0.0.1:${upstreamPort}`, () => ({}));
  const server = http2.createServer();
  cleanup.push(
    () => upstream.close(),
    () => server.close(),
  );
  server.on('stream', (stream, headers) => {
    stream.on('error', () => undefined);
    relayStream(
      stream,
      forwardHeaders(headers),
      () => upstream.get(),
      (err) => ({ status: 502, code, message: err.code ?? err.message }),
    );
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return (server.address() as AddressInfo).port;
}
