# syntax=docker/dockerfile:1
# vault-mtls-sidecar: bundle the TypeScript in one stage (esbuild, scripts/build.mjs), ship dist/ on
# Node 24 LTS. The bundle carries every dependency but pino-pretty (log.format: pretty): the image
# gets pino-pretty and its dependencies only, not the whole production node_modules.
#
# Builds with docker or podman (`podman build .`, see docs/kubernetes.md "Building the image without Docker").

FROM node:24-bookworm-slim AS build
# Marks the build stage's images (they are not part of the product) so a build script can prune
# them: scripts/install-image.sh removes them after each build (~165 MB a rebuild otherwise).
LABEL io.vault-mtls-sidecar.stage=build
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY scripts/build.mjs ./scripts/
COPY scripts/image/runtime-modules.cjs ./scripts/image/
COPY src ./src
RUN npm run build
# The runtime root: the node binary, the shared libraries it links (from ldd, so any architecture),
# env for the bin's #! line, and the user — no shell, no package manager, no other program.
RUN set -eu; mkdir -p /rootfs/usr/local/bin /rootfs/usr/bin /rootfs/etc /rootfs/app; \
    cp /usr/local/bin/node /rootfs/usr/local/bin/node; cp /usr/bin/env /rootfs/usr/bin/env; \
    for lib in $({ ldd /usr/local/bin/node; ldd /usr/bin/env; } | grep -o '/[^ ]*' | sort -u); do cp --parents -L "$lib" /rootfs; done; \
    echo 'node:x:1000:1000::/nonexistent:/usr/sbin/nologin' > /rootfs/etc/passwd; \
    echo 'node:x:1000:' > /rootfs/etc/group; \
    # Names from /etc/hosts (hostAliases, the pod's own name) before DNS, as glibc without this file
    # would not do: it asks DNS first and takes its "no such name" as the answer.
    echo 'hosts: files dns' > /rootfs/etc/nsswitch.conf; \
    cp package.json /rootfs/app/ && cp -r dist /rootfs/app/; \
    # The packages the bundle leaves out (scripts/build.mjs: external) and what they depend on.
    for pkg in $(node scripts/image/runtime-modules.cjs pino-pretty); do cp -r --parents "$pkg" /rootfs/app/; done

FROM scratch
COPY --from=build /rootfs /
ENV PATH=/usr/local/bin:/usr/bin NODE_ENV=production
WORKDIR /app
# uid 1000 (the user "node"); nothing is written to the filesystem, so readOnlyRootFilesystem works.
USER 1000:1000
EXPOSE 8443 15000
# Run through the bin's #! line (/usr/bin/env -S node <flags>), which carries the node flags the
# sidecar is measured with. Exec form: the sidecar is PID 1 and handles SIGTERM itself.
ENTRYPOINT ["/app/dist/main.js"]
CMD ["run", "--config", "/etc/sidecar/config.yaml"]
