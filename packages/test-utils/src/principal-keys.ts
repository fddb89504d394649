/**
 * The key files of a fixture's principal: where its keys directory is, the local client keys a
 * principal makes on first start (written up front for processes started before it), reading one
 * of them, and writing a fresh client key that pins the principal's key.
 */
import { existsSync } from "node:fs";
import { isAbsolute, join } from "node:path";
import {
  PRINCIPAL_KEY_FILE,
  clientKeyOf,
  generateKeyPair,
  readKeyFile,
  writeKeyFile,
  type ClientKey,
  type KeyRole,
} from "@cdktr/protocol";
import { PrincipalFixtureError, type CreateKeyOptions } from "./principal-options.js";

/** The client keys a principal makes on first start (apps/principal's `auth/local-keys.ts`). */
const LOCAL_KEYS: readonly { name: string; role: KeyRole }[] = [
  { name: "local-operator", role: "operator" },
  { name: "local-agent", role: "agent" },
  { name: "local-scheduler", role: "scheduler" },
  { name: "local-listeners", role: "trigger" },
  { name: "local-dashboard", role: "dashboard" },
];

/** The keys directory of a principal with HOME `home` and `CDKTR_KEYS_DIR` `setting` (`~/` and relative paths under `home`). */
export function keysDirOf(home: string, setting: string | undefined): string {
  return setting === undefined || setting === ""
    ? join(home, ".cdktr", "keys")
    : setting.startsWith("~/")
      ? join(home, setting.slice(2))
      : isAbsolute(setting)
        ? setting
        : join(home, setting);
}

/**
 * Write the key files the principal would make on its first start in `keysDir` (its pair and the
 * local client keys). Files that exist are kept.
 */
export function provisionLocalKeys(keysDir: string): void {
  const principalFile = join(keysDir, PRINCIPAL_KEY_FILE);
  if (!existsSync(principalFile)) {
    const pair = generateKeyPair();
    writeKeyFile(principalFile, {
      name: "principal",
      role: "principal",
      ...pair,
      principalPublicKey: pair.publicKey,
    });
  }
  const principal = readKeyFile(principalFile);
  for (const { name, role } of LOCAL_KEYS) {
    const path = join(keysDir, `${name}.json`);
    if (existsSync(path)) continue;
    writeKeyFile(path, {
      name,
      role,
      scope: name,
      workflows: null,
      ...generateKeyPair(),
      principalPublicKey: principal.publicKey,
    });
  }
}

/**
 * The client key in `<keysDir>/<name>.json`.
 * @throws PrincipalFixtureError NO_KEY when the file does not exist (yet).
 */
export function readClientKey(keysDir: string, name: string): ClientKey {
  const path = join(keysDir, `${name}.json`);
  if (!existsSync(path)) {
    throw new PrincipalFixtureError(
      "NO_KEY",
      `no key file ${path}: the principal makes its keys on first start (start it first, or prepare it with ports: "reserved")`,
    );
  }
  return clientKeyOf(readKeyFile(path));
}

/**
 * Write a fresh client key `name` of `role` to `<home>/client-keys/<name>.json` (0600), pinning
 * `principalPublicKey`; returns the file's path and the key.
 */
export function writeClientKey(
  home: string,
  name: string,
  role: KeyRole,
  options: CreateKeyOptions,
  principalPublicKey: string,
): { path: string; key: ClientKey } {
  const pair = generateKeyPair();
  const path = join(home, "client-keys", `${name}.json`);
  writeKeyFile(path, {
    name,
    role,
    scope: options.scope ?? name,
    workflows: options.workflows ?? null,
    ...pair,
    principalPublicKey,
  });
  return { path, key: { name, ...pair, principalPublicKey } };
}
