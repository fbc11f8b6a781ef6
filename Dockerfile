# syntax=docker/dockerfile:1
# Signet: a standalone JWT signing service.
#   docker build -t signet .            (the last stage, `signet`, is the default target)
# Compose with the example app server: docker-compose.yml; details in README.md, section Docker.

# --- build: TypeScript and the native modules (better-sqlite3, pkcs11js) -------------------
# The full Node image has python3, make and g++ for node-gyp when no prebuilt binary fits.
FROM node:24-bookworm AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci
COPY tsconfig.json ./
COPY scripts/bundle-typebox.mjs ./scripts/
COPY src ./src
RUN npm run build && npm prune --omit=dev

# --- runtime base: slim Node 24, production dependencies and compiled code, non-root -------
FROM node:24-bookworm-slim AS base
ENV NODE_ENV=production
WORKDIR /app
COPY --from=build /app/package.json ./package.json
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY bin ./bin
# /data: the database (a volume). /tokens: where `signet clients create --token-file`
# can leave client tokens for sibling containers (see docker-compose.yml).
RUN mkdir -p /data /tokens && chown node:node /data /tokens
USER node

# --- the example app server (examples/app-server), used by docker-compose.yml ----------------
FROM base AS example-app
COPY --chown=node:node examples/app-server ./examples/app-server
ENV PORT=3000
EXPOSE 3000
CMD ["node", "examples/app-server/server.js"]

# --- Signet (default target) -----------------------------------------------------------------
FROM base AS signet
# Listen on every interface of the container; SIGNET_MASTER_KEY_FILE comes from a secret.
ENV SIGNET_HOST=0.0.0.0 \
    SIGNET_PORT=8080 \
    SIGNET_DB=/data/signet.db
VOLUME ["/data"]
EXPOSE 8080
# No curl or wget in the image: Node itself asks /healthz.
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:' + (process.env.SIGNET_PORT || 8080) + '/healthz').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
ENTRYPOINT ["node", "bin/signet.cjs"]
CMD ["serve"]
