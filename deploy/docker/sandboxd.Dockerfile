# The sandboxd service and the sandbox-agent it injects into every sandbox, as static binaries on an
# empty base, run as a non-root user. sandboxd needs the engine socket (mount it and add the socket's
# group) and a run directory whose path is the same on the host and in this container, because the
# engine resolves bind-mount sources (the agent binary and each sandbox's socket directory) on the host.
# Built by `make images`: static binaries (CGO_ENABLED=0), the health check and deploy/docker/rootfs.
FROM scratch
COPY rootfs/ /
COPY mgx-healthcheck /usr/local/bin/mgx-healthcheck
COPY ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY sandboxd sandbox-agent /usr/local/bin/
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/sandboxd"]
