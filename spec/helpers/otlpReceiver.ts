/**
 * An in-process OTLP/HTTP trace receiver for tests, on 127.0.0.1 port 0: it decodes what the
 * exporter posts (OTLP JSON: resourceSpans[].scopeSpans[].spans[], ids as hex strings) into flat
 * spans with their resource, and answers as told (200, a refusal, or never).
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

/** One OTLP AnyValue, as the JSON encoding writes it (int64 may come as a string). */
interface AnyValue {
  stringValue?: string;
  intValue?: number | string;
  doubleValue?: number;
  boolValue?: boolean;
}
interface KeyValue {
  key: string;
  value: AnyValue;
}
interface OtlpSpan {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  kind: number;
  attributes?: KeyValue[];
  status?: { code?: number; message?: string };
}
interface OtlpRequest {
  resourceSpans?: { resource?: { attributes?: KeyValue[] }; scopeSpans?: { spans?: OtlpSpan[] }[] }[];
}

export type Attrs = Record<string, string | number | boolean | undefined>;

/** A received span, flattened. `parentSpanId` is '' for a root. */
export interface ReceivedSpan {
  readonly traceId: string;
  readonly spanId: string;
  readonly parentSpanId: string;
  readonly name: string;
  readonly kind: number;
  readonly attrs: Attrs;
  /** OTLP status code: 0 unset, 1 ok, 2 error. */
  readonly status: number;
  readonly resource: Attrs;
}

export interface OtlpReceiver {
  /** `http://127.0.0.1:PORT`: the collector base, as an operator gives --otlp. */
  readonly url: string;
  /** Every HTTP request received (any method or path). */
  readonly requests: { method: string; path: string; contentType: string }[];
  /** Every span received, in arrival order. */
  readonly spans: ReceivedSpan[];
  /** What the next posts get: 200, a status code to refuse with, or no answer at all. */
  answer: 200 | 400 | 'hang';
  close(): Promise<void>;
}

const valueOf = (v: AnyValue): string | number | boolean | undefined =>
  v.stringValue ?? (v.intValue !== undefined ? Number(v.intValue) : (v.doubleValue ?? v.boolValue));

const attrsOf = (kvs: KeyValue[] | undefined): Attrs => Object.fromEntries((kvs ?? []).map((kv) => [kv.key, valueOf(kv.value)]));

export async function startOtlpReceiver(): Promise<OtlpReceiver> {
  const sockets = new Set<Socket>(); // destroyed on close (a hanging answer holds one)
  const r: OtlpReceiver = {
    url: '',
    requests: [],
    spans: [],
    answer: 200,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const s of sockets) s.destroy();
      }),
  };
  const onRequest = (req: IncomingMessage, res: ServerResponse): void => {
    const parts: Buffer[] = [];
    req.on('data', (c: Buffer) => parts.push(c));
    req.on('end', () => {
      r.requests.push({ method: req.method ?? '', path: req.url ?? '', contentType: String(req.headers['content-type']) });
      if (r.answer === 'hang') return;
      if (r.answer !== 200) {
        res.writeHead(r.answer, { 'content-type': 'application/json' }).end('{"code":3,"message":"refused by the test"}');
        return;
      }
      const body = JSON.parse(Buffer.concat(parts).toString('utf8')) as OtlpRequest;
      for (const rs of body.resourceSpans ?? []) {
        const resource = attrsOf(rs.resource?.attributes);
        for (const ss of rs.scopeSpans ?? [])
          for (const s of ss.spans ?? [])
            r.spans.push({
              traceId: s.traceId,
              spanId: s.spanId,
              parentSpanId: s.parentSpanId ?? '',
              name: s.name,
              kind: s.kind,
              attrs: attrsOf(s.attributes),
              status: s.status?.code ?? 0,
              resource,
            });
      }
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
  };
  const server = createServer(onRequest);
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  (r as { url: string }).url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return r;
}
