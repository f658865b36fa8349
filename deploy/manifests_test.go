package deploy

import (
	"fmt"
	"slices"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"
)

// manifests is one render of the chart, decoded.
type manifests struct {
	deployment     *appsv1.Deployment
	service        *corev1.Service
	secret         *corev1.Secret
	serviceAccount *corev1.ServiceAccount
	configMaps     []*corev1.ConfigMap
	pvc            *corev1.PersistentVolumeClaim
	pdb            *policyv1.PodDisruptionBudget
	hpa            *autoscalingv2.HorizontalPodAutoscaler
	netpol         *networkingv1.NetworkPolicy
	serviceMonitor *serviceMonitor
	prometheusRule *prometheusRule
}

// serviceMonitor is the part of monitoring.coreos.com/v1 ServiceMonitor the
// chart renders; decoding strictly into it catches misplaced fields.
type serviceMonitor struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              struct {
		NamespaceSelector struct {
			MatchNames []string `json:"matchNames"`
		} `json:"namespaceSelector"`
		Selector  metav1.LabelSelector `json:"selector"`
		Endpoints []struct {
			Port              string           `json:"port"`
			Path              string           `json:"path"`
			Interval          string           `json:"interval"`
			ScrapeTimeout     string           `json:"scrapeTimeout"`
			Relabelings       []map[string]any `json:"relabelings"`
			MetricRelabelings []map[string]any `json:"metricRelabelings"`
		} `json:"endpoints"`
	} `json:"spec"`
}

// prometheusRule is monitoring.coreos.com/v1 PrometheusRule; its spec has
// the shape of a Prometheus rules file.
type prometheusRule struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              ruleFile `json:"spec"`
}

type ruleFile struct {
	Groups []struct {
		Name     string `json:"name"`
		Interval string `json:"interval,omitempty"`
		Rules    []rule `json:"rules"`
	} `json:"groups"`
}

type rule struct {
	Alert       string            `json:"alert,omitempty"`
	Record      string            `json:"record,omitempty"`
	Expr        string            `json:"expr"`
	For         string            `json:"for,omitempty"`
	Labels      map[string]string `json:"labels,omitempty"`
	Annotations map[string]string `json:"annotations,omitempty"`
}

// apiVersions is every kind the chart may render, with its API version. A
// new template must be added here, with a type to decode it into.
var apiVersions = map[string]string{
	"Deployment": "apps/v1", "Service": "v1", "Secret": "v1", "ServiceAccount": "v1", "ConfigMap": "v1",
	"PersistentVolumeClaim": "v1", "PodDisruptionBudget": "policy/v1",
	"HorizontalPodAutoscaler": "autoscaling/v2", "NetworkPolicy": "networking.k8s.io/v1",
	"ServiceMonitor": "monitoring.coreos.com/v1", "PrometheusRule": "monitoring.coreos.com/v1",
}

// decodeManifests decodes every document of a render strictly.
func decodeManifests(t *testing.T, out []byte) *manifests {
	t.Helper()
	m := &manifests{}
	for _, doc := range splitManifests(out) {
		var tm metav1.TypeMeta
		if err := yaml.Unmarshal(doc, &tm); err != nil {
			t.Fatalf("not YAML: %v\n%s", err, doc)
		}
		if want, ok := apiVersions[tm.Kind]; !ok || tm.APIVersion != want {
			t.Fatalf("unexpected %s %s (known kinds: %v)", tm.APIVersion, tm.Kind, apiVersions)
		}
		target := m.slot(tm.Kind)
		if err := decodeStrict(doc, target); err != nil {
			t.Fatalf("%s does not decode strictly: %v\n%s", tm.Kind, err, doc)
		}
	}
	if m.deployment == nil || m.service == nil {
		t.Fatalf("no Deployment or Service rendered:\n%s", out)
	}
	return m
}

// slot returns a fresh object of the kind, recorded in m.
func (m *manifests) slot(kind string) any {
	once := func(set bool) {
		if set {
			panic(fmt.Sprintf("two %s rendered", kind))
		}
	}
	switch kind {
	case "Deployment":
		once(m.deployment != nil)
		m.deployment = &appsv1.Deployment{}
		return m.deployment
	case "Service":
		once(m.service != nil)
		m.service = &corev1.Service{}
		return m.service
	case "Secret":
		once(m.secret != nil)
		m.secret = &corev1.Secret{}
		return m.secret
	case "ServiceAccount":
		once(m.serviceAccount != nil)
		m.serviceAccount = &corev1.ServiceAccount{}
		return m.serviceAccount
	case "ConfigMap":
		cm := &corev1.ConfigMap{}
		m.configMaps = append(m.configMaps, cm)
		return cm
	case "PersistentVolumeClaim":
		m.pvc = &corev1.PersistentVolumeClaim{}
		return m.pvc
	case "PodDisruptionBudget":
		m.pdb = &policyv1.PodDisruptionBudget{}
		return m.pdb
	case "HorizontalPodAutoscaler":
		m.hpa = &autoscalingv2.HorizontalPodAutoscaler{}
		return m.hpa
	case "NetworkPolicy":
		m.netpol = &networkingv1.NetworkPolicy{}
		return m.netpol
	case "ServiceMonitor":
		m.serviceMonitor = &serviceMonitor{}
		return m.serviceMonitor
	case "PrometheusRule":
		m.prometheusRule = &prometheusRule{}
		return m.prometheusRule
	}
	panic("no slot for " + kind)
}

// container returns the relay's container.
func (m *manifests) container(t *testing.T) corev1.Container {
	t.Helper()
	cs := m.deployment.Spec.Template.Spec.Containers
	if len(cs) != 1 || cs[0].Name != "relay" {
		t.Fatalf("want one container named relay, got %d", len(cs))
	}
	return cs[0]
}

// env returns the container's variables by name.
func (m *manifests) env(t *testing.T) map[string]corev1.EnvVar {
	t.Helper()
	out := map[string]corev1.EnvVar{}
	for _, e := range m.container(t).Env {
		if _, dup := out[e.Name]; dup {
			t.Errorf("variable %s is set twice", e.Name)
		}
		out[e.Name] = e
	}
	return out
}

// selects reports whether every label of selector is in labels.
func selects(selector, labels map[string]string) bool {
	if len(selector) == 0 {
		return false
	}
	for k, v := range selector {
		if labels[k] != v {
			return false
		}
	}
	return true
}

// restrictedVolumes are the volume types the restricted Pod Security
// Standard allows.
var restrictedVolumes = []string{"configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim", "projected", "secret"}

// checkRestricted holds a pod spec to the restricted Pod Security Standard
// (https://kubernetes.io/docs/concepts/security/pod-security-standards/)
// and to the chart's own stricter defaults.
func checkRestricted(t *testing.T, spec corev1.PodSpec) {
	t.Helper()
	if spec.HostNetwork || spec.HostPID || spec.HostIPC {
		t.Error("host namespaces are shared")
	}
	for _, v := range spec.Volumes {
		if kind := volumeKind(v); !slices.Contains(restrictedVolumes, kind) {
			t.Errorf("volume %s is a %s volume", v.Name, kind)
		}
	}
	psc := spec.SecurityContext
	if psc == nil {
		t.Fatal("no pod securityContext")
	}
	if psc.SeccompProfile == nil || psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Error("pod seccompProfile is not RuntimeDefault")
	}
	if !isTrue(psc.RunAsNonRoot) || psc.RunAsUser == nil || *psc.RunAsUser != 65532 {
		t.Error("pod does not run as non-root UID 65532")
	}
	if spec.AutomountServiceAccountToken == nil || *spec.AutomountServiceAccountToken {
		t.Error("the service account token is mounted; the relay never calls the Kubernetes API")
	}
	for _, c := range append(slices.Clone(spec.InitContainers), spec.Containers...) {
		checkRestrictedContainer(t, c)
	}
}

func checkRestrictedContainer(t *testing.T, c corev1.Container) {
	t.Helper()
	sc := c.SecurityContext
	if sc == nil {
		t.Fatalf("container %s has no securityContext", c.Name)
	}
	if isTrue(sc.Privileged) || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
		t.Errorf("container %s may be privileged or escalate", c.Name)
	}
	if sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) || len(sc.Capabilities.Add) > 0 {
		t.Errorf("container %s does not drop ALL capabilities (or adds some)", c.Name)
	}
	if !isTrue(sc.RunAsNonRoot) || sc.RunAsUser == nil || *sc.RunAsUser == 0 {
		t.Errorf("container %s may run as root", c.Name)
	}
	if !isTrue(sc.ReadOnlyRootFilesystem) {
		t.Errorf("container %s has a writable root filesystem", c.Name)
	}
	if sc.SeccompProfile != nil && sc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault &&
		sc.SeccompProfile.Type != corev1.SeccompProfileTypeLocalhost {
		t.Errorf("container %s seccompProfile %s", c.Name, sc.SeccompProfile.Type)
	}
	for _, p := range c.Ports {
		if p.HostPort != 0 {
			t.Errorf("container %s uses host port %d", c.Name, p.HostPort)
		}
	}
}

func isTrue(b *bool) bool { return b != nil && *b }

// volumeKind names the source of a volume as the API spells it.
func volumeKind(v corev1.Volume) string {
	js, err := yaml.Marshal(v.VolumeSource)
	if err != nil {
		return "unknown"
	}
	var m map[string]any
	if yaml.Unmarshal(js, &m) != nil || len(m) != 1 {
		return "unknown"
	}
	for k := range m {
		return k
	}
	return "unknown"
}
