package deploy

import (
	"go/ast"
	"go/parser"
	"go/token"
	"reflect"
	"slices"
	"strconv"
	"testing"
)

// relayVariable is one RELAY_* variable of cmd/relay's Config.
type relayVariable struct {
	name   string
	secret bool
}

// relayVariables reads the Config struct of cmd/relay/config.go: its env
// tags are the variables the relay reads.
func relayVariables(t *testing.T) []relayVariable {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), "../cmd/relay/config.go", nil, parser.SkipObjectResolution)
	if err != nil {
		t.Fatal(err)
	}
	var vars []relayVariable
	ast.Inspect(f, func(n ast.Node) bool {
		ts, ok := n.(*ast.TypeSpec)
		if !ok || ts.Name.Name != "Config" {
			return true
		}
		for _, field := range ts.Type.(*ast.StructType).Fields.List {
			if field.Tag == nil {
				continue
			}
			tag, _ := strconv.Unquote(field.Tag.Value)
			if env := reflect.StructTag(tag).Get("env"); env != "" {
				vars = append(vars, relayVariable{"RELAY_" + env, reflect.StructTag(tag).Get("secret") == "true"})
			}
		}
		return false
	})
	if len(vars) < 40 {
		t.Fatalf("found only %d variables in cmd/relay/config.go", len(vars))
	}
	return vars
}

// The chart's credentials: the values key of each secret variable, and the
// file credentials with the variable naming their path.
var (
	secretValues = map[string]string{
		"RELAY_API_TOKENS": "secrets.apiTokens={t1}", "RELAY_INBOX_HMAC_TOKENS": "secrets.inboxHmacTokens.inbox=h",
		"RELAY_NATS_PASSWORD": "secrets.natsPassword=p", "RELAY_NATS_TOKEN": "secrets.natsToken=t",
		"RELAY_REDIS_URL": "secrets.redisUrl=redis://r:6379", "RELAY_ACCOUNT_FEEDS": "secrets.accountFeeds={f1}",
	}
	fileValues = map[string]string{
		"RELAY_API_TOKENS_FILE": "secrets.apiTokensFile=x", "RELAY_NATS_CREDS_FILE": "secrets.natsCreds=x",
		"RELAY_NATS_NKEY_SEED_FILE": "secrets.natsNkeySeed=x", "RELAY_SUBSCRIPTIONS_FILE": "secrets.subscriptions=x",
	}
)

// TestChartReachesEveryVariable: every variable of the relay reaches the
// pod, credentials from the Secret (never as plain values, and refused in
// config) and all others through config.
func TestChartReachesEveryVariable(t *testing.T) {
	vars := relayVariables(t)
	plainValue := map[string]string{
		"RELAY_CHATWOOT_URL": "https://chat.example.com", "RELAY_HTTP_ADDR": "0.0.0.0:8080", "RELAY_DATA_DIR": "/data",
		"RELAY_METRICS_ADDR": "0.0.0.0:9090", "RELAY_SHUTDOWN_TIMEOUT": "15s",
	}
	var sets, fileSets []string
	for _, v := range vars {
		switch {
		case v.secret:
			if secretValues[v.name] == "" {
				t.Errorf("%s is a credential the chart does not know (add it to relay.credentials and secretValues)", v.name)
				continue
			}
			sets = append(sets, secretValues[v.name])
		case fileValues[v.name] != "":
			fileSets = append(fileSets, fileValues[v.name])
		default:
			val := plainValue[v.name]
			if val == "" {
				val = "1"
			}
			sets = append(sets, "config."+v.name+"="+val)
		}
	}
	for name := range secretValues {
		if !slices.Contains(vars, relayVariable{name, true}) {
			t.Errorf("the chart treats %s as a credential, which the relay does not read or does not tag secret", name)
		}
	}
	// The file credentials: once through the Secret, once as plain paths
	// (a file mounted through extraVolumes).
	withSecretFiles := decodeManifests(t, mustRender(t, append(slices.Clone(sets), fileSets...)))
	env := withSecretFiles.env(t)
	for _, v := range vars {
		e, ok := env[v.name]
		switch {
		case !ok:
			t.Errorf("%s does not reach the pod", v.name)
		case v.secret && (e.Value != "" || e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil):
			t.Errorf("%s is not read from the Secret: %+v", v.name, e)
		}
	}
	var filePaths []string
	for name := range fileValues {
		filePaths = append(filePaths, "config."+name+"=/mnt/"+name)
	}
	env = decodeManifests(t, mustRender(t, append(slices.Clone(sets), filePaths...))).env(t)
	for name := range fileValues {
		if env[name].Value != "/mnt/"+name {
			t.Errorf("config.%s does not reach the pod: %+v", name, env[name])
		}
	}
}

// TestChartRefusesEveryCredentialInConfig: each secret variable set in
// plain config fails the render.
func TestChartRefusesEveryCredentialInConfig(t *testing.T) {
	for _, v := range relayVariables(t) {
		if !v.secret {
			continue
		}
		_, err := helmTemplate(t, []string{"default-values.yaml"}, "config."+v.name+"=leak")
		if err == nil {
			t.Errorf("config.%s rendered", v.name)
		}
	}
}

func mustRender(t *testing.T, sets []string) []byte {
	t.Helper()
	out, err := helmTemplate(t, nil, sets...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}
