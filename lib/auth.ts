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
export interface AuthDeps {
  backend: BackendClient | null;
  /** The HS256 secrets accepted now, the current one first (a reload rolls them: KeyRing). */
  jwtSecrets: () => readonly (string | null)[];
  gateId: string;
}

export function authenticator(mode: AuthMode, deps: AuthDeps): Authenticator {
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
      // Encoded once per secret, not per login.
      const encoded = new Map<string, Uint8Array>();
      const key = (s: string): Uint8Array => {
        let k = encoded.get(s);
        if (!k) {
          if (encoded.size > 4) encoded.clear();
          encoded.set(s, (k = new TextEncoder().encode(s)));
        }
        return k;
      };
      // Loaded only by gates that verify JWTs (every other gate starts without it).
      const jose = import('jose');
      return async ({ token }) => {
        if (typeof token !== 'string') return { ok: false, reason: 'HELLO has no token' };
        const { jwtVerify } = await jose;
        let code = 'no --jwt-secret';
        // The previous secret (within --key-grace of a reload) is tried only when the signature did not match the current one.
        for (const secret of deps.jwtSecrets()) {
          if (secret === null) continue;
          try {
            const { payload } = await jwtVerify(token, key(secret), { algorithms: ['HS256'] });
            if (typeof payload.sub !== 'string' || payload.sub === '' || payload.sub.length > MAX_PLAYER_ID)
              return { ok: false, reason: 'JWT has no usable sub' };
            return { ok: true, playerId: payload.sub };
          } catch (e) {
            code = (e as { code?: string }).code ?? (e as Error).message;
            if (code !== 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED') break;
          }
        }
        return { ok: false, reason: `JWT rejected: ${code}` };
      };
    }
  }
}
