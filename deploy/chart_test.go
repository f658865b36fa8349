package deploy

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// valuesFiles are the chart's CI values (charts/relay/ci): the least a
// release needs, several replicas, and every optional part on.
var valuesFiles = []string{"default-values.yaml", "scaled-values.yaml", "full-values.yaml"}

func TestChartLint(t *testing.T) {
	helm := tool(t, "helm", "")
	for _, f := range valuesFiles {
		if out, err := runTool(helm, "lint", "--strict", chartDir, "-f", filepath.Join(chartDir, "ci", f)); err != nil {
			t.Errorf("helm lint with %s: %v\n%s", f, err, out)
		}
	}
}

// renderFile renders the chart with one CI values file and decodes it.
func renderFile(t *testing.T, file string, sets ...string) (*manifests, []byte) {
	t.Helper()
	out, err := helmTemplate(t, []string{file}, sets...)
	if err != nil {
		t.Fatal(err)
	}
	return decodeManifests(t, out), out
}

// checkCommon holds for every render: a restricted pod, the probes, a
// grace period above the shutdown bound, and selectors that match the pods.
func checkCommon(t *testing.T, m *manifests) {
	t.Helper()
	pod := m.deployment.Spec.Template
	checkRestricted(t, pod.Spec)
	c := m.container(t)
	probe := func(name string, p *corev1.Probe, path string) {
		if p == nil || p.HTTPGet == nil || p.HTTPGet.Path != path || p.HTTPGet.Port != intstr.FromString("http") {
			t.Errorf("%s probe: want GET %s on port http, got %+v", name, path, p)
		}
	}
	probe("startup", c.StartupProbe, "/healthz")
	probe("liveness", c.LivenessProbe, "/healthz")
	probe("readiness", c.ReadinessProbe, "/readyz")
	if c.Resources.Requests.Cpu().IsZero() || c.Resources.Limits.Memory().IsZero() {
		t.Error("no CPU request or memory limit")
	}
	if !selects(m.deployment.Spec.Selector.MatchLabels, pod.Labels) || !selects(m.service.Spec.Selector, pod.Labels) {
		t.Error("the Deployment's or the Service's selector misses the pods")
	}
	env := m.env(t)
	if env["RELAY_HTTP_ADDR"].Value != "0.0.0.0:8080" || env["RELAY_DATA_DIR"].Value != "/data" {
		t.Errorf("RELAY_HTTP_ADDR %q RELAY_DATA_DIR %q", env["RELAY_HTTP_ADDR"].Value, env["RELAY_DATA_DIR"].Value)
	}
	if !mounted(c, "data", "/data") || !mounted(c, "tmp", "/tmp") {
		t.Error("/data or /tmp is not a volume (the root filesystem is read-only)")
	}
	if m.serviceAccount == nil || pod.Spec.ServiceAccountName != m.serviceAccount.Name {
		t.Error("the pod does not use the chart's ServiceAccount")
	}
	for _, e := range c.Env {
		if strings.Contains(e.Name, "TOKEN") && !strings.HasSuffix(e.Name, "_FILE") && e.Value != "" {
			t.Errorf("%s carries a plain value", e.Name)
		}
	}
}

func mounted(c corev1.Container, volume, path string) bool {
	for _, vm := range c.VolumeMounts {
		if vm.Name == volume && vm.MountPath == path {
			return true
		}
	}
	return false
}

func TestChartDefault(t *testing.T) {
	m, _ := renderFile(t, "default-values.yaml")
	checkCommon(t, m)
	spec := m.deployment.Spec
	if *spec.Replicas != 1 || m.pdb != nil || m.hpa != nil || m.pvc != nil || m.netpol != nil ||
		m.serviceMonitor != nil || m.prometheusRule != nil || len(m.configMaps) != 0 {
		t.Error("a single replica renders only the Deployment, Service, ServiceAccount and Secret")
	}
	if got := *spec.Template.Spec.TerminationGracePeriodSeconds; got != 25 {
		t.Errorf("terminationGracePeriodSeconds %d, want 15s shutdown + 10", got)
	}
	if string(m.secret.Data["api-tokens"]) != "ci-token-one" {
		t.Errorf("Secret data %v", m.secret.Data)
	}
	ref := m.env(t)["RELAY_API_TOKENS"].ValueFrom
	if ref == nil || ref.SecretKeyRef == nil || ref.SecretKeyRef.Name != m.secret.Name || ref.SecretKeyRef.Key != "api-tokens" {
		t.Errorf("RELAY_API_TOKENS not from the Secret: %+v", ref)
	}
	if spec.Template.Spec.Volumes[0].EmptyDir == nil {
		t.Error("/data is not an emptyDir without persistence")
	}
	if len(m.service.Spec.Ports) != 1 || m.service.Spec.Ports[0].Port != 8080 {
		t.Errorf("Service ports %+v, want http 8080 only", m.service.Spec.Ports)
	}
}

func TestChartScaled(t *testing.T) {
	m, _ := renderFile(t, "scaled-values.yaml")
	checkCommon(t, m)
	if m.secret != nil {
		t.Error("the chart renders a Secret next to existingSecret")
	}
	if m.deployment.Spec.Replicas != nil {
		t.Error("the Deployment sets replicas under an autoscaler")
	}
	if m.hpa == nil || m.hpa.Spec.MaxReplicas != 5 || *m.hpa.Spec.MinReplicas != 2 || m.hpa.Spec.ScaleTargetRef.Name != m.deployment.Name {
		t.Errorf("HPA %+v", m.hpa)
	}
	if m.pdb == nil || !selects(m.pdb.Spec.Selector.MatchLabels, m.deployment.Spec.Template.Labels) {
		t.Fatal("no PodDisruptionBudget over the pods with two replicas or more")
	}
	env := m.env(t)
	for name, key := range map[string]string{"RELAY_API_TOKENS": "api-tokens", "RELAY_REDIS_URL": "redis-url"} {
		ref := env[name].ValueFrom
		if ref == nil || ref.SecretKeyRef == nil || ref.SecretKeyRef.Name != "relay-credentials" || ref.SecretKeyRef.Key != key {
			t.Errorf("%s not from relay-credentials/%s: %+v", name, key, env[name])
		}
	}
	if env["RELAY_NATS_CREDS_FILE"].Value != "/etc/relay/secrets/nats.creds" || env["RELAY_CABLE_PER_CONN"].Value != "150" {
		t.Errorf("RELAY_NATS_CREDS_FILE %q RELAY_CABLE_PER_CONN %q", env["RELAY_NATS_CREDS_FILE"].Value, env["RELAY_CABLE_PER_CONN"].Value)
	}
	if len(m.deployment.Spec.Template.Spec.TopologySpreadConstraints) != 2 {
		t.Error("replicas are not spread over zones and nodes")
	}
}

func TestChartFull(t *testing.T) {
	m, out := renderFile(t, "full-values.yaml")
	checkCommon(t, m)
	if got := *m.deployment.Spec.Template.Spec.TerminationGracePeriodSeconds; got != 100 {
		t.Errorf("terminationGracePeriodSeconds %d, want 1m30s + 10", got)
	}
	if m.pvc == nil || m.deployment.Spec.Template.Spec.Volumes[0].PersistentVolumeClaim.ClaimName != m.pvc.Name ||
		m.deployment.Spec.Strategy.Type != "Recreate" {
		t.Error("/data is not the chart's claim, or the rollout would fight over it")
	}
	env := m.env(t)
	if env["RELAY_NATS_LISTEN"].Value != "0.0.0.0:4222" || env["RELAY_SUBSCRIPTIONS_FILE"].Value != "/etc/relay/secrets/subscriptions.txt" ||
		env["RELAY_API_TOKENS_FILE"].Value != "/etc/relay/secrets/tokens.jsonl" {
		t.Errorf("env %+v", env)
	}
	ports := map[string]int32{}
	for _, p := range m.service.Spec.Ports {
		ports[p.Name] = p.Port
	}
	if ports["http"] != 8080 || ports["metrics"] != 9090 || ports["nats"] != 4222 {
		t.Errorf("Service ports %v", ports)
	}
	checkMonitoring(t, m)
	checkNetworkPolicy(t, m)
	for _, secret := range []string{"ci-token-one", "ci-scoped-token", "ci-hmac-token", "ci-nats-password", "ci-pubsub-token"} {
		if bytes.Contains(out, []byte(secret)) {
			t.Errorf("credential %q appears in plain text in the render", secret)
		}
	}
}

// checkMonitoring: the ServiceMonitor scrapes the metrics port of the
// Service, the PrometheusRule is the rules file, the dashboard ConfigMap the
// dashboard, labelled for the Grafana sidecar.
func checkMonitoring(t *testing.T, m *manifests) {
	t.Helper()
	sm := m.serviceMonitor
	if sm == nil || len(sm.Spec.Endpoints) != 1 || sm.Spec.Endpoints[0].Port != "metrics" || sm.Spec.Endpoints[0].Path != "/metrics" ||
		!selects(sm.Spec.Selector.MatchLabels, m.service.Labels) || sm.Labels["release"] != "kube-prometheus-stack" {
		t.Errorf("ServiceMonitor %+v", sm)
	}
	if m.prometheusRule == nil {
		t.Fatal("no PrometheusRule")
	}
	if want := readRules(t); !equalJSON(t, m.prometheusRule.Spec, want) {
		t.Error("the PrometheusRule's groups differ from deploy/prometheus/relay-rules.yml")
	}
	if len(m.configMaps) != 1 {
		t.Fatalf("%d ConfigMaps, want the dashboard's", len(m.configMaps))
	}
	cm := m.configMaps[0]
	dash, err := os.ReadFile(dashFile)
	if err != nil {
		t.Fatal(err)
	}
	if cm.Labels["grafana_dashboard"] != "1" || cm.Annotations["grafana_folder"] != "Chat" ||
		strings.TrimSpace(cm.Data["relay.json"]) != strings.TrimSpace(string(dash)) {
		t.Errorf("dashboard ConfigMap labels %v annotations %v, or data differs from dashboards/relay.json", cm.Labels, cm.Annotations)
	}
}

func checkNetworkPolicy(t *testing.T, m *manifests) {
	t.Helper()
	np := m.netpol
	if np == nil || !selects(np.Spec.PodSelector.MatchLabels, m.deployment.Spec.Template.Labels) {
		t.Fatal("no NetworkPolicy over the pods")
	}
	if len(np.Spec.Ingress) != 2 || len(np.Spec.Ingress[0].From) != 1 || len(np.Spec.Ingress[0].Ports) != 2 {
		t.Errorf("ingress %+v: want the API and NATS from the backend namespace, and metrics", np.Spec.Ingress)
	}
	for _, e := range np.Spec.Egress {
		if len(e.To) == 0 && len(e.Ports) == 0 {
			t.Error("egress allows everything with allowExternalEgress false")
		}
	}
}

// TestChartReplicaDefaults: replicas above one bring a PodDisruptionBudget;
// it can be turned off.
func TestChartReplicaDefaults(t *testing.T) {
	m, _ := renderFile(t, "scaled-values.yaml", "autoscaling.enabled=false", "replicaCount=3")
	if m.pdb == nil || *m.deployment.Spec.Replicas != 3 || m.hpa != nil {
		t.Error("3 replicas: want a PodDisruptionBudget, replicas 3 and no HPA")
	}
	m, _ = renderFile(t, "scaled-values.yaml", "autoscaling.enabled=false", "replicaCount=3", "podDisruptionBudget.enabled=false")
	if m.pdb != nil {
		t.Error("podDisruptionBudget.enabled=false still renders one")
	}
}

// TestChartGracePeriod: terminationGracePeriodSeconds follows
// RELAY_SHUTDOWN_TIMEOUT, whatever Go duration spells it.
func TestChartGracePeriod(t *testing.T) {
	for timeout, want := range map[string]int64{"2500ms": 13, "1.5m": 100, "1h": 3610, "1m30s": 100, "45s": 55} {
		m, _ := renderFile(t, "default-values.yaml", "config.RELAY_SHUTDOWN_TIMEOUT="+timeout)
		if got := *m.deployment.Spec.Template.Spec.TerminationGracePeriodSeconds; got != want {
			t.Errorf("RELAY_SHUTDOWN_TIMEOUT %s: grace %d, want %d", timeout, got, want)
		}
	}
	m, _ := renderFile(t, "default-values.yaml", "terminationGracePeriodSeconds=16")
	if got := *m.deployment.Spec.Template.Spec.TerminationGracePeriodSeconds; got != 16 {
		t.Errorf("a set grace period above the shutdown bound: got %d, want 16", got)
	}
}

// TestChartRefuses: values the relay would refuse at start, or that would
// misbehave in a cluster, fail the render with a message saying why.
func TestChartRefuses(t *testing.T) {
	cases := []struct {
		name  string
		files []string
		sets  []string
		want  string
	}{
		{"no token", nil, []string{"config.RELAY_CHATWOOT_URL=https://chat.example.com"}, "no API token"},
		{"no Chatwoot URL", nil, []string{"secrets.apiTokens={t1}"}, "RELAY_CHATWOOT_URL is required"},
		{"replicas without Redis", []string{"default-values.yaml"}, []string{"replicaCount=2", "config.RELAY_NATS_URL=nats://n:4222"}, "every replica would subscribe every pubsub_token"},
		{"autoscaling without Redis", []string{"default-values.yaml"}, []string{"autoscaling.enabled=true", "config.RELAY_NATS_URL=nats://n:4222"}, "Horizontal scaling needs shared state"},
		{"replicas without external NATS", []string{"default-values.yaml"}, []string{"replicaCount=2", "secrets.redisUrl=redis://r:6379"}, "its own embedded NATS"},
		{"replicas on one claim", []string{"scaled-values.yaml"}, []string{"persistence.enabled=true"}, "cannot be mounted by every pod"},
		{"credential in config", []string{"default-values.yaml"}, []string{"config.RELAY_REDIS_URL=redis://r:6379"}, "holds a credential"},
		{"credential as plain extraEnv", []string{"default-values.yaml"}, []string{"extraEnv[0].name=RELAY_NATS_TOKEN", "extraEnv[0].value=t"}, "as a plain value"},
		{"not a RELAY_ variable in config", []string{"default-values.yaml"}, []string{"config.GOGC=50"}, "GOGC"},
		{"inline next to existingSecret", []string{"scaled-values.yaml"}, []string{"secrets.natsToken=t"}, "existingSecret"},
		{"secretKeys without existingSecret", []string{"default-values.yaml"}, []string{"secretKeys.redisUrl=k"}, "existingSecret, which is not set"},
		{"file credential twice", []string{"default-values.yaml"}, []string{"secrets.subscriptions=tok", "config.RELAY_SUBSCRIPTIONS_FILE=/x"}, "both set"},
		{"NATS exposed without auth", []string{"default-values.yaml"}, []string{"service.nats.enabled=true"}, "needs authentication"},
		{"NATS exposed with NATS_URL", []string{"default-values.yaml"}, []string{"service.nats.enabled=true", "config.RELAY_NATS_URL=nats://n:4222"}, "turn one off"},
		{"grace below shutdown", []string{"default-values.yaml"}, []string{"terminationGracePeriodSeconds=15"}, "must exceed config.RELAY_SHUTDOWN_TIMEOUT"},
		{"shutdown not a duration", []string{"default-values.yaml"}, []string{"config.RELAY_SHUTDOWN_TIMEOUT=soon"}, "want a Go duration"},
		{"HTTP address without port", []string{"default-values.yaml"}, []string{"config.RELAY_HTTP_ADDR=0.0.0.0"}, "RELAY_HTTP_ADDR"},
		{"existingSecret not a Secret name", []string{"default-values.yaml"}, []string{"existingSecret=Relay Creds", "secrets.apiTokens=null", "secretKeys.apiTokens=t"}, "at '/existingSecret'"},
		{"secret key not a key name", []string{"scaled-values.yaml"}, []string{"secretKeys.natsToken=../token"}, "at '/secretKeys/natsToken'"},
		{"misspelt value", []string{"default-values.yaml"}, []string{"replicas=2"}, "replicas"},
		{"comma inside an API token", []string{"default-values.yaml"}, []string{`secrets.apiTokens={a\,b}`}, "apiTokens"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			out, err := helmTemplate(t, c.files, c.sets...)
			if err == nil {
				t.Fatalf("rendered:\n%.600s", out)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error does not say %q:\n%v", c.want, err)
			}
		})
	}
}
