import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/**
 * The gate's Prometheus metrics (CONTRACT §4), one registry per gate so tests can run several
 * gates in one process. Labels are low-cardinality only: never a player id.
 */
export function createMetrics(gateId: string) {
  const registry = new Registry();
  registry.setDefaultLabels({ gate: gateId });
  collectDefaultMetrics({ register: registry, eventLoopMonitoringPrecision: 20 });
  return {
    registry,
    connections: new Gauge({ name: 'gate_connections', help: 'Open client connections', labelNames: ['transport'] as const, registers: [registry] }),
    sessions: new Gauge({ name: 'gate_sessions', help: 'Sessions by state', labelNames: ['state'] as const, registers: [registry] }),
    requests: new Counter({ name: 'gate_requests_total', help: 'Client REQUESTs by outcome', labelNames: ['outcome'] as const, registers: [registry] }),
    upstreamDuration: new Histogram({
      name: 'gate_upstream_duration_seconds',
      help: 'Upstream /rpc call time, all attempts included',
      labelNames: ['result'] as const,
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers: [registry],
    }),
    pushes: new Counter({ name: 'gate_pushes_total', help: 'Pushes by status', labelNames: ['status'] as const, registers: [registry] }),
    queued: new Gauge({ name: 'gate_request_queue_depth', help: 'Requests admitted and not finished (waiting or running)', registers: [registry] }),
    busyWorkers: new Gauge({ name: 'gate_workers_busy', help: 'Upstream workers in use', registers: [registry] }),
    protocolErrors: new Counter({ name: 'gate_protocol_errors_total', help: 'Connections closed for protocol errors', labelNames: ['code'] as const, registers: [registry] }),
    closes: new Counter({ name: 'gate_connection_closes_total', help: 'Connections closed by the gate, by BYE code', labelNames: ['code'] as const, registers: [registry] }),
    refused: new Counter({ name: 'gate_connections_refused_total', help: 'Connections refused at accept (--max-connections)', registers: [registry] }),
    events: new Gauge({ name: 'gate_backend_events_queued', help: 'Backend events waiting to be posted', registers: [registry] }),
    eventsDropped: new Counter({ name: 'gate_backend_events_dropped_total', help: 'Backend events dropped (queue full)', registers: [registry] }),
    pushDrops: new Counter({ name: 'gate_push_buffer_drops_total', help: 'Buffered pushes dropped by --buffer-max', registers: [registry] }),
  };
}

export type Metrics = ReturnType<typeof createMetrics>;
