// Package deploy holds what runs imaged in production: the Kubernetes manifests (k8s/, a
// kustomize base and overlays), the prometheus-adapter rules behind the worker autoscaler, the
// Prometheus configuration and alert rules, and the Grafana dashboard. The Dockerfile is at the
// repository root.
//
// The package has no code; its tests check those files: every manifest decodes strictly into
// the Kubernetes API types, every overlay builds with kustomize, every setting a manifest gives
// the pods is one imaged reads, and a real Prometheus scrapes a running imaged, evaluates the
// alert rules and answers the dashboard's queries.
package deploy
