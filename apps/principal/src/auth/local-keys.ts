/**
 * The key files a principal makes on first start (authentication on), so that everything on one
 * machine works with no setting: the deployment's pair `principal.json`, and one client key per
 * local service (`local-operator` for the CLI, `local-agent`, `local-scheduler`,
 * `local-listeners`, `local-dashboard`), each enrolled in the store unless the store knows that name already. A
 * local file is never replaced: after a rotation of the principal pair, only its pinned
 * `principalPublicKey` is updated. Secret halves stay in the files (never stored, listed or logged).
 */
import { existsSync, statSync } from "node:fs";
import { join } from "node:path";
import {
  PRINCIPAL_KEY_FILE,
  errorMessage,
  generateKeyPair,
  noopLogger,
  isCdktrError,
  readKeyFile,
  writeKeyFile,
  type KeyFile,
  type KeyPair,
  type KeyRole,
  type Logger,
} from "@cdktr/protocol";
import { PrincipalStartError } from "../errors.js";
import type { Store } from "../store/store.js";

/** The local client keys: name and role (scope = name, any workflow). */
export const LOCAL_KEYS: readonly { name: string; role: KeyRole }[] = [
  { name: "local-operator", role: "operator" },
  { name: "local-agent", role: "agent" },
  { name: "local-scheduler", role: "scheduler" },
  { name: "local-listeners", role: "trigger" },
  { name: "local-dashboard", role: "dashboard" },
];

function keysUnavailable(keysDir: string, what: string, e: unknown): PrincipalStartError {
  return new PrincipalStartError(
    "KEYS_UNAVAILABLE",
    `${what} in the keys directory ${keysDir}: ${errorMessage(e)} (set CDKTR_KEYS_DIR to a directory this user can create and write, mode 0700)`,
    { cause: e, context: { keysDir } },
  );
}

/** Read `path`, or write `make()` there first when it does not exist. */
function readOrCreate(keysDir: string, path: string, make: () => KeyFile): { file: KeyFile; created: boolean } {
  if (!existsSync(path)) {
    try {
      writeKeyFile(path, make());
      return { file: readKeyFile(path), created: true };
    } catch (e) {
      // Another process may have written it in the meantime: use that one.
      if (!(isCoded(e, "KEY_FILE_EXISTS") && existsSync(path)))
        throw keysUnavailable(keysDir, `cannot write ${path}`, e);
    }
  }
  try {
    return { file: readKeyFile(path), created: false };
  } catch (e) {
    throw keysUnavailable(keysDir, `cannot use ${path}`, e);
  }
}

function isCoded(e: unknown, code: string): boolean {
  return typeof e === "object" && e !== null && (e as { code?: unknown }).code === code;
}

/**
 * The deployment's key pair from `<keysDir>/principal.json`, created (with the directory, 0700)
 * when missing.
 * @throws PrincipalStartError KEYS_UNAVAILABLE naming the directory and `CDKTR_KEYS_DIR`.
 */
export function loadPrincipalKey(keysDir: string, logger: Logger): KeyPair {
  const path = join(keysDir, PRINCIPAL_KEY_FILE);
  const { file, created } = readOrCreate(keysDir, path, () => {
    const pair = generateKeyPair();
    return { name: "principal", role: "principal", ...pair, principalPublicKey: pair.publicKey };
  });
  if (file.role !== "principal" || file.principalPublicKey !== file.publicKey) {
    throw new PrincipalStartError(
      "KEYS_UNAVAILABLE",
      `${path} is not a principal key file (its role is ${file.role}; a principal key file has role "principal" and pins its own public key): move it away, or set CDKTR_KEYS_DIR to the deployment's keys directory`,
      { context: { keysDir } },
    );
  }
  if (created) logger.info("created the principal key pair", { file: path, publicKey: file.publicKey });
  try {
    if ((statSync(keysDir).mode & 0o077) !== 0 && process.platform !== "win32") {
      logger.warn("the keys directory may be read by other users: run `chmod 700` on it", { keysDir });
    }
  } catch {
    /* checked by the reads above */
  }
  return { publicKey: file.publicKey, secretKey: file.secretKey };
}

function readOrCreateLocalKey(
  keysDir: string,
  name: string,
  role: KeyRole,
  principalPublicKey: string,
): { path: string; file: KeyFile; created: boolean } {
  const path = join(keysDir, `${name}.json`);
  const made = readOrCreate(keysDir, path, () => ({
    name,
    role,
    scope: name,
    workflows: null,
    ...generateKeyPair(),
    principalPublicKey,
  }));
  return { path, ...made };
}

/** One file {@link initKeysDir} made or found. */
export interface KeysDirEntry {
  name: string;
  /** `principal` for the deployment's pair, else the client key's role. */
  role: KeyRole | "principal";
  path: string;
  created: boolean;
}

/**
 * Make a deployment's key files in `keysDir` without starting a principal: the principal pair and
 * the local client keys, exactly as a principal's first start would (files that exist are kept).
 * For deployments whose principal reads its keys from a read-only mount (Kubernetes Secrets): the
 * principal then enrols the local keys from the files on its first start.
 * @throws PrincipalStartError KEYS_UNAVAILABLE naming the directory.
 */
export function initKeysDir(keysDir: string): KeysDirEntry[] {
  const principalPath = join(keysDir, PRINCIPAL_KEY_FILE);
  const existed = existsSync(principalPath);
  const foreign = (path: string) =>
    new PrincipalStartError(
      "KEYS_UNAVAILABLE",
      `${path} pins another principal key than ${principalPath} (a file of another deployment): move it away, or use an empty directory`,
      { context: { keysDir } },
    );
  // Without principal.json, a local key file can only be another deployment's: refuse before writing.
  const stray = existed ? undefined : LOCAL_KEYS.map((k) => join(keysDir, `${k.name}.json`)).find((p) => existsSync(p));
  if (stray !== undefined) throw foreign(stray);
  const { publicKey } = loadPrincipalKey(keysDir, noopLogger);
  const entries: KeysDirEntry[] = [{ name: "principal", role: "principal", path: principalPath, created: !existed }];
  for (const { name, role } of LOCAL_KEYS) {
    const { path, file, created } = readOrCreateLocalKey(keysDir, name, role, publicKey);
    if (file.principalPublicKey !== publicKey) throw foreign(path);
    entries.push({ name, role, path, created });
  }
  return entries;
}

/**
 * Make the local client key files that are missing and enrol each in the store unless the store
 * knows its name (a name enrolled with another public key, or revoked, is left alone with a
 * warning: the operator decided).
 * @throws PrincipalStartError KEYS_UNAVAILABLE when a file cannot be written or read.
 */
export async function ensureLocalKeys(
  keysDir: string,
  principalPublicKey: string,
  store: Store,
  logger: Logger,
): Promise<void> {
  const known = new Map((await store.listKeys()).map((k) => [k.name, k]));
  for (const { name, role } of LOCAL_KEYS) {
    const { path, file, created } = readOrCreateLocalKey(keysDir, name, role, principalPublicKey);
    if (created) logger.info("created a local client key", { key: name, role, file: path });
    if (file.principalPublicKey !== principalPublicKey) {
      // The principal pair was rotated (docs/security.md): the local files are this principal's
      // own, so they follow; the clients' pairs stay, and so does their enrolment.
      try {
        writeKeyFile(path, { ...file, principalPublicKey }, { overwrite: true });
      } catch (e) {
        throw keysUnavailable(keysDir, `cannot update ${path}`, e);
      }
      logger.info("a local key file now pins the new principal key", { key: name, file: path });
    }
    const enrolled = known.get(name);
    if (enrolled !== undefined) {
      if (enrolled.revokedAt !== null) {
        logger.warn("a local key is revoked: not enrolled again (enrol a new key under that name to use it)", {
          key: name,
        });
      } else if (enrolled.publicKey !== file.publicKey) {
        logger.warn("a local key name is enrolled with another public key: left as is, the key file does not work", {
          key: name,
          file: path,
        });
      }
      continue;
    }
    try {
      await store.enrollKey({
        name,
        role: file.role === "principal" ? role : file.role,
        scope: file.scope ?? name,
        workflows: file.workflows ?? null,
        publicKey: file.publicKey,
      });
      logger.info("enrolled a local client key", { key: name, role: file.role });
    } catch (e) {
      if (!isCdktrError(e, "KEY_IN_USE")) throw e;
      logger.warn("a local key file was not enrolled", { key: name, error: e.message });
    }
  }
}
