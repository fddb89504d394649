/**
 * Who is on the other end of a connection: the enrolled client key (its name, role, idempotency
 * scope and workflow allow-list), as `hello` reports it and `listKeys` lists it. Secret keys are
 * never part of these records.
 */
import { z } from "zod";
import { IsoTimeSchema, WorkflowIdSchema } from "../records.js";
import { isZ85 } from "./z85.js";

/**
 * Roles of client keys (docs/security.md has the matrix): `agent` runs work, `trigger` starts
 * runs and follows its own, `scheduler` is a trigger that may list runs and use `cron:` keys,
 * `reader` reads everything, `operator` may do everything.
 */
export const KEY_ROLES = ["operator", "reader", "scheduler", "trigger", "agent", "dashboard"] as const;
/** A client key's role. */
export const KeyRoleSchema = z.enum(KEY_ROLES);
/** Type of {@link KeyRoleSchema}. */
export type KeyRole = z.infer<typeof KeyRoleSchema>;

/** A CURVE public or secret key in Z85 (40 characters). */
export const Z85KeySchema = z
  .string()
  .length(40)
  .refine(isZ85, "a CURVE key is 40 characters of Z85 (as ZeroMQ writes it)");

/** A key's name: letters, digits, `_`, `-`, `.`; 1 to 64 characters. */
export const KeyNameSchema = z
  .string()
  .min(1)
  .max(64)
  .regex(/^[A-Za-z0-9_][A-Za-z0-9_.-]*$/, "key names use letters, digits, '_', '-' and '.'");

/** The identity bound to a connection by `hello`. */
export const KeyIdentitySchema = z.object({
  name: KeyNameSchema,
  role: KeyRoleSchema,
  /** Idempotency keys of this key live in this scope (replicas sharing a scope dedupe each other). */
  scope: KeyNameSchema,
  /** Workflows this key may trigger; null = any. */
  workflows: z.array(WorkflowIdSchema).nullable(),
  publicKey: Z85KeySchema,
});
/** Type of {@link KeyIdentitySchema}. */
export type KeyIdentity = z.infer<typeof KeyIdentitySchema>;

/** An enrolled key as `listKeys` shows it (never its secret half). */
export const KeyRecordSchema = KeyIdentitySchema.extend({
  createdAt: IsoTimeSchema,
  /** When it was revoked; null while valid. */
  revokedAt: IsoTimeSchema.nullable(),
});
/** Type of {@link KeyRecordSchema}. */
export type KeyRecord = z.infer<typeof KeyRecordSchema>;
