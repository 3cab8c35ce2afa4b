/**
 * A private redis-server for one test file (lib/cli/bench/redisServer.ts, which `gate bench
 * --scenario chaos` uses too), started with the test environment (the run marker kept).
 */
import { startRedis as start, type RedisServer } from '../../lib/cli/bench/redisServer.js';
import { childEnv } from './gateProcess.js';

export type { RedisServer };

/** Starts redis-server (on `port` when given: a restart on the same address). */
export const startRedis = (port?: number): Promise<RedisServer> => start(port, childEnv({}));
