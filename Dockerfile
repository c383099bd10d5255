# Replicant's image: only dist/ and the production dependencies, run as the non-root user `node`.
#   docker build -t replicant .
#   docker run --rm replicant sync --source redis://10.0.0.1:6379 --target redis://10.0.0.2:6379
# node:22-bookworm-slim: Node 22 LTS satisfies engines (>= 20.19) and is supported longer than 20;
# Debian (glibc) like the machines the tests run on, slim for size (no native dependencies to build).
# test/integration/docker-build-steps.test.ts runs these steps (COPY, RUN) in a temp dir.

# Production dependencies only (--ignore-scripts: the `prepare` script would build without src/).
FROM node:22-bookworm-slim AS deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund

# dist/ from src/ with the dev dependencies (typescript).
FROM node:22-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build

# The runtime: no npm cache, no sources, no dev dependencies; files owned by root, read-only for `node`.
FROM node:22-bookworm-slim
ENV NODE_ENV=production
WORKDIR /app
COPY package.json package-lock.json ./
COPY --from=deps /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
USER node
# --metrics-port 9121 --metrics-host 0.0.0.0 serves /metrics, /status and /healthz (off by default).
EXPOSE 9121
# Exec form: node is PID 1 and receives SIGTERM itself (`replicant sync` stops gracefully on it).
ENTRYPOINT ["node", "dist/cli/main.js"]
CMD ["--help"]
