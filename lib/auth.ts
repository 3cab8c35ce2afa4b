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

/** An --api-key as the Authorization header that carries it (KeyRing's encoding for the API keys). */
export const bearerHeader = (key: string): Buffer => Buffer.from(`Bearer ${key}`);

/** A --jwt-secret as jose verifies with it (KeyRing's encoding for the secrets). */
export const jwtKey = (secret: string): Uint8Array => new TextEncoder().encode(secret);

/** The HELLO token check of §2.3, one function per `--auth` mode. */
export interface AuthDeps {
  backend: BackendClient | null;
  /** The HS256 keys (`jwtKey` of each secret) accepted now, the current one first (a reload rolls them: KeyRing). */
  jwtKeys: () => readonly (Uint8Array | null)[];
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
      // Loaded only by gates that verify JWTs (every other gate starts without it).
      const jose = import('jose');
      return async ({ token }) => {
        if (typeof token !== 'string') return { ok: false, reason: 'HELLO has no token' };
        const { jwtVerify } = await jose;
        let code = 'no --jwt-secret';
        // The previous secret (within --key-grace of a reload) is tried only when the signature did not match the current one.
        for (const key of deps.jwtKeys()) {
          if (key === null) continue;
          try {
            const { payload } = await jwtVerify(token, key, { algorithms: ['HS256'] });
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
