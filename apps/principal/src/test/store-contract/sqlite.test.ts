/** The store contract against the SQLite store (a temp file per test). */
import { authContract } from "./auth-contract.js";
import { storeContract } from "./contract.js";
import { sqliteHarness } from "./harness.js";
import { readContract } from "./read-contract.js";
import { retryContract } from "./retry-contract.js";

storeContract(sqliteHarness());
authContract(sqliteHarness());
readContract(sqliteHarness());
retryContract(sqliteHarness());
