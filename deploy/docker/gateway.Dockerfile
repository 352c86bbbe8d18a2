# The gateway service: one static binary on an empty base, run as a non-root user.
# Built by `make images`: static binaries (CGO_ENABLED=0), the health check and deploy/docker/rootfs.
FROM scratch
COPY rootfs/ /
COPY mgx-healthcheck /usr/local/bin/mgx-healthcheck
COPY ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY gateway /usr/local/bin/gateway
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/gateway"]
