// CPU per request inside the gate, with no sockets: in-memory links and an RpcClient that
// answers on the next turn of the event loop. It isolates the gate's own JS cost (frame
// dispatch, request pool, upstream chain, delivery) from syscalls, for profiling:
//   node [--cpu-prof] dist/bench/gateCpu.js [requests=300000] [players=100] [inflight=16]
// With OTLP=<collector url> (e.g. bench/otlpSink.ts) and OTLP_SAMPLE=<ratio> the gate traces
// as with --otlp, to measure what tracing costs per request.
import pino from 'pino';
import { Subject } from 'rxjs';
import { testConfig } from '../lib/config.js';
import type { Connection } from '../lib/connection.js';
import { FrameType, frame, type Frame } from '../lib/frame.js';
import { Gate } from '../lib/gate.js';
import type { RpcClient } from '../lib/streams/rpcClient.js';

const N = Number(process.argv[2] ?? 300_000);
const PLAYERS = Number(process.argv[3] ?? 100);
const INFLIGHT = Number(process.argv[4] ?? 16);

class MemLink implements Connection {
  readonly transport = 'tcp' as const;
  readonly remoteAddress = 'mem';
  readonly inbound = new Subject<Frame>();
  readonly frames$ = this.inbound.asObservable();
  isOpen = true;
  closedWith = null;
  outboundBytes = 0;
  constructor(
    readonly id: number,
    readonly onFrame: (l: MemLink, f: Frame) => void,
  ) {}
  send(f: Frame): boolean {
    this.onFrame(this, f);
    return true;
  }
  close(): void {
    this.isOpen = false;
  }
  pause(): void {}
  resume(): void {}
}

const rpc: RpcClient = {
  name: 'mem',
  call(req, done) {
    setImmediate(() => done(null, { status: 200, body: req.body }));
    return () => undefined;
  },
  close: () => Promise.resolve(),
};

const links$ = new Subject<Connection>();
const logger = pino({ level: 'silent' });
const otlp = process.env.OTLP;
const tracer = otlp
  ? (await import('../lib/otel/otlpTracer.js')).otlpTracer({ url: `${otlp}/v1/traces`, sample: Number(process.env.OTLP_SAMPLE ?? '0.01'), gateId: 'bench', log: logger })
  : null;
const gate = new Gate(testConfig({ tcp: null, ws: null, auth: 'none', upstream: 'http://127.0.0.1:1' }), {
  logger,
  rpc,
  backend: null,
  connections$: links$,
  tracer,
});
await gate.start();

let answered = 0;
let sent = 0;
let finish: () => void = () => undefined;
const done = new Promise<void>((r) => (finish = r));
const body = Buffer.alloc(64, 0x61);
const nextSeq = new Map<MemLink, number>();
const request = (l: MemLink): void => {
  if (sent >= N) return;
  sent++;
  const seq = nextSeq.get(l)!;
  nextSeq.set(l, seq + 1);
  l.inbound.next(frame(FrameType.REQUEST, seq, body, 5));
};
const onFrame = (l: MemLink, f: Frame): void => {
  if (f.type === FrameType.WELCOME) {
    queueMicrotask(() => {
      for (let k = 0; k < INFLIGHT; k++) request(l);
    });
  } else if (f.type === FrameType.RESPONSE) {
    if (++answered === N) finish();
    else request(l);
  }
};
const links = Array.from({ length: PLAYERS }, (_, i) => new MemLink(i + 1, onFrame));
const t0 = process.hrtime.bigint();
const c0 = process.cpuUsage();
for (const l of links) {
  nextSeq.set(l, 1);
  links$.next(l);
  l.inbound.next(frame(FrameType.HELLO, 0, Buffer.from(JSON.stringify({ token: `p${l.id}` }))));
}
await done;
const cpu = process.cpuUsage(c0);
const wall = Number(process.hrtime.bigint() - t0) / 1e3;
process.stdout.write(`${N} requests: ${(wall / N).toFixed(2)} µs wall, ${((cpu.user + cpu.system) / N).toFixed(2)} µs CPU per request\n`);
await gate.shutdown();
await tracer?.shutdown(2_000);
process.exit(0);
