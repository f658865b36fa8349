// Package deploy holds the checks of what ships for running the relay in a
// cluster: the Helm chart (charts/relay), the Grafana dashboard
// (dashboards/relay.json) and the Prometheus alert rules
// (deploy/prometheus/relay-rules.yml, embedded by the chart); and on one
// machine: docker-compose.yml with its Prometheus and Grafana files
// (deploy/compose/).
//
// The tests render the chart with helm, decode every manifest strictly into
// the Kubernetes API types, hold the pod to the restricted Pod Security
// Standard, check the values the chart must refuse, and run promtool over the
// rules. helm comes from .ci/helm.sh (GOPATH/bin), promtool from
// .ci/promtool.sh. That the dashboard and the rules name only metrics the
// relay exports is checked in cmd/relay, which can start a relay.
//
// compose_test.go loads docker-compose.yml with compose-go (the library of
// `docker compose`), holds the services to their contract (health checks,
// start order, loopback-only ports, a read-only relay, RELAY_* variables the
// relay reads, credentials from the environment) and follows every path the
// Prometheus and Grafana files name back to the repository file mounted
// there. .ci/compose.sh runs Debian's docker-compose over the file as well.
package deploy
