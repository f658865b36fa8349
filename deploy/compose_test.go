package deploy

import (
	"go/ast"
	"go/parser"
	"go/token"
	"maps"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
	"sigs.k8s.io/yaml"
)

const (
	composeFile     = "../docker-compose.yml"
	composeDir      = "compose"
	promConfigFile  = "compose/prometheus.yml"
	observability   = "observability"
	healthyNeighbor = types.ServiceConditionHealthy
)

// loadCompose loads docker-compose.yml the way `docker compose` does, with
// every profile active and interpolation from env only (never this
// process's environment). interpolate false keeps the ${...} forms.
func loadCompose(t *testing.T, env []string, interpolate bool) *types.Project {
	t.Helper()
	opts, err := cli.NewProjectOptions([]string{composeFile},
		cli.WithWorkingDirectory(".."), cli.WithEnv(env), cli.WithProfiles([]string{"*"}),
		cli.WithInterpolation(interpolate), cli.WithResolvedPaths(true))
	if err != nil {
		t.Fatal(err)
	}
	p, err := opts.LoadProject(t.Context())
	if err != nil {
		t.Fatalf("%s: %v", composeFile, err)
	}
	return p
}

// service returns a service of the project, failing the test without it.
func service(t *testing.T, p *types.Project, name string) types.ServiceConfig {
	t.Helper()
	s, ok := p.Services[name]
	if !ok {
		t.Fatalf("no service %q in %s", name, composeFile)
	}
	return s
}

// TestComposeServices: the services, where their images come from, and the
// profile that holds Prometheus and Grafana out of a plain `up`.
func TestComposeServices(t *testing.T) {
	p := loadCompose(t, nil, true)
	want := []string{"chatwoot-fake", "grafana", "nats", "prometheus", "redis", "relay"}
	if got := slices.Sorted(maps.Keys(p.Services)); !slices.Equal(got, want) {
		t.Fatalf("services %q, want %q", got, want)
	}
	targets := dockerfileTargets(t)
	repo, _ := filepath.Abs("..")
	for name, target := range map[string]string{"relay": "", "chatwoot-fake": "chatwoot-fake"} {
		b := service(t, p, name).Build
		switch {
		case b == nil || b.Context != repo || filepath.Base(b.Dockerfile) != "Dockerfile":
			t.Errorf("%s: build %+v, want the repository's Dockerfile", name, b)
		case b.Target != target:
			t.Errorf("%s: build target %q, want %q", name, b.Target, target)
		case target != "" && !slices.Contains(targets, target):
			t.Errorf("%s: the Dockerfile has no stage %q (stages %q)", name, target, targets)
		}
	}
	for name, image := range map[string]*regexp.Regexp{
		"nats": regexp.MustCompile(`^nats:2\.\d+-alpine$`), "redis": regexp.MustCompile(`^redis:7-alpine$`),
		"prometheus": regexp.MustCompile(`^prom/prometheus:v\d`), "grafana": regexp.MustCompile(`^grafana/grafana:\d`),
	} {
		if s := service(t, p, name); !image.MatchString(s.Image) || s.Build != nil {
			t.Errorf("%s: image %q (build %v), want a pinned %s", name, s.Image, s.Build, image)
		}
	}
	for name, s := range p.Services {
		wantProfiles := []string(nil)
		if name == "prometheus" || name == "grafana" {
			wantProfiles = []string{observability}
		}
		if !slices.Equal(s.Profiles, wantProfiles) {
			t.Errorf("%s: profiles %q, want %q", name, s.Profiles, wantProfiles)
		}
	}
}

// TestComposeTopLevelKeys: services and volumes only. The Compose
// specification has no `version:`, and Debian's docker-compose 1.29
// (.ci/compose.sh) refuses `name:`.
func TestComposeTopLevelKeys(t *testing.T) {
	data, err := os.ReadFile(composeFile)
	if err != nil {
		t.Fatal(err)
	}
	var top map[string]any
	if err := yaml.Unmarshal(data, &top); err != nil {
		t.Fatal(err)
	}
	if keys := slices.Sorted(maps.Keys(top)); !slices.Equal(keys, []string{"services", "volumes"}) {
		t.Errorf("top-level keys %q, want services and volumes only", keys)
	}
}

// dockerfileTargets lists the Dockerfile's named stages.
func dockerfileTargets(t *testing.T) []string {
	t.Helper()
	data, err := os.ReadFile("../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, m := range regexp.MustCompile(`(?mi)^FROM\s+\S+\s+AS\s+(\S+)`).FindAllStringSubmatch(string(data), -1) {
		names = append(names, m[1])
	}
	return names
}

// TestComposeHealthAndOrder: every service has an exec-form health check
// (the relay and fake images have no shell), waits for its dependencies to
// be healthy, and restarts.
func TestComposeHealthAndOrder(t *testing.T) {
	p := loadCompose(t, nil, true)
	wantTest := map[string][]string{
		"relay":         {"CMD", "/relay", "healthcheck"},
		"chatwoot-fake": {"CMD", "/chatwoot-fake", "-healthcheck"},
		"nats":          {"CMD", "wget", "-qO-", "http://localhost:8222/healthz"},
		"redis":         {"CMD", "redis-cli", "ping"},
	}
	for name, s := range p.Services {
		hc := s.HealthCheck
		switch {
		case hc == nil || hc.Disable || len(hc.Test) < 2 || hc.Test[0] != "CMD":
			t.Errorf("%s: health check %q, want an exec form [CMD ...]", name, testOf(hc))
		case wantTest[name] != nil && !slices.Equal(hc.Test, wantTest[name]):
			t.Errorf("%s: health check %q, want %q", name, hc.Test, wantTest[name])
		}
		if s.Restart != types.RestartPolicyUnlessStopped && s.Restart != types.RestartPolicyAlways {
			t.Errorf("%s: restart %q, want unless-stopped or always", name, s.Restart)
		}
		for dep, d := range s.DependsOn {
			if d.Condition != healthyNeighbor {
				t.Errorf("%s: depends on %s with condition %q, want %s", name, dep, d.Condition, healthyNeighbor)
			}
		}
	}
	for name, deps := range map[string][]string{"relay": {"chatwoot-fake", "nats", "redis"}, "grafana": {"prometheus"}} {
		if got := slices.Sorted(maps.Keys(service(t, p, name).DependsOn)); !slices.Equal(got, deps) {
			t.Errorf("%s depends on %q, want %q", name, got, deps)
		}
	}
	cmd := strings.Join(service(t, p, "nats").Command, " ")
	if !strings.Contains(cmd, "-js") || !strings.Contains(cmd, "-m 8222") {
		t.Errorf("nats command %q: want JetStream (-js) and monitoring on 8222 (-m 8222) for the health check", cmd)
	}
}

// testOf is a health check's command; nil without a check.
func testOf(hc *types.HealthCheckConfig) []string {
	if hc == nil || hc.Disable {
		return nil
	}
	return hc.Test
}

// TestComposeRelay: what the relay runs with. Every RELAY_* variable is one
// the relay reads, pointed at the other services; the subscriptions file is
// the one the fake writes, through a volume; the container is read-only with
// /data a named volume; two replicas sharing Redis, ready to scale.
func TestComposeRelay(t *testing.T) {
	p := loadCompose(t, nil, true)
	relay, fake := service(t, p, "relay"), service(t, p, "chatwoot-fake")
	known, secret := map[string]bool{}, map[string]bool{}
	for _, v := range relayVariables(t) {
		known[v.name], secret[v.name] = true, v.secret
	}
	env := environment(t, relay)
	for name := range env {
		if !known[name] {
			t.Errorf("relay: %s is not a variable of cmd/relay/config.go", name)
		}
	}
	for name, want := range map[string]string{
		"RELAY_CHATWOOT_URL": "http://chatwoot-fake:3000", "RELAY_NATS_URL": "nats://nats:4222",
		"RELAY_REDIS_URL": "redis://redis:6379/0", "RELAY_HTTP_ADDR": "0.0.0.0:8080", "RELAY_DATA_DIR": "/data",
	} {
		switch got := env[name]; {
		case got != want && secret[name]: // a credential is not echoed
			t.Errorf("relay: %s is not %q", name, want)
		case got != want:
			t.Errorf("relay: %s=%q, want %q", name, got, want)
		}
	}
	checkFakeFlags(t, environment(t, fake))
	if fakeURL := environment(t, fake)["CHATWOOT_FAKE_PUBLIC_URL"]; fakeURL != env["RELAY_CHATWOOT_URL"] {
		t.Errorf("the fake announces %q, the relay calls %q", fakeURL, env["RELAY_CHATWOOT_URL"])
	}
	checkSubscriptionsFile(t, p, env["RELAY_SUBSCRIPTIONS_FILE"], environment(t, fake)["CHATWOOT_FAKE_SUBSCRIPTIONS_FILE"])

	if !relay.ReadOnly || !slices.Contains(relay.Tmpfs, "/tmp") {
		t.Errorf("relay: read_only %t, tmpfs %q; want a read-only root with /tmp in memory", relay.ReadOnly, relay.Tmpfs)
	}
	if v, ok := mountAt(relay, "/data"); !ok || v.Type != types.VolumeTypeVolume || v.ReadOnly || p.Volumes[v.Source].Name == "" {
		t.Errorf("relay: /data is %+v, want a writable named volume", v)
	}
	if relay.ContainerName != "" || relay.Deploy == nil || relay.Deploy.Replicas == nil || *relay.Deploy.Replicas != 2 {
		t.Errorf("relay: want deploy.replicas 2 and no container_name (replicas split the subscriptions through Redis)")
	}
	if env["RELAY_REDIS_URL"] == "" {
		t.Errorf("relay: several replicas need RELAY_REDIS_URL to split the subscriptions")
	}
	_, port, _ := net.SplitHostPort(env["RELAY_HTTP_ADDR"])
	if !slices.ContainsFunc(relay.Ports, func(pc types.ServicePortConfig) bool { return strconv.Itoa(int(pc.Target)) == port }) {
		t.Errorf("relay: port %s of RELAY_HTTP_ADDR is not published", port)
	}
}

// environment is a service's environment, each variable set to a value.
func environment(t *testing.T, s types.ServiceConfig) map[string]string {
	t.Helper()
	env := map[string]string{}
	for k, v := range s.Environment {
		if v == nil {
			t.Errorf("%s: %s has no value", s.Name, k)
			continue
		}
		env[k] = *v
	}
	return env
}

// checkFakeFlags: every CHATWOOT_FAKE_* variable is a flag of the fake.
func checkFakeFlags(t *testing.T, env map[string]string) {
	t.Helper()
	flags := fakeFlags(t)
	for name := range env {
		flag := strings.ReplaceAll(strings.ToLower(strings.TrimPrefix(name, "CHATWOOT_FAKE_")), "_", "-")
		if !strings.HasPrefix(name, "CHATWOOT_FAKE_") || !slices.Contains(flags, flag) {
			t.Errorf("chatwoot-fake: %s is not a flag of cmd/chatwoot-fake (flags %q)", name, flags)
		}
	}
}

// fakeFlags reads the flag names cmd/chatwoot-fake/options.go defines.
func fakeFlags(t *testing.T) []string {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), "../cmd/chatwoot-fake/options.go", nil, parser.SkipObjectResolution)
	if err != nil {
		t.Fatal(err)
	}
	var flags []string
	ast.Inspect(f, func(n ast.Node) bool {
		call, ok := n.(*ast.CallExpr)
		if !ok || len(call.Args) < 2 {
			return true
		}
		if sel, ok := call.Fun.(*ast.SelectorExpr); ok && strings.HasSuffix(sel.Sel.Name, "Var") {
			if lit, ok := call.Args[1].(*ast.BasicLit); ok && lit.Kind == token.STRING {
				name, _ := strconv.Unquote(lit.Value)
				flags = append(flags, name)
			}
		}
		return true
	})
	if len(flags) < 10 {
		t.Fatalf("found only %d flags in cmd/chatwoot-fake/options.go", len(flags))
	}
	return flags
}

// checkSubscriptionsFile: the relay reads the file the fake writes, on a
// named volume the fake mounts writable and the relay read-only.
func checkSubscriptionsFile(t *testing.T, p *types.Project, relayPath, fakePath string) {
	t.Helper()
	if relayPath == "" || relayPath != fakePath {
		t.Fatalf("RELAY_SUBSCRIPTIONS_FILE %q, CHATWOOT_FAKE_SUBSCRIPTIONS_FILE %q: want the same file", relayPath, fakePath)
	}
	fv, okFake := mountAt(service(t, p, "chatwoot-fake"), relayPath)
	rv, okRelay := mountAt(service(t, p, "relay"), relayPath)
	if !okFake || !okRelay || fv.Type != types.VolumeTypeVolume || fv.Source != rv.Source || fv.ReadOnly || !rv.ReadOnly {
		t.Errorf("%s: fake mount %+v, relay mount %+v; want one named volume, writable for the fake, read-only for the relay", relayPath, fv, rv)
	}
}

// mountAt is the service's volume holding the container path.
func mountAt(s types.ServiceConfig, path string) (types.ServiceVolumeConfig, bool) {
	for _, v := range s.Volumes {
		if path == v.Target || strings.HasPrefix(path, v.Target+"/") {
			return v, true
		}
	}
	return types.ServiceVolumeConfig{}, false
}

// hostPath maps a container path of a service to the host file a bind
// mount puts there.
func hostPath(t *testing.T, s types.ServiceConfig, path string) string {
	t.Helper()
	v, ok := mountAt(s, path)
	if !ok || v.Type != types.VolumeTypeBind {
		t.Fatalf("%s: nothing of the repository is mounted at %s", s.Name, path)
	}
	return filepath.Join(v.Source, strings.TrimPrefix(path, v.Target))
}

// TestComposePublishesOnLoopbackOnly: a published port is reachable from
// this host only; bind mounts are read-only files of the repository that
// exist.
func TestComposePublishesOnLoopbackOnly(t *testing.T) {
	p := loadCompose(t, nil, true)
	repo, _ := filepath.Abs("..")
	for name, s := range p.Services {
		for _, pc := range s.Ports {
			if pc.HostIP != "127.0.0.1" {
				t.Errorf("%s: port %d published on %q, want 127.0.0.1", name, pc.Target, pc.HostIP)
			}
		}
		for _, v := range s.Volumes {
			if v.Type != types.VolumeTypeBind {
				continue
			}
			if _, err := os.Stat(v.Source); err != nil || !v.ReadOnly || !strings.HasPrefix(v.Source, repo+string(filepath.Separator)) {
				t.Errorf("%s: bind mount %s -> %s (read-only %t): want an existing file of the repository, read-only (%v)", name, v.Source, v.Target, v.ReadOnly, err)
			}
		}
	}
}

// credentialVariable names the variables holding credentials outside the
// relay's own (which carry secret:"true").
var credentialVariable = regexp.MustCompile(`(?i)password|token|secret|_key$`)

// defaultedVariable is ${NAME:-default}.
var defaultedVariable = regexp.MustCompile(`^\$\{([A-Z][A-Z0-9_]*):-([^}]*)\}$`)

// TestComposeCredentialsComeFromTheEnvironment: no credential is written in
// the file. Each is ${VAR:-default}, the default marked dev-only (a URL
// default carries no password), and the variable replaces it.
func TestComposeCredentialsComeFromTheEnvironment(t *testing.T) {
	secret := map[string]bool{}
	for _, v := range relayVariables(t) {
		secret[v.name] = v.secret
	}
	raw := loadCompose(t, nil, false)
	found := 0
	for name, s := range raw.Services {
		for k, v := range s.Environment {
			if !secret[k] && !credentialVariable.MatchString(k) {
				continue
			}
			found++
			m := defaultedVariable.FindStringSubmatch(deref(v))
			if m == nil { // the value may be a credential: not echoed
				t.Errorf("%s: %s is written in the file, want ${VAR:-dev-...}", name, k)
				continue
			}
			if u, err := url.Parse(m[2]); !strings.HasPrefix(m[2], "dev-") && (err != nil || u.Scheme == "" || u.User != nil) {
				t.Errorf("%s: %s defaults to a credential not marked dev-only", name, k)
			}
			set := deref(service(t, loadCompose(t, []string{m[1] + "=from-env"}, true), name).Environment[k])
			if set != "from-env" {
				t.Errorf("%s: %s=%q with %s set, want its value", name, k, set, m[1])
			}
		}
	}
	if found < 3 { // RELAY_API_TOKENS, RELAY_REDIS_URL, Grafana's admin password
		t.Errorf("found %d credentials, want at least 3", found)
	}
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// promConfig is the part of Prometheus's configuration compose uses; the
// strict decoding refuses anything else, so a misspelt key fails here.
type promConfig struct {
	Global struct {
		ScrapeInterval     string `json:"scrape_interval"`
		EvaluationInterval string `json:"evaluation_interval"`
	} `json:"global"`
	RuleFiles     []string `json:"rule_files"`
	ScrapeConfigs []struct {
		JobName     string `json:"job_name"`
		MetricsPath string `json:"metrics_path"`
		DNSSD       []struct {
			Names           []string `json:"names"`
			Type            string   `json:"type"`
			Port            int      `json:"port"`
			RefreshInterval string   `json:"refresh_interval"`
		} `json:"dns_sd_configs"`
	} `json:"scrape_configs"`
}

// TestComposePrometheus: Prometheus reads this repository's configuration
// and alert rules, and scrapes every relay replica under a job the RelayDown
// alert matches.
func TestComposePrometheus(t *testing.T) {
	p := loadCompose(t, nil, true)
	prom, relay := service(t, p, "prometheus"), service(t, p, "relay")
	var cfgPath string
	for _, arg := range prom.Command {
		if v, ok := strings.CutPrefix(arg, "--config.file="); ok {
			cfgPath = v
		}
	}
	if got, want := hostPath(t, prom, cfgPath), mustAbs(t, promConfigFile); got != want {
		t.Fatalf("prometheus reads %s from %s, want %s", cfgPath, got, want)
	}
	var cfg promConfig
	readStrict(t, promConfigFile, &cfg)
	var rules []string
	for _, f := range cfg.RuleFiles {
		rules = append(rules, hostPath(t, prom, f))
	}
	if want := mustAbs(t, rulesFile); !slices.Equal(rules, []string{want}) {
		t.Errorf("rule files %q, want %s", rules, want)
	}
	_, port, _ := net.SplitHostPort(environment(t, relay)["RELAY_HTTP_ADDR"])
	if len(cfg.ScrapeConfigs) != 1 || len(cfg.ScrapeConfigs[0].DNSSD) != 1 {
		t.Fatalf("scrape configs %+v, want one job finding the relay through DNS", cfg.ScrapeConfigs)
	}
	job, sd := cfg.ScrapeConfigs[0], cfg.ScrapeConfigs[0].DNSSD[0]
	if !slices.Equal(sd.Names, []string{"relay"}) || sd.Type != "A" || strconv.Itoa(sd.Port) != port || job.MetricsPath != "/metrics" {
		t.Errorf("job %+v: want the relay service's replicas (A records) on port %s, /metrics", job, port)
	}
	if !rulesMatchJob(t, job.JobName) {
		t.Errorf("job %q is not matched by the RelayDown alert", job.JobName)
	}
}

// TestComposePrometheusConfigPromtool: promtool accepts the configuration
// with the rule files it names, read from where compose mounts them.
func TestComposePrometheusConfigPromtool(t *testing.T) {
	promtool := tool(t, "promtool", "RELAY_TEST_REQUIRE_PROMTOOL")
	prom := service(t, loadCompose(t, nil, true), "prometheus")
	var cfg promConfig
	readStrict(t, promConfigFile, &cfg)
	data, err := os.ReadFile(promConfigFile)
	if err != nil {
		t.Fatal(err)
	}
	text := string(data)
	for _, f := range cfg.RuleFiles {
		text = strings.ReplaceAll(text, f, hostPath(t, prom, f))
	}
	onHost := filepath.Join(t.TempDir(), "prometheus.yml")
	if err := os.WriteFile(onHost, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := runTool(promtool, "check", "config", onHost); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
}

// rulesMatchJob reports whether the RelayDown alert's job matcher takes job.
func rulesMatchJob(t *testing.T, job string) bool {
	t.Helper()
	for _, g := range readRules(t).Groups {
		for _, r := range g.Rules {
			if r.Alert != "RelayDown" {
				continue
			}
			m := regexp.MustCompile(`job=~"([^"]*)"`).FindStringSubmatch(r.Expr)
			return m != nil && regexp.MustCompile("^(?:"+m[1]+")$").MatchString(job)
		}
	}
	t.Fatal("no RelayDown alert")
	return false
}

// grafanaDatasources and grafanaDashboards are Grafana's provisioning files,
// decoded strictly.
type grafanaDatasources struct {
	APIVersion  int `json:"apiVersion"`
	Datasources []struct {
		Name      string `json:"name"`
		UID       string `json:"uid"`
		Type      string `json:"type"`
		Access    string `json:"access"`
		URL       string `json:"url"`
		IsDefault bool   `json:"isDefault"`
		Editable  bool   `json:"editable"`
	} `json:"datasources"`
}

type grafanaDashboards struct {
	APIVersion int `json:"apiVersion"`
	Providers  []struct {
		Name            string `json:"name"`
		Folder          string `json:"folder"`
		Type            string `json:"type"`
		DisableDeletion bool   `json:"disableDeletion"`
		AllowUIUpdates  bool   `json:"allowUiUpdates"`
		Options         struct {
			Path                      string `json:"path"`
			FoldersFromFilesStructure bool   `json:"foldersFromFilesStructure"`
		} `json:"options"`
	} `json:"providers"`
}

// TestComposeGrafana: Grafana's default data source is the Prometheus
// service, and its dashboard provider loads the repository's dashboard.
func TestComposeGrafana(t *testing.T) {
	p := loadCompose(t, nil, true)
	g := service(t, p, "grafana")
	var ds grafanaDatasources
	readStrict(t, hostPath(t, g, "/etc/grafana/provisioning/datasources/prometheus.yml"), &ds)
	if ds.APIVersion != 1 || len(ds.Datasources) != 1 {
		t.Fatalf("data sources %+v, want one", ds)
	}
	d := ds.Datasources[0]
	u, err := url.Parse(d.URL)
	if err != nil || d.Type != "prometheus" || !d.IsDefault || u.Hostname() != "prometheus" ||
		!slices.ContainsFunc(service(t, p, "prometheus").Ports, func(pc types.ServicePortConfig) bool { return strconv.Itoa(int(pc.Target)) == u.Port() }) {
		t.Errorf("data source %+v: want the default, of type prometheus, at the prometheus service's port", d)
	}
	var dp grafanaDashboards
	readStrict(t, hostPath(t, g, "/etc/grafana/provisioning/dashboards/relay.yml"), &dp)
	if dp.APIVersion != 1 || len(dp.Providers) != 1 || dp.Providers[0].Type != "file" {
		t.Fatalf("dashboard providers %+v, want one of type file", dp)
	}
	dir := hostPath(t, g, dp.Providers[0].Options.Path)
	if got, want := filepath.Join(dir, filepath.Base(dashFile)), mustAbs(t, dashFile); got != want {
		t.Errorf("the provider loads %s, want %s", dir, filepath.Dir(want))
	}
	if _, err := os.Stat(filepath.Join(dir, filepath.Base(dashFile))); err != nil {
		t.Error(err)
	}
}

// readStrict decodes a YAML file into v, refusing unknown fields.
func readStrict(t *testing.T, path string, v any) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := decodeStrict(data, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

func mustAbs(t *testing.T, path string) string {
	t.Helper()
	abs, err := filepath.Abs(path)
	if err != nil {
		t.Fatal(err)
	}
	return abs
}
