/**
 * The store contract against the PostgreSQL store: the machine's server on 127.0.0.1:5432, a
 * schema per suite (dropped at the end). Skips without the server, fails with `CI` set.
 */
import { authContract } from "./auth-contract.js";
import { storeContract } from "./contract.js";
import { postgresHarness } from "./harness.js";
import { readContract } from "./read-contract.js";
import { retryContract } from "./retry-contract.js";

storeContract(postgresHarness());
authContract(postgresHarness());
readContract(postgresHarness());
retryContract(postgresHarness());
