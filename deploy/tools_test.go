package deploy

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"go/build"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

const (
	chartDir   = "../charts/relay"
	rulesFile  = "prometheus/relay-rules.yml"
	rulesTests = "prometheus/relay-rules.test.yml"
	dashFile   = "../dashboards/relay.json"
)

// tool finds a command on PATH or in GOPATH/bin (where .ci/helm.sh installs
// helm). Without it the test fails when required (CI=true, or the given
// variable set by .ci/run) and otherwise skips, saying so loudly.
func tool(t *testing.T, name, requiredBy string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	gopath := os.Getenv("GOPATH")
	if gopath == "" {
		gopath = build.Default.GOPATH
	}
	for _, dir := range filepath.SplitList(gopath) {
		if p := filepath.Join(dir, "bin", name); isExecutable(p) {
			return p
		}
	}
	msg := fmt.Sprintf("!!! %s is not on PATH nor in GOPATH/bin: these checks did NOT run (install it with .ci/%s.sh)", name, name)
	if os.Getenv("CI") == "true" || (requiredBy != "" && os.Getenv(requiredBy) != "") {
		t.Fatal(msg)
	}
	t.Log(msg)
	t.SkipNow()
	return ""
}

func isExecutable(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0
}

// helmTemplate renders the chart as release "r" in namespace "relay" with
// the given values files (under charts/relay/ci) and --set arguments. The
// error holds helm's message.
func helmTemplate(t *testing.T, valuesFiles []string, sets ...string) ([]byte, error) {
	t.Helper()
	args := []string{"template", "r", chartDir, "--namespace", "relay"}
	for _, f := range valuesFiles {
		args = append(args, "-f", filepath.Join(chartDir, "ci", f))
	}
	for _, s := range sets {
		args = append(args, "--set", s)
	}
	return runTool(tool(t, "helm", ""), args...)
}

// runTool runs a command and returns its standard output; a failure carries
// its standard error.
func runTool(bin string, args ...string) ([]byte, error) {
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("%s %s: %w\n%s", filepath.Base(bin), strings.Join(args, " "), err, stderr.String())
	}
	return stdout.Bytes(), nil
}

var docSeparator = regexp.MustCompile(`(?m)^---\s*$`)

// splitManifests cuts helm's output into its YAML documents, leaving out
// those that hold only comments.
func splitManifests(out []byte) [][]byte {
	var docs [][]byte
	for _, doc := range docSeparator.Split(string(out), -1) {
		for _, line := range strings.Split(doc, "\n") {
			if l := strings.TrimSpace(line); l != "" && !strings.HasPrefix(l, "#") {
				docs = append(docs, []byte(doc))
				break
			}
		}
	}
	return docs
}

// decodeStrict decodes YAML into v, refusing fields v does not have: a
// misspelt or misplaced field in a template is an error here, where the API
// server might drop it silently.
func decodeStrict(doc []byte, v any) error {
	js, err := yaml.YAMLToJSON(doc)
	if err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(js))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("trailing data after the document")
	}
	return nil
}
