// Package deploy holds the product's deployment artefacts — service images (docker/), the compose
// topology (compose.yaml) and the Kubernetes manifests (k8s/) — and the offline tests that validate
// them. The `make run` launcher is its own module in local/.
package deploy
