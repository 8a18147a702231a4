/**
 * deploy/monitoring against what real sidecars export: the alert rules run through `promtool test
 * rules` (Prometheus's own evaluator) on series scraped from a healthy sidecar (no alert fires) and
 * from one whose Vault went away while peers fail their handshakes (each alert fires), and every
 * dashboard query is parsed by promtool and names only series a sidecar exports.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { afterAll, expect, inject, it } from 'vitest';
import { parse, stringify } from 'yaml';
import type { Sidecar } from '../../src/sidecar.js';
import { usePrivateVaults } from '../support/fixtures.js';
import { parsePrometheus, type Sample } from '../support/prometheus.js';
import { httpGet, httpsRequest, issueFromVault, startSidecar, stopAllSidecars, vaultSection } from '../support/sidecars.js';

const shared = inject('vault');
const privateVault = usePrivateVaults(shared.bin);
const dir = mkdtempSync(path.join(tmpdir(), 'sidecar-monitoring-'));
const monitoring = new URL('../../deploy/monitoring/', import.meta.url);

interface AlertRule {
  alert: string;
  expr: string;
  labels: Record<string, string>;
  annotations: Record<string, string>;
}
const ruleGroups = (
  parse(readFileSync(new URL('prometheus-rules.yaml', monitoring), 'utf8')) as { spec: { groups: { rules: AlertRule[] }[] } }
).spec.groups;
const alerts = ruleGroups.flatMap((g) => g.rules);
const rulesFile = path.join(dir, 'rules.yaml');
writeFileSync(rulesFile, stringify({ groups: ruleGroups }));

/** The labels Prometheus would add from the pod (the annotations name them). */
const POD = { namespace: 'shop', pod: 'orders-0' };
/** One scrape per synthetic minute: promtool's clock starts at 0. */
const STEP_SECONDS = 60;

afterAll(() => stopAllSidecars());

function promtool(args: string[]): Promise<{ code: number; output: string }> {
  return new Promise((resolve) =>
    execFile('promtool', args, (err, stdout, stderr) => resolve({ code: err ? Number(err.code ?? 1) : 0, output: stdout + stderr })),
  );
}

/**
 * Scrapes taken a second or so apart in real time, laid on promtool's timeline one per minute.
 * Counters and gauges are as scraped; timestamp gauges keep what they mean — seconds away from the
 * scrape — moved onto the synthetic clock.
 */
class Timeline {
  readonly #series = new Map<string, (number | undefined)[]>();
  #steps = 0;
  readonly names = new Set<string>();

  async scrape(sidecar: Sidecar): Promise<void> {
    const text = (await httpGet(sidecar.admin.address()?.port ?? 0, '/metrics')).body;
    const now = Date.now() / 1000;
    for (const match of text.matchAll(/^# TYPE (sidecar_\w+)/gm)) this.names.add(match[1] as string);
    for (const sample of parsePrometheus(text).filter((s: Sample) => s.name.startsWith('sidecar_'))) {
      const labels = { ...sample.labels, ...POD };
      const key = `${sample.name}{${Object.entries(labels)
        .map(([k, v]) => `${k}="${v}"`)
        .join(',')}}`;
      const values = this.#series.get(key) ?? [];
      values[this.#steps] = sample.name.endsWith('_timestamp_seconds') ? sample.value - now + this.#steps * STEP_SECONDS : sample.value;
      this.#series.set(key, values);
    }
    this.#steps++;
  }

  inputSeries(): { series: string; values: string }[] {
    return [...this.#series].map(([series, values]) => ({
      series,
      values: Array.from({ length: this.#steps }, (_, i) => (values[i] === undefined ? '_' : String(values[i]))).join(' '),
    }));
  }

  get minutes(): number {
    return this.#steps - 1;
  }
}

/** The alert as Prometheus would raise it for `labels`: the rule's labels, annotations with $labels filled in. */
function expected(alertname: string, labels: Record<string, string>) {
  const rule = alerts.find((a) => a.alert === alertname);
  if (!rule) throw new Error(`no rule ${alertname}`);
  const fill = (text: string) => text.replace(/\{\{ \$labels\.(\w+) \}\}/g, (_, name: string) => labels[name] ?? '');
  return {
    exp_labels: { ...labels, ...rule.labels },
    exp_annotations: Object.fromEntries(Object.entries(rule.annotations).map(([k, v]) => [k, fill(v)])),
  };
}

async function runRuleTest(timeline: Timeline, exp: Record<string, ReturnType<typeof expected>[]>): Promise<void> {
  const file = path.join(dir, `test-${Object.keys(exp).join('-').length}-${Date.now()}.yaml`);
  writeFileSync(
    file,
    stringify({
      rule_files: [rulesFile],
      evaluation_interval: '1m',
      tests: [
        {
          interval: '1m',
          input_series: timeline.inputSeries(),
          alert_rule_test: alerts.map((a) => ({ eval_time: `${timeline.minutes}m`, alertname: a.alert, exp_alerts: exp[a.alert] ?? [] })),
        },
      ],
    }),
  );
  const { code, output } = await promtool(['test', 'rules', file]);
  expect(code, output).toBe(0);
}

/** Handshakes without a client certificate, as a misconfigured peer makes them. */
async function failHandshakes(port: number, ca: string, count: number): Promise<void> {
  await Promise.all(
    Array.from(
      { length: count },
      () =>
        new Promise<void>((resolve) => {
          const socket = tls.connect({ host: '127.0.0.1', port, ca, servername: 'localhost' });
          socket.on('error', () => resolve());
          socket.on('close', () => resolve());
          socket.on('secureConnect', () => socket.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n'));
        }),
    ),
  );
}

const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));
const listener = (name: string) => [{ name, listen: '127.0.0.1:0', target: '127.0.0.1:9' }];

it('the rule file and every dashboard query parse, and name only series a sidecar exports', async () => {
  const rulesCheck = await promtool(['check', 'rules', rulesFile]);
  expect(rulesCheck.code, rulesCheck.output).toBe(0);
  expect(alerts.map((a) => a.alert)).toEqual([
    'SidecarCertificateExpiringSoon',
    'SidecarCertificateRenewalsFailing',
    'SidecarVaultUnreachable',
    'SidecarHandshakeFailureSpike',
  ]);

  const dashboard = JSON.parse(readFileSync(new URL('grafana-dashboard.json', monitoring), 'utf8')) as {
    panels: { title: string; targets?: { expr: string }[] }[];
  };
  const queries = dashboard.panels.flatMap((p) => (p.targets ?? []).map((t) => ({ panel: p.title, expr: t.expr })));
  expect(queries.length).toBeGreaterThan(15);
  // Grafana's variables as Grafana would fill them in.
  const concrete = (expr: string) => expr.replaceAll('$__rate_interval', '5m').replaceAll('$namespace', '.*').replaceAll('$pod', '.*');
  const recordingRules = path.join(dir, 'dashboard-queries.yaml');
  writeFileSync(
    recordingRules,
    stringify({
      groups: [{ name: 'dashboard', rules: queries.map((q, i) => ({ record: `dashboard:query_${i}`, expr: concrete(q.expr) })) }],
    }),
  );
  const queryCheck = await promtool(['check', 'rules', recordingRules]);
  expect(queryCheck.code, queryCheck.output).toBe(0);

  const sidecar = await startSidecar(
    {
      vault: vaultSection(shared),
      identity: { commonName: 'dashboard.test', ttl: '10m' },
      inbound: listener('web'),
    },
    { VAULT_TOKEN: shared.rootToken },
  );
  const timeline = new Timeline();
  await timeline.scrape(sidecar);
  const exported = timeline.names;
  const used = new Set(
    [...queries, ...alerts.map((a) => ({ panel: a.alert, expr: a.expr }))].flatMap((q) =>
      [...q.expr.matchAll(/sidecar_\w+/g)].map((m) => (m[0] as string).replace(/_(bucket|count|sum)$/, '')),
    ),
  );
  expect([...used].filter((name) => !exported.has(name))).toEqual([]);
});

it('no alert fires for a healthy sidecar', { timeout: 60_000 }, async () => {
  const sidecar = await startSidecar(
    { vault: vaultSection(shared), identity: { commonName: 'healthy.test', dnsNames: ['localhost'], ttl: '1h' }, inbound: listener('web') },
    { VAULT_TOKEN: shared.rootToken },
  );
  const client = await issueFromVault(shared, 'client.test');
  const timeline = new Timeline();
  for (let i = 0; i < 8; i++) {
    await httpsRequest(sidecar.listenerAddress('web').port, client).catch(() => undefined);
    await timeline.scrape(sidecar);
    await pause(300);
  }
  await runRuleTest(timeline, {});
});

it('every alert fires for a sidecar whose Vault is gone, whose certificate runs out and whose peers fail handshakes', {
  timeout: 90_000,
}, async () => {
  const { server, vault } = await privateVault();
  const sidecar = await startSidecar(
    {
      vault: vaultSection(vault),
      identity: { commonName: 'stranded.test', dnsNames: ['localhost'], ttl: '4m', renewal: { minBackoff: '1s', maxBackoff: '2s' } },
      inbound: listener('web'),
      admin: { listen: '127.0.0.1:0', rotateMinInterval: '1s' },
    },
    { VAULT_TOKEN: vault.rootToken },
  );
  const admin = sidecar.admin.address()?.port ?? 0;
  const timeline = new Timeline();
  await timeline.scrape(sidecar);
  await server.stop();
  for (let i = 0; i < 8; i++) {
    await fetch(`http://127.0.0.1:${admin}/rotate`, { method: 'POST' });
    await failHandshakes(sidecar.listenerAddress('web').port, vault.caPem, 20);
    await pause(1200);
    await timeline.scrape(sidecar);
  }
  await runRuleTest(timeline, {
    SidecarCertificateExpiringSoon: [expected('SidecarCertificateExpiringSoon', { source: 'vault', ...POD })],
    SidecarCertificateRenewalsFailing: [expected('SidecarCertificateRenewalsFailing', POD)],
    SidecarVaultUnreachable: [expected('SidecarVaultUnreachable', POD)],
    SidecarHandshakeFailureSpike: [expected('SidecarHandshakeFailureSpike', { listener: 'web', ...POD })],
  });
});
