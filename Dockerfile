# syntax=docker/dockerfile:1
# vault-mtls-sidecar: compile TypeScript in one stage, ship only dist/ and production dependencies.

FROM node:20-bookworm-slim AS build
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build && npm prune --omit=dev

FROM node:20-bookworm-slim
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
