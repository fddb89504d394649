# One image for every cdktr app: `docker run cdktr start principal|agent|scheduler|listeners`.
# Build: docker build -t cdktr .   (or `docker compose build`)

# --- build: install (native modules compiled here), compile, drop dev dependencies ------------
FROM node:20-bookworm-slim AS build
# Toolchain for native modules that have no prebuilt binary for this platform (better-sqlite3).
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 make g++ ca-certificates \
 && rm -rf /var/lib/apt/lists/*
# The lockfile is written by npm 11 (it honours the root `allowScripts`).
RUN npm install -g npm@11 --no-audit --no-fund
WORKDIR /app
COPY . .
ENV TURBO_TELEMETRY_DISABLED=1
RUN npm ci --no-audit --no-fund \
 && npx turbo run build \
 && npm prune --omit=dev --no-audit --no-fund \
 && find apps packages -type d -name test -path '*/dist/*' -prune -exec rm -rf {} + \
 && find apps packages -name '*.test.*' -path '*/dist/*' -delete \
 && rm -rf apps/*/src packages/*/src .turbo

# --- runtime ------------------------------------------------------------------------------------
FROM node:20-bookworm-slim
ENV NODE_ENV=production \
    PATH=/app/node_modules/.bin:$PATH \
    CDKTR_WORKFLOW_DIR=/workflows \
    CDKTR_DB_PATH=/data/cdktr.db
WORKDIR /app
COPY --from=build /app /app
# /data holds the principal's database, /keys the key files (CDKTR_KEYS_DIR, made by the
# principal on first start: no key is ever part of the image), /state the listeners' state; a
# named volume mounted there inherits this ownership and mode. /workflows is where workflow files
# are mounted.
RUN mkdir -p /data /keys /state /workflows \
 && cp -r /app/examples/workflows/. /workflows/ \
 && chown -R node:node /data /keys /state \
 && chmod 700 /keys /state
USER node
EXPOSE 5561 5562 5563
HEALTHCHECK --interval=15s --timeout=5s --start-period=10s --retries=3 CMD ["cdktr", "ping"]
ENTRYPOINT ["cdktr"]
CMD ["--help"]
