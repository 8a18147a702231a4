/**
 * The proxy room's composition: one listener per configured inbound and outbound entry, each built
 * by its mode from the same dependencies (the current TLS generation, the dial function, the CRLs
 * and telemetry). Listeners are created here and bound by the sidecar.
 *
 * Each mode and its libraries (undici, http2) is loaded only when the config uses it: a loaded
 * module stays in the heap for good, and every megabyte there is RSS and garbage-collector marking
 * work for the life of the pod.
 */
import type { Config, InboundListenerConfig, OutboundListenerConfig } from '../config/schema/index.js';
import type { Listener, ListenerDeps } from './listener-types.js';

type ListenerFactory<C> = (config: C, index: number, deps: ListenerDeps) => Listener;

const INBOUND_BY_MODE: Record<InboundListenerConfig['mode'], () => Promise<ListenerFactory<InboundListenerConfig>>> = {
  http: async () => (await import('./http/inbound-http.js')).createInboundHttpListener,
  h2: async () => (await import('./h2/inbound-h2.js')).createInboundH2Listener,
  tcp: async () => (await import('./tcp/inbound-tcp.js')).createInboundTcpListener,
};
const OUTBOUND_BY_MODE: Record<OutboundListenerConfig['mode'], () => Promise<ListenerFactory<OutboundListenerConfig>>> = {
  http: async () => (await import('./http/outbound-http.js')).createOutboundHttpListener,
  h2: async () => (await import('./h2/outbound-h2.js')).createOutboundH2Listener,
  tcp: async () => (await import('./tcp/outbound-tcp.js')).createOutboundTcpListener,
};

/** The listeners `config` asks for, inbound first, not yet bound. */
export async function createListeners(config: Pick<Config, 'inbound' | 'outbound'>, deps: ListenerDeps): Promise<Listener[]> {
  return [
    ...(await Promise.all(config.inbound.map(async (l, i) => (await INBOUND_BY_MODE[l.mode]())(l, i, deps)))),
    ...(await Promise.all(config.outbound.map(async (l, i) => (await OUTBOUND_BY_MODE[l.mode]())(l, i, deps)))),
  ];
}
