package deploy

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// readRules decodes the rules file strictly.
func readRules(t *testing.T) ruleFile {
	t.Helper()
	data, err := os.ReadFile(rulesFile)
	if err != nil {
		t.Fatal(err)
	}
	var rf ruleFile
	if err := decodeStrict(data, &rf); err != nil {
		t.Fatalf("%s: %v", rulesFile, err)
	}
	return rf
}

// equalJSON compares two values by their JSON form.
func equalJSON(t *testing.T, a, b any) bool {
	t.Helper()
	ja, err1 := json.Marshal(a)
	jb, err2 := json.Marshal(b)
	if err1 != nil || err2 != nil {
		t.Fatal(err1, err2)
	}
	return string(ja) == string(jb)
}

// TestRules: each alert carries what a receiver needs, promtool accepts
// the rules, and its unit tests (relay-rules.test.yml) pass.
func TestRules(t *testing.T) {
	rf := readRules(t)
	if len(rf.Groups) == 0 {
		t.Fatal("no rule groups")
	}
	for _, g := range rf.Groups {
		for _, r := range g.Rules {
			if r.Alert == "" || r.Expr == "" || r.Labels["severity"] == "" || r.Annotations["summary"] == "" || r.Annotations["description"] == "" {
				t.Errorf("rule %+v lacks an alert name, expr, severity, summary or description", r)
			}
		}
	}
	promtool := tool(t, "promtool", "RELAY_TEST_REQUIRE_PROMTOOL")
	if out, err := runTool(promtool, "check", "rules", rulesFile); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	// Which alerts fire on series shaped like the relay's.
	if out, err := runTool(promtool, "test", "rules", rulesTests); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
}

// TestChartFilesAreTheRepositoryFiles: the chart embeds the rules and the
// dashboard through links to the repository's files, so there is one copy.
func TestChartFilesAreTheRepositoryFiles(t *testing.T) {
	for chartFile, repoFile := range map[string]string{
		"files/relay-rules.yml":      rulesFile,
		"files/relay-dashboard.json": dashFile,
	} {
		p := filepath.Join(chartDir, chartFile)
		target, err := filepath.EvalSymlinks(p)
		if err != nil {
			t.Fatal(err)
		}
		want, _ := filepath.Abs(repoFile)
		if got, _ := filepath.Abs(target); got != want {
			t.Errorf("%s resolves to %s, want a link to %s", p, got, want)
		}
	}
}

// dashboard is the part of a Grafana dashboard the checks read.
type dashboard struct {
	UID    string  `json:"uid"`
	Title  string  `json:"title"`
	Panels []panel `json:"panels"`
}

type panel struct {
	ID         int    `json:"id"`
	Type       string `json:"type"`
	Title      string `json:"title"`
	Datasource *struct {
		UID string `json:"uid"`
	} `json:"datasource"`
	GridPos struct{ H, W, X, Y int } `json:"gridPos"`
	Targets []struct {
		Expr string `json:"expr"`
	} `json:"targets"`
}

var selectorOfMetric = regexp.MustCompile(`\brelay_[a-z0-9_]+\{([^}]*)\}`)

// TestDashboard: unique panel ids, no overlapping panels, every query on the
// chosen data source and restricted to the chosen jobs and instances.
func TestDashboard(t *testing.T) {
	data, err := os.ReadFile(dashFile)
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(data, &d); err != nil {
		t.Fatal(err)
	}
	if d.UID == "" || d.Title == "" || len(d.Panels) == 0 {
		t.Fatal("no uid, title or panels")
	}
	ids := map[int]bool{}
	var placed []panel
	for _, p := range d.Panels {
		if ids[p.ID] {
			t.Errorf("panel id %d twice", p.ID)
		}
		ids[p.ID] = true
		for _, q := range placed {
			if overlaps(p, q) {
				t.Errorf("panels %q and %q overlap", p.Title, q.Title)
			}
		}
		placed = append(placed, p)
		if p.Type == "row" {
			continue
		}
		if p.Datasource == nil || p.Datasource.UID != "${datasource}" || len(p.Targets) == 0 {
			t.Errorf("panel %q: no query on the dashboard's data source", p.Title)
		}
		for _, tg := range p.Targets {
			sels := selectorOfMetric.FindAllStringSubmatch(tg.Expr, -1)
			if len(sels) == 0 {
				t.Errorf("panel %q: query %q names no relay metric with a selector", p.Title, tg.Expr)
			}
			for _, s := range sels {
				if !strings.Contains(s[1], `job=~"$job"`) || !strings.Contains(s[1], `instance=~"$instance"`) {
					t.Errorf("panel %q: %s is not restricted to $job and $instance", p.Title, s[0])
				}
			}
		}
	}
}

func overlaps(a, b panel) bool {
	ga, gb := a.GridPos, b.GridPos
	return ga.X < gb.X+gb.W && gb.X < ga.X+ga.W && ga.Y < gb.Y+gb.H && gb.Y < ga.Y+ga.H
}

// TestDecodeStrictRefusesUnknownFields pins the strictness the manifest
// checks rely on.
func TestDecodeStrictRefusesUnknownFields(t *testing.T) {
	var rf ruleFile
	if err := decodeStrict([]byte("groups:\n- name: a\n  rules:\n  - alert: A\n    expr: up\n    fro: 5m\n"), &rf); err == nil {
		t.Fatal("a misspelt field decoded")
	}
}
