# Outpost gateway image: multi-stage, small runtime, non-root, data on a volume.
# Builds for linux/amd64 and linux/arm64 (Raspberry Pi 4/5):
#   docker buildx build --platform linux/amd64,linux/arm64 -t outpost .
# The build runs the same steps as CI (`npm ci`, `npm run build`); native modules
# (classic-level, serialport) ship prebuilt binaries for both architectures.

FROM node:22-bookworm-slim AS build
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json ./
COPY scripts ./scripts
COPY runtime ./runtime
COPY adapters ./adapters
COPY storage ./storage
COPY flows ./flows
COPY test ./test
COPY bench ./bench
RUN npm run build \
 && npm prune --omit=dev --ignore-scripts


FROM node:22-bookworm-slim
ENV NODE_ENV=production \
    OUTPOST_DATADIR=/data
WORKDIR /app
COPY --from=build /src/package.json ./
COPY --from=build /src/node_modules ./node_modules
COPY --from=build /src/dist/runtime ./dist/runtime
COPY --from=build /src/dist/adapters ./dist/adapters
COPY --from=build /src/dist/storage ./dist/storage
COPY --from=build /src/dist/flows ./dist/flows
COPY outpost.example.yaml ./
RUN mkdir -p /data /config && chown node:node /data
USER node
VOLUME ["/data"]
# Inside a container the listeners must bind 0.0.0.0 to be reachable: set
# OUTPOST_HTTP_HOST / OUTPOST_BROKER_MQTT_HOST and configure broker.users and http.tokens,
# because anonymous access is only ever granted to loopback clients.
EXPOSE 1883 8080
HEALTHCHECK --interval=30s --timeout=5s CMD node -e "fetch('http://127.0.0.1:'+(process.env.OUTPOST_HTTP_PORT||8080)+'/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"
ENTRYPOINT ["node", "dist/runtime/cli.js"]
CMD ["start", "-c", "/config/outpost.yaml"]
