export * from "./records.js";
export * from "./messages.js";
export * from "./errors.js";
export * from "./topics.js";
