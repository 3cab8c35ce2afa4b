/**
 * Runnable example of the client SDK: two players join the demo game's lobby and chat.
 *
 *   npx gate serve                                   # a gate with the embedded demo backend
 *   node dist/lib/client/example.js                  # TCP to 127.0.0.1:7000
 *   node dist/lib/client/example.js ws://127.0.0.1:7001/
 *
 * Routes (docs/demo-game.md): 1 join, 2 chat; pushes 101 joined, 102 chat.
 * Exits 0 once bob has heard alice, 1 on any failure.
 */
import { filter, firstValueFrom, map, timeout } from 'rxjs';
import { GateClient, decodeJson, tcpTransport, wsTransport, type Transport } from './node.js';

const ROUTE = { join: 1, chat: 2 } as const;
const PUSH = { joined: 101, chat: 102 } as const;
/** Give up if the chat has not arrived within this, ms. */
const CHAT_TIMEOUT_MS = 5000;

function transportFor(target: string): Transport {
  if (target.startsWith('ws://') || target.startsWith('wss://')) return wsTransport(target);
  const url = new URL(target.includes('://') ? target : `tcp://${target}`);
  return tcpTransport({ host: url.hostname, port: Number(url.port || 7000) });
}

async function main(target: string): Promise<void> {
  const player = (name: string): GateClient => {
    const client = new GateClient({ transport: transportFor(target), token: name });
    client.pushes$.subscribe((p) => console.log(`${name} got push ${p.route} #${p.seq}:`, decodeJson(p.body)));
    client.state$.subscribe((s) => console.log(`${name} is ${s}`));
    return client;
  };
  const alice = player('alice');
  const bob = player('bob');
  try {
    await Promise.all([alice.connect(), bob.connect()]);
    console.log('alice joined', await alice.requestJson(ROUTE.join, { room: 'lobby' }));
    console.log('bob joined', await bob.requestJson(ROUTE.join, { room: 'lobby' }));

    // Listen before speaking: pushes$ is hot.
    const heard = firstValueFrom(
      bob.pushes$.pipe(
        filter((p) => p.route === PUSH.chat),
        map((p) => decodeJson<{ from: string; text: string }>(p.body)),
        timeout(CHAT_TIMEOUT_MS),
      ),
    );
    await alice.request(ROUTE.chat, { text: 'hello bob' });
    const msg = await heard;
    console.log(`bob heard ${msg.from}: ${msg.text}`);
  } finally {
    await Promise.all([alice.close(), bob.close()]);
  }
}

main(process.argv[2] ?? '127.0.0.1:7000').then(
  () => process.exit(0),
  (e: unknown) => {
    console.error(`example failed: ${e instanceof Error ? e.message : String(e)}`);
    process.exit(1);
  },
);
