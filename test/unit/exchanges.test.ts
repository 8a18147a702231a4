import { describe, expect, it } from 'vitest';
import { exchangeRecorder, MAX_PEER_LABELS, peerName } from '../../src/proxy/exchanges.js';
import { Metrics } from '../../src/telemetry/metrics.js';
import type { PeerIdentity } from '../../src/tls/peer.js';
import { capturingLogger } from '../support/logs.js';
import { parsePrometheus } from '../support/prometheus.js';

const peer = (uris: string[], dnsNames: string[] = []): PeerIdentity => ({
  subject: 'CN=x',
  commonNames: ['x'],
  organizationalUnits: [],
  uris,
  dnsNames,
  hash: '00',
  ca: false,
});

describe('exchangeRecorder', () => {
  it('labels at most MAX_PEER_LABELS distinct peers and counts the rest as other', async () => {
    const metrics = new Metrics();
    const record = exchangeRecorder({
      listener: 'l',
      direction: 'inbound',
      metrics,
      logger: capturingLogger().logger,
      accessLog: false,
      peerLabel: true,
    });
    for (let i = 0; i < MAX_PEER_LABELS + 50; i++) {
      const exchange = {
        remoteAddress: '127.0.0.1',
        peer: peer([`spiffe://test/sa/${i}`]),
        startedAt: process.hrtime.bigint(),
        bytesReceived: 0,
        bytesSent: 0,
        request: { protocol: 'h2', method: 'GET', path: '/', status: 200 },
      } as const;
      record(exchange);
      record(exchange); // a known peer keeps its own label
    }
    const samples = parsePrometheus(await metrics.text()).filter((s) => s.name === 'sidecar_requests_total');
    expect(samples).toHaveLength(MAX_PEER_LABELS + 1);
    expect(samples.find((s) => s.labels.peer === 'other')?.value).toBe(100);
    expect(samples.find((s) => s.labels.peer === 'spiffe://test/sa/0')?.value).toBe(2);
  });

  it('names a peer by SPIFFE ID, then URI, DNS name, subject', () => {
    expect(peerName(peer(['https://a', 'spiffe://t/x'], ['d']))).toBe('spiffe://t/x');
    expect(peerName(peer(['https://a'], ['d']))).toBe('https://a');
    expect(peerName(peer([], ['d']))).toBe('d');
    expect(peerName(peer([]))).toBe('CN=x');
    expect(peerName('upstream.svc')).toBe('upstream.svc');
  });
});
