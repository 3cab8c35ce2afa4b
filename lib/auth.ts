import type { AuthMode } from './config.js';
import type { BackendClient } from './streams/backend.js';

export type AuthResult = { readonly ok: true; readonly playerId: string } | { readonly ok: false; readonly reason: string };

export interface AuthContext {
  token: string | undefined;
  sessionId: string;
  remoteAddress: string;
}

export type Authenticator = (ctx: AuthContext) => Promise<AuthResult>;

const MAX_PLAYER_ID = 128;

/** The HELLO token check of §2.3, one function per `--auth` mode. */
export function authenticator(mode: AuthMode, deps: { backend: BackendClient | null; jwtSecret: string | null; gateId: string }): Authenticator {
  switch (mode) {
    case 'none':
      return ({ token }) =>
        Promise.resolve(
          typeof token === 'string' && token.length > 0 && token.length <= MAX_PLAYER_ID
            ? { ok: true, playerId: token }
            : { ok: false, reason: `--auth none takes the token as the playerId: 1 to ${MAX_PLAYER_ID} characters` },
        );
    case 'upstream': {
      const backend = deps.backend;
      if (!backend) throw new TypeError('authenticator: --auth upstream needs a backend');
      return async ({ token, sessionId, remoteAddress }) => {
        if (typeof token !== 'string') return { ok: false, reason: 'HELLO has no token' };
        try {
          const r = await backend.connect({ token, gateId: deps.gateId, sessionId, remoteAddress });
          if (r.ok && r.playerId.length > MAX_PLAYER_ID) return { ok: false, reason: `backend /connect named a playerId over ${MAX_PLAYER_ID} characters` };
          return r;
        } catch (e) {
          return { ok: false, reason: `backend /connect failed: ${(e as Error).message}` };
        }
      };
    }
    case 'jwt': {
      const secret = new TextEncoder().encode(deps.jwtSecret ?? '');
      // Loaded only by gates that verify JWTs (every other gate starts without it).
      const jose = import('jose');
      return async ({ token }) => {
        if (typeof token !== 'string') return { ok: false, reason: 'HELLO has no token' };
        try {
          const { payload } = await (await jose).jwtVerify(token, secret, { algorithms: ['HS256'] });
          if (typeof payload.sub !== 'string' || payload.sub === '' || payload.sub.length > MAX_PLAYER_ID)
            return { ok: false, reason: 'JWT has no usable sub' };
          return { ok: true, playerId: payload.sub };
        } catch (e) {
          return { ok: false, reason: `JWT rejected: ${(e as { code?: string }).code ?? (e as Error).message}` };
        }
      };
    }
  }
}
