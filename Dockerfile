# syntax=docker/dockerfile:1
# vault-mtls-sidecar: bundle the TypeScript in one stage (esbuild, scripts/build.mjs), ship dist/ on
# Node 24 LTS. The bundle carries every dependency but pino-pretty (log.format: pretty), which
# stays in the pruned node_modules.

FROM node:24-bookworm-slim AS build
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY scripts/build.mjs ./scripts/
COPY src ./src
RUN npm run build && npm prune --omit=dev

FROM node:24-bookworm-slim
ENV NODE_ENV=production
WORKDIR /app
COPY --from=build /src/package.json ./
COPY --from=build /src/node_modules ./node_modules
COPY --from=build /src/dist ./dist
# The image's "node" user (uid 1000); nothing is written to the filesystem, so
# readOnlyRootFilesystem works.
USER 1000:1000
EXPOSE 8443 15000
# Run through the bin's #! line, which carries the node flags the sidecar is measured with.
ENTRYPOINT ["/app/dist/main.js"]
CMD ["run", "--config", "/etc/sidecar/config.yaml"]
