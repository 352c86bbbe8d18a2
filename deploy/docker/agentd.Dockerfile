# The agentd service: one static binary on an empty base, run as a non-root user.
# Built by `make images` from a context holding bin/static/agentd (CGO_ENABLED=0) and deploy/docker/rootfs.
FROM scratch
COPY rootfs/ /
COPY ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY agentd /usr/local/bin/agentd
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/agentd"]
