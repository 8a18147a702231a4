/** What the sidecar composes: every inbound and outbound listener has this shape. */
import type { AddressInfo } from 'node:net';

export interface Listener {
  readonly name: string;
  readonly direction: 'inbound' | 'outbound';
  listen(): Promise<AddressInfo>;
  /** Bound address once listening (port 0 in tests resolves here). */
  address(): AddressInfo | undefined;
  /** Stop accepting; finish in-flight requests for up to graceMs. */
  drain(graceMs: number): Promise<void>;
}
