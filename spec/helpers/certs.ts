/**
 * A throwaway self-signed certificate for 127.0.0.1 and localhost, made at test time with the
 * `openssl` command in a fresh temp dir (nothing secret is ever committed). CI installs openssl;
 * without it the TLS tests fail at once with a message saying so, rather than being skipped.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** Bound on one openssl run, ms (RSA-2048 key generation takes well under a second). */
const OPENSSL_TIMEOUT_MS = 30_000;

export interface TestCert {
  /** The temp dir holding the files; removed by `remove()`. */
  readonly dir: string;
  readonly certPath: string;
  readonly keyPath: string;
  /** PEM bytes of the certificate: pass as `ca` to trust it. */
  readonly cert: Buffer;
  readonly key: Buffer;
  remove(): void;
}

/**
 * Runs `openssl req -x509 …` for CN=localhost with subjectAltName IP:127.0.0.1 and DNS:localhost,
 * valid one day. Throws an Error naming the missing command when openssl is not installed, or
 * openssl's own stderr when it fails.
 */
export function makeSelfSignedCert(prefix = 'gate-tls-'): TestCert {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  const certPath = join(dir, 'cert.pem');
  const keyPath = join(dir, 'key.pem');
  const remove = (): void => rmSync(dir, { recursive: true, force: true });
  try {
    execFileSync(
      'openssl',
      ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-subj', '/CN=localhost', '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost', '-days', '1', '-keyout', keyPath, '-out', certPath],
      { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'], timeout: OPENSSL_TIMEOUT_MS },
    );
  } catch (e) {
    remove();
    const err = e as NodeJS.ErrnoException & { stderr?: Buffer };
    if (err.code === 'ENOENT')
      throw new Error('the TLS tests need the `openssl` command to make a self-signed test certificate, and it is not on PATH (install the openssl package)', { cause: e });
    throw new Error(`openssl could not make a test certificate: ${err.stderr?.toString('utf8').trim() || err.message}`, { cause: e });
  }
  return { dir, certPath, keyPath, cert: readFileSync(certPath), key: readFileSync(keyPath), remove };
}
