/**
 * A byte pipe between two sockets for tcp mode, with half-close: when one side ends its writes,
 * the other side's writes carry on until it ends too (databases and request/response protocols
 * rely on this). An error on either side tears both down.
 */
import type { Duplex } from 'node:stream';

export function pipeBothWays(a: Duplex, b: Duplex): void {
  a.pipe(b);
  b.pipe(a);
  const destroyBoth = () => {
    a.destroy();
    b.destroy();
  };
  a.on('error', destroyBoth);
  b.on('error', destroyBoth);
  a.on('close', () => b.destroy());
  b.on('close', () => a.destroy());
}
