/**
 * A one-node cluster that runs pods for real: the control plane of kube-apiserver.ts (etcd,
 * kube-apiserver, kube-controller-manager) plus Debian's containerd and runc, and a kubelet built
 * by scripts/install-kubelet.sh, registered as Node `node1`. No scheduler: a binder here sets each
 * pending pod's node through the pods/binding API, as kube-scheduler would with one node.
 *
 * Pod networking is Debian's CNI bridge + host-local plugins on a bridge of our own with a /24 of
 * its own: each pod has its own network namespace (so every injected sidecar has its admin server
 * on :15000 as in a real cluster), the host reaches pods by their IPs, and pods reach the host at
 * the bridge's address (`gateway`), where the test's Vault listens. There is no kube-proxy or
 * cluster DNS: a pod that calls a Service name gets it through hostAliases.
 *
 * Images come from podman archives imported into containerd's k8s.io namespace; pods use
 * imagePullPolicy: Never. Everything lives in one temporary directory and is removed by stop().
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { waitFor } from './cli.js';
import { type KubeApiServer, startKubeApiServer } from './kube-apiserver.js';
import { freePort } from './ports.js';
import { preparedPath } from './prepared.js';

const exec = promisify(execFile);

export const NODE_NAME = 'node1';
const PAUSE_IMAGE = 'registry.k8s.io/pause:3.10.1';
/** The bridge and its /24: gateway .1 on the host, pods from .2 on. */
const BRIDGE = 'vmsc0';
const SUBNET_PREFIX = '10.213.77';

export interface KubeNode {
  readonly kube: KubeApiServer;
  /** The host's address on the pods' bridge: a server here is reachable from every pod. */
  readonly gateway: string;
  /** ctr against this node's containerd, in the k8s.io namespace; resolves with stdout. */
  ctr(args: string[]): Promise<string>;
  /** Imports a docker-archive (podman save) into containerd's k8s.io namespace. */
  importImage(archive: string): Promise<void>;
  /** The last lines of the kubelet's log, to explain a failure. */
  kubeletLog(): string;
  /**
   * A container's log as the kubelet keeps it (CRI format: an RFC 3339 timestamp with nanoseconds
   * first on each line), all its restarts; '' once the kubelet has removed it.
   */
  containerLog(pod: { metadata: { namespace: string; name: string; uid: string } }, container: string): string;
  stop(): Promise<void>;
}

interface Child {
  readonly child: ChildProcess;
  tail(): string;
}

function startChild(command: string, args: string[], logFile: string): Child {
  const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let tail = '';
  const keep = (c: Buffer) => {
    tail = (tail + c.toString()).slice(-20_000);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  child.on('error', (err) => {
    tail += `\n${command}: ${err.message}`;
  });
  child.on('exit', () => writeFileSync(logFile, tail));
  return { child, tail: () => tail };
}

async function stopChild(c: Child | undefined, graceMs = 5000): Promise<void> {
  if (!c || c.child.exitCode !== null || c.child.signalCode !== null) return;
  const exited = new Promise((resolve) => c.child.once('exit', resolve));
  c.child.kill('SIGTERM');
  await Promise.race([exited, new Promise((r) => setTimeout(r, graceMs))]);
  if (c.child.exitCode === null && c.child.signalCode === null) c.child.kill('SIGKILL');
  await exited;
}

async function sh(command: string, args: string[]): Promise<string> {
  try {
    return (await exec(command, args, { maxBuffer: 16 * 1024 * 1024 })).stdout;
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new Error(`${command} ${args.join(' ')}: ${e.stderr?.trim() || e.message}`);
  }
}

function containerdConfig(dir: string, socket: string): string {
  return `version = 2
root = "${dir}/containerd/root"
state = "${dir}/containerd/state"
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs", "io.containerd.internal.v1.opt", "io.containerd.tracing.processor.v1.otlp"]
[grpc]
  address = "${socket}"
[ttrpc]
  address = "${socket}.ttrpc"
[debug]
  level = "warn"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "${PAUSE_IMAGE}"
  # The sandbox cannot raise oom_score_adj above what containerd has; clamp instead of failing.
  restrict_oom_score_adj = true
  enable_selinux = false
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "${dir}/cni"
`;
}

function cniConfig(dir: string): string {
  return JSON.stringify({
    cniVersion: '0.4.0',
    name: 'sidecar-test',
    plugins: [
      {
        type: 'bridge',
        bridge: BRIDGE,
        isGateway: true,
        // Pods talk to each other and to the host only: nothing to masquerade.
        ipMasq: false,
        hairpinMode: true,
        ipam: {
          type: 'host-local',
          ranges: [[{ subnet: `${SUBNET_PREFIX}.0/24`, gateway: `${SUBNET_PREFIX}.1` }]],
          dataDir: path.join(dir, 'ipam'),
        },
      },
    ],
  });
}

function kubeletConfig(dir: string, socket: string, port: number, healthzPort: number): string {
  return JSON.stringify({
    apiVersion: 'kubelet.config.k8s.io/v1beta1',
    kind: 'KubeletConfiguration',
    address: '127.0.0.1',
    port,
    readOnlyPort: 0,
    healthzBindAddress: '127.0.0.1',
    healthzPort,
    containerRuntimeEndpoint: `unix://${socket}`,
    authentication: { anonymous: { enabled: false }, webhook: { enabled: false } },
    authorization: { mode: 'AlwaysAllow' },
    // This machine: cgroup v1, no systemd, swap tolerated.
    cgroupDriver: 'cgroupfs',
    failCgroupV1: false,
    failSwapOn: false,
    cgroupsPerQOS: false,
    enforceNodeAllocatable: [],
    // A test node shares its disk with everything else on the machine: do not evict for it.
    evictionHard: { 'memory.available': '50Mi', 'nodefs.available': '1%', 'imagefs.available': '1%', 'nodefs.inodesFree': '1%' },
    imageGCHighThresholdPercent: 100,
    imageGCLowThresholdPercent: 99,
    podLogsDir: path.join(dir, 'pod-logs'),
    // No nameserver in pods: nothing a pod looks up may leave this machine (the host forwards),
    // and the names the tests use come from /etc/hosts (hostAliases).
    resolvConf: '',
    syncFrequency: '5s',
    fileCheckFrequency: '5s',
    nodeStatusUpdateFrequency: '5s',
    serializeImagePulls: false,
    shutdownGracePeriod: '0s',
    // No KUBE-FIREWALL (a DROP rule on the host's INPUT/OUTPUT), KUBE-KUBELET-CANARY or
    // KUBE-IPTABLES-HINT chains: they serve kube-proxy, which this node does not run, and would
    // outlive the test on the host (v1.34 skips initNetworkUtil when this is false).
    makeIPTablesUtilChains: false,
  });
}

/** Binds every pod without a node to NODE_NAME, as a one-node kube-scheduler would. */
function startBinder(kube: KubeApiServer): () => void {
  let stopped = false;
  const loop = async () => {
    while (!stopped) {
      try {
        const pending = await kube.request<{ items: { metadata: { name: string; namespace: string } }[] }>(
          'GET',
          '/api/v1/pods?fieldSelector=spec.nodeName%3D',
        );
        for (const pod of pending.body.items ?? []) {
          await kube.request('POST', `/api/v1/namespaces/${pod.metadata.namespace}/pods/${pod.metadata.name}/binding`, {
            apiVersion: 'v1',
            kind: 'Binding',
            metadata: { name: pod.metadata.name },
            target: { apiVersion: 'v1', kind: 'Node', name: NODE_NAME },
          });
        }
      } catch {
        // The API server is stopping, or a pod went away between list and bind: try again.
      }
      await new Promise((r) => setTimeout(r, 300));
    }
  };
  void loop();
  return () => {
    stopped = true;
  };
}

/**
 * Host kernel settings the node changes: the kubelet's container manager sets the first six to what
 * it wants (protectKernelDefaults: false), the CNI bridge plugin (isGateway) turns on forwarding.
 * They are read before the node starts and written back by stop(), so a test run leaves the host
 * as it found it.
 */
const HOST_SYSCTLS = [
  'kernel/panic',
  'kernel/panic_on_oops',
  'vm/overcommit_memory',
  'vm/panic_on_oom',
  'kernel/keys/root_maxkeys',
  'kernel/keys/root_maxbytes',
  'net/ipv4/ip_forward',
];

function readSysctls(): Map<string, string> {
  const values = new Map<string, string>();
  for (const key of HOST_SYSCTLS) {
    try {
      values.set(key, readFileSync(`/proc/sys/${key}`, 'utf8').trim());
    } catch {
      // Not on this kernel: nothing to restore.
    }
  }
  return values;
}

function restoreSysctls(values: Map<string, string>): void {
  for (const [key, value] of values) {
    try {
      if (readFileSync(`/proc/sys/${key}`, 'utf8').trim() !== value) writeFileSync(`/proc/sys/${key}`, `${value}\n`);
    } catch {
      // Best effort: a read-only /proc/sys leaves nothing we could have changed either.
    }
  }
}

/** The iptables tables (IPv4 and IPv6) the kubelet writes its chains to, if it does. */
const IPTABLES = ['iptables', 'ip6tables'].flatMap((cmd) => ['filter', 'mangle', 'nat'].map((table) => ({ cmd, table })));

/** Every KUBE-* chain, as "<cmd> <table> <chain>". */
async function kubeChains(): Promise<Set<string>> {
  const found = new Set<string>();
  for (const { cmd, table } of IPTABLES) {
    const rules = await sh(cmd, ['-w', '-t', table, '-S']).catch(() => '');
    for (const m of rules.matchAll(/^-N (KUBE-\S+)$/gm)) found.add(`${cmd} ${table} ${m[1]}`);
  }
  return found;
}

/**
 * Removes the KUBE-* chains that were not there before the node started (makeIPTablesUtilChains
 * is off, so this is a backstop): the jumps to them from built-in chains first, then the chains.
 */
async function removeKubeChains(before: Set<string>): Promise<void> {
  for (const entry of await kubeChains()) {
    if (before.has(entry)) continue;
    const [cmd = '', table = '', chain = ''] = entry.split(' ');
    const rules = await sh(cmd, ['-w', '-t', table, '-S']).catch(() => '');
    for (const line of rules.split('\n')) {
      const jump = /^-A (\S+) (.*)$/.exec(line);
      if (jump?.[2]?.endsWith(`-j ${chain}`) && jump[1] !== chain) {
        await sh(cmd, ['-w', '-t', table, '-D', jump[1] ?? '', ...jump[2].split(' ')]).catch(() => undefined);
      }
    }
    await sh(cmd, ['-w', '-t', table, '-F', chain]).catch(() => undefined);
    await sh(cmd, ['-w', '-t', table, '-X', chain]).catch(() => undefined);
  }
}

/**
 * What a node may change on the host and stop() must put back: the sysctls above and the KUBE-*
 * iptables chains, as comparable strings (a test records it before startKubeNode and after stop).
 */
export async function hostState(): Promise<{ sysctls: string[]; chains: string[] }> {
  return {
    sysctls: [...readSysctls()].map(([k, v]) => `${k}=${v}`),
    chains: [...(await kubeChains())].sort(),
  };
}

async function deleteBridge(): Promise<void> {
  if (existsSync(`/sys/class/net/${BRIDGE}`)) await sh('ip', ['link', 'delete', BRIDGE]).catch(() => undefined);
}

export async function startKubeNode(): Promise<KubeNode> {
  const kubeletDir = preparedPath('kubelet');
  const dir = mkdtempSync('/tmp/sidecar-node-');
  const socket = path.join(dir, 'containerd.sock');
  for (const sub of ['cni', 'ipam', 'pod-logs', 'kubelet', 'containerd']) mkdirSync(path.join(dir, sub));

  const sysctlsBefore = readSysctls();
  const chainsBefore = await kubeChains();
  // The bridge first, so the test's servers can listen on its address before any pod exists
  // (the bridge plugin keeps an existing bridge and its address). A bridge left by a run that
  // was killed goes first.
  await deleteBridge();
  await sh('ip', ['link', 'add', BRIDGE, 'type', 'bridge']);
  await sh('ip', ['addr', 'add', `${SUBNET_PREFIX}.1/24`, 'dev', BRIDGE]);
  await sh('ip', ['link', 'set', BRIDGE, 'up']);
  writeFileSync(path.join(dir, 'cni', '10-sidecar-test.conflist'), cniConfig(dir));

  const netnsBefore = new Set(podNetns());
  // Webhooks behind a Service are called at their pods' IPs on the bridge: no kube-proxy here.
  const kube = await startKubeApiServer({ aggregatorRouting: true });
  let containerd: Child | undefined;
  let kubelet: Child | undefined;
  let stopBinder = () => {};
  const ctr = (args: string[]) => sh('ctr', ['--address', socket, '--namespace', 'k8s.io', ...args]);

  const stop = async () => {
    stopBinder();
    // Pods first, through the API, so the kubelet stops their containers and tears down their
    // sandboxes' network namespaces (CNI DEL) itself.
    try {
      const pods = await kube.request<{ items: { metadata: { name: string; namespace: string } }[] }>('GET', '/api/v1/pods');
      await Promise.all(
        (pods.body.items ?? []).map((p) =>
          kube.request('DELETE', `/api/v1/namespaces/${p.metadata.namespace}/pods/${p.metadata.name}?gracePeriodSeconds=0`),
        ),
      );
      if (kubelet?.child.exitCode === null) {
        await waitFor(
          async () => (await ctr(['tasks', 'ls', '-q']).catch(() => '')).trim() === '',
          30_000,
          'the kubelet to stop every pod',
        ).catch(() => undefined);
      }
    } catch {
      // Stopping after a failed start: sweep below.
    }
    await stopChild(kubelet);
    // Whatever is still running (a kubelet that failed mid-way): kill it by its task id.
    if (containerd?.child.exitCode === null) {
      for (const id of (await ctr(['tasks', 'ls', '-q']).catch(() => '')).split('\n').filter(Boolean)) {
        await ctr(['tasks', 'kill', '--signal', 'SIGKILL', id]).catch(() => undefined);
        await ctr(['tasks', 'delete', '--force', id]).catch(() => undefined);
      }
    }
    await stopChild(containerd);
    await kube.stop();
    // Sandboxes the kubelet did not tear down leave their network namespaces (and veths) behind.
    for (const ns of podNetns().filter((n) => !netnsBefore.has(n))) await sh('ip', ['netns', 'delete', ns]).catch(() => undefined);
    await deleteBridge();
    await removeKubeChains(chainsBefore);
    restoreSysctls(sysctlsBefore);
    // Mounts containerd or the kubelet left under our directory (rootfs, secrets, projected tokens).
    const mounts = readFileSync('/proc/self/mounts', 'utf8')
      .split('\n')
      .map((l) => l.split(' ')[1] ?? '')
      .filter((m) => m.startsWith(`${dir}/`))
      .sort((a, b) => b.length - a.length);
    for (const m of mounts) await sh('umount', ['--lazy', m]).catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
  };

  try {
    containerd = startChild(
      'containerd',
      ['--config', writeConfig(dir, 'containerd.toml', containerdConfig(dir, socket))],
      path.join(dir, 'containerd.log'),
    );
    await waitFor(
      async () =>
        containerd?.child.exitCode !== null ||
        (await ctr(['version'])
          .then(() => true)
          .catch(() => false)),
      30_000,
      () => `containerd (${containerd?.tail()})`,
    );
    if (containerd.child.exitCode !== null) throw new Error(`containerd exited: ${containerd.tail()}`);
    await ctr(['images', 'import', path.join(kubeletDir, 'pause.tar')]);

    const kubeconfig = writeConfig(
      dir,
      'kubelet.kubeconfig',
      JSON.stringify({
        apiVersion: 'v1',
        kind: 'Config',
        clusters: [
          { name: 'test', cluster: { server: kube.url, 'certificate-authority-data': Buffer.from(kube.caPem).toString('base64') } },
        ],
        users: [{ name: 'kubelet', user: { token: kube.adminToken } }],
        contexts: [{ name: 'test', context: { cluster: 'test', user: 'kubelet' } }],
        'current-context': 'test',
      }),
    );
    const config = writeConfig(dir, 'kubelet.json', kubeletConfig(dir, socket, await freePort(), await freePort()));
    kubelet = startChild(
      path.join(kubeletDir, 'kubelet'),
      [
        `--config=${config}`,
        `--kubeconfig=${kubeconfig}`,
        `--hostname-override=${NODE_NAME}`,
        `--node-ip=${SUBNET_PREFIX}.1`,
        `--root-dir=${path.join(dir, 'kubelet')}`,
        `--cert-dir=${path.join(dir, 'kubelet', 'pki')}`,
        '--v=1',
      ],
      path.join(dir, 'kubelet.log'),
    );
    const node = kubelet;
    await waitFor(
      async () => {
        if (node.child.exitCode !== null) return true;
        const res = await kube.request<{ status?: { conditions?: { type: string; status: string }[] } }>(
          'GET',
          `/api/v1/nodes/${NODE_NAME}`,
        );
        return res.status === 200 && (res.body.status?.conditions ?? []).some((c) => c.type === 'Ready' && c.status === 'True');
      },
      90_000,
      () => `Node ${NODE_NAME} to be Ready (kubelet: ${node.tail().slice(-3000)})`,
    );
    if (node.child.exitCode !== null) throw new Error(`the kubelet exited: ${node.tail().slice(-3000)}`);
    stopBinder = startBinder(kube);
  } catch (err) {
    await stop();
    throw err;
  }

  return {
    kube,
    gateway: `${SUBNET_PREFIX}.1`,
    ctr,
    importImage: async (archive) => {
      await ctr(['images', 'import', archive]);
    },
    kubeletLog: () => kubelet?.tail() ?? '',
    containerLog: (pod, container) => {
      const logs = path.join(dir, 'pod-logs', `${pod.metadata.namespace}_${pod.metadata.name}_${pod.metadata.uid}`, container);
      try {
        return readdirSync(logs)
          .sort()
          .map((f) => readFileSync(path.join(logs, f), 'utf8'))
          .join('');
      } catch {
        return '';
      }
    },
    stop,
  };
}

function writeConfig(dir: string, name: string, text: string): string {
  const file = path.join(dir, name);
  writeFileSync(file, text);
  return file;
}

/** The network namespaces containerd made for pod sandboxes (/var/run/netns/cni-…). */
function podNetns(): string[] {
  return existsSync('/var/run/netns') ? readdirSync('/var/run/netns').filter((n) => n.startsWith('cni-')) : [];
}
