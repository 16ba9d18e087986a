// Package deploy holds Sluice's deployment files and, in its tests, their offline checks.
//
// The files:
//
//   - Dockerfile: the container image (multi-stage, static binary, distroless, non-root).
//   - kubernetes/: Deployment, Services, ConfigMap with the limits config, Secret with the
//     Redis URL, PodDisruptionBudget, HorizontalPodAutoscaler, and their kustomization.yaml.
//   - helm/sluice/: the same as a Helm chart; helm/helmcheck/ (a module of its own) checks
//     that internal/chartrender renders it as Helm does.
//   - redis-cluster/: an example six-node Redis Cluster for Kubernetes.
//   - envoy/: an Envoy bootstrap whose global rate-limit filter asks Sluice.
//   - local/: scripts that start a Redis Cluster or a Sentinel setup on loopback ports.
//   - examples/ and gateway/: example configs of Sluice and of sluice-gateway.
//
// go test ./deploy decodes every Kubernetes manifest strictly into its k8s.io/api type,
// the Envoy bootstrap strictly into Envoy's protos, loads the ConfigMap's limits with
// Sluice's own config loader, renders the Helm chart with its default values and each
// file of helm/sluice/ci/ and checks its objects the same way, checks that the pieces
// point at each other (probes at declared ports, selectors at the pods, Envoy's
// descriptors at configured limits), and checks the shell scripts; without -short it also
// runs the local scripts against a real redis-server. Nothing here needs a cluster, Docker
// or the network.
package deploy
