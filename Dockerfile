# One image for every cdktr app: `docker run cdktr start principal|agent|scheduler|listeners|dashboard`.
# Build: docker build -t cdktr .   (or `docker compose build`)

# --- build: install (native modules compiled here), compile, drop dev dependencies ------------
FROM node:26-bookworm-slim AS build
# Toolchain for native modules that have no prebuilt binary for this platform (better-sqlite3).
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 make g++ ca-certificates \
 && rm -rf /var/lib/apt/lists/*
# The lockfile is written by npm 11 (it honours the root `allowScripts`).
RUN npm install -g npm@11 --no-audit --no-fund
WORKDIR /app
COPY . .
ENV TURBO_TELEMETRY_DISABLED=1 \
    CDKTR_IMAGE_BUILD=1
# Only the apps and the libraries they import are built; then the private workspaces (bench, soak,
# e2e, test fixtures) and every dev dependency are dropped, and native modules keep this platform's
# addon only (scripts/image-slim.mjs fails the build if their layout changes).
RUN npm ci --no-audit --no-fund \
 && npx turbo run build --filter='./apps/*' --filter='./packages/*' \
 && node scripts/image-slim.mjs workspaces \
 && npm prune --omit=dev --no-audit --no-fund \
 && node scripts/image-slim.mjs native \
 && find apps packages -type d -name test -path '*/dist/*' -prune -exec rm -rf {} + \
 && find apps packages -name '*.test.*' -path '*/dist/*' -delete \
 && rm -rf apps/*/src packages/*/src apps/*/tsconfig.json packages/*/tsconfig.json apps/dashboard/ui

# --- runtime ------------------------------------------------------------------------------------
FROM node:26-bookworm-slim
ENV NODE_ENV=production \
    PATH=/app/node_modules/.bin:$PATH \
    CDKTR_WORKFLOW_DIR=/workflows \
    CDKTR_DB_PATH=/data/cdktr.db
WORKDIR /app
# What the apps read at run time: the root manifest, the workspaces' package.json and dist, and
# the pruned node_modules (its @cdktr/* entries are links into apps/ and packages/).
COPY --from=build /app/package.json /app/package.json
COPY --from=build /app/node_modules /app/node_modules
COPY --from=build /app/apps /app/apps
COPY --from=build /app/packages /app/packages
COPY --from=build /app/examples/workflows /workflows
# /data holds the principal's database, /keys the key files (CDKTR_KEYS_DIR, made by the
# principal on first start: no key is ever part of the image), /state the listeners' state; a
# named volume mounted there inherits this ownership and mode. /workflows is where workflow files
# are mounted.
RUN mkdir -p /data /keys /state \
 && chown -R node:node /data /keys /state \
 && chmod 700 /keys /state
USER node
# Each process answers /healthz and /readyz about itself on its metrics port (loopback inside the
# container; set CDKTR_METRICS_HOST=0.0.0.0 for a scraper outside it). `cdktr health` asks it.
ENV CDKTR_METRICS_PORT=9464
EXPOSE 5561 5562 5563 5564 9464
HEALTHCHECK --interval=15s --timeout=5s --start-period=15s --retries=3 CMD ["cdktr", "health"]
ENTRYPOINT ["cdktr"]
CMD ["--help"]
