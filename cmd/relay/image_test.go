package main

import (
	"bufio"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// The image cannot be built on every machine (no container engine), so these
// tests read the Dockerfile and check what the image promises: a static
// build, a non-root distroless runtime, a data volume, the health probe.

const nonrootUID = 65532

// instruction is one Dockerfile instruction, continuation lines joined.
type instruction struct{ cmd, args string }

// stage is a FROM and the instructions up to the next one.
type stage struct {
	from, name string
	body       []instruction
}

func (s stage) all(cmd string) []string {
	var out []string
	for _, in := range s.body {
		if in.cmd == cmd {
			out = append(out, in.args)
		}
	}
	return out
}

func (s stage) last(cmd string) string {
	all := s.all(cmd)
	if len(all) == 0 {
		return ""
	}
	return all[len(all)-1]
}

// parseDockerfile splits the repository's Dockerfile into stages; the first
// holds the instructions before any FROM (global ARGs).
func parseDockerfile(t *testing.T) []stage {
	t.Helper()
	f, err := os.Open(filepath.Join("..", "..", "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	stages := []stage{{name: "global"}}
	var line string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		text := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(text, "#") || (text == "" && line == "") {
			continue
		}
		if cont, ok := strings.CutSuffix(text, "\\"); ok {
			line += cont + " "
			continue
		}
		line += text
		cmd, args, _ := strings.Cut(line, " ")
		line = ""
		in := instruction{strings.ToUpper(cmd), strings.Join(strings.Fields(args), " ")}
		if in.cmd == "FROM" {
			from, name, _ := strings.Cut(in.args, " AS ")
			stages = append(stages, stage{from: from, name: name})
		} else {
			stages[len(stages)-1].body = append(stages[len(stages)-1].body, in)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return stages
}

func stageNamed(t *testing.T, stages []stage, name string) stage {
	t.Helper()
	for _, s := range stages {
		if s.name == name {
			return s
		}
	}
	t.Fatalf("Dockerfile has no stage %q", name)
	return stage{}
}

var goBuildRE = regexp.MustCompile(`go build (.*?) -o (\S+) (\./cmd/\S+)`)

// relayBuildFlags are the flags the Dockerfile builds the relay with, and
// the build environment it sets.
func relayBuildFlags(t *testing.T, stages []stage) (flags []string, env []string) {
	t.Helper()
	build := stageNamed(t, stages, "build")
	for _, e := range build.all("ENV") {
		env = append(env, strings.Fields(e)...)
	}
	return buildFlags(t, build, "./cmd/relay"), env
}

// buildFlags are the flags of the `go build` of pkg in stage s.
func buildFlags(t *testing.T, s stage, pkg string) []string {
	t.Helper()
	for _, run := range s.all("RUN") {
		for _, m := range goBuildRE.FindAllStringSubmatch(run, -1) {
			if m[3] == pkg {
				return shellFields(m[1])
			}
		}
	}
	t.Fatalf("no `go build ... %s` in stage %s", pkg, s.name)
	return nil
}

// shellFields splits on spaces outside double quotes and drops the quotes.
func shellFields(s string) []string {
	var out []string
	var cur strings.Builder
	quoted := false
	for _, r := range s + " " {
		switch {
		case r == '"':
			quoted = !quoted
		case r == ' ' && !quoted:
			if cur.Len() > 0 {
				out = append(out, cur.String())
				cur.Reset()
			}
		default:
			cur.WriteRune(r)
		}
	}
	return out
}

func TestDockerfileBuildsStatically(t *testing.T) {
	stages := parseDockerfile(t)
	if b := stageNamed(t, stages, "build"); !strings.HasPrefix(b.from, "golang:") {
		t.Errorf("build stage FROM %q, want golang", b.from)
	} else if !slices.Contains(stageNamed(t, stages, "global").all("ARG"), "GO_VERSION=1.26") || b.from != "golang:${GO_VERSION}" {
		t.Errorf("build stage FROM %q, want golang:${GO_VERSION} with GO_VERSION=1.26", b.from)
	}
	flags, env := relayBuildFlags(t, stages)
	if !slices.Contains(env, "CGO_ENABLED=0") {
		t.Errorf("build stage ENV %q lacks CGO_ENABLED=0", env)
	}
	if !slices.Contains(flags, "-trimpath") || !slices.Contains(flags, "-s -w") {
		t.Errorf("relay built with %q, want -trimpath and -ldflags \"-s -w\"", flags)
	}
	// The production image leaves the demo, and the fake Chatwoot it runs, out.
	i := slices.Index(flags, "-tags")
	if i < 0 || i+1 == len(flags) || flags[i+1] != "nodemo" {
		t.Errorf("relay built with %q, want -tags nodemo", flags)
	} else {
		flags = slices.Delete(slices.Clone(flags), i, i+2)
	}
	fake := stageNamed(t, stages, "build-fake")
	if f := buildFlags(t, fake, "./cmd/chatwoot-fake"); fake.from != "build" || !slices.Equal(f, flags) {
		t.Errorf("chatwoot-fake built FROM %q with %q, want FROM build with the relay's %q", fake.from, f, flags)
	}
}

func TestDockerfileRuntimeIsNonrootDistroless(t *testing.T) {
	stages := parseDockerfile(t)
	final := stages[len(stages)-1]
	if final.name != "relay" {
		t.Errorf("the default (last) stage is %q, want relay", final.name)
	}
	for _, s := range []stage{final, stageNamed(t, stages, "chatwoot-fake")} {
		if s.from != "gcr.io/distroless/static-debian12:nonroot" {
			t.Errorf("%s: FROM %q, want distroless static nonroot", s.name, s.from)
		}
		if u := s.last("USER"); u != "65532:65532" {
			t.Errorf("%s: USER %q, want 65532:65532", s.name, u)
		}
		labels := strings.Join(s.all("LABEL"), " ")
		for _, key := range []string{"title", "description", "source", "version", "revision"} {
			if !strings.Contains(labels, "org.opencontainers.image."+key+"=") {
				t.Errorf("%s: no org.opencontainers.image.%s label", s.name, key)
			}
		}
	}
	if ep := final.last("ENTRYPOINT"); ep != `["/relay"]` {
		t.Errorf("ENTRYPOINT %s, want [\"/relay\"]", ep)
	}
	if got := strings.Fields(final.last("EXPOSE")); !slices.Equal(got, []string{"8080", "4222"}) {
		t.Errorf("EXPOSE %q, want 8080 4222", got)
	}
}

func TestDockerfileHealthcheckUsesTheSubcommand(t *testing.T) {
	final := parseDockerfile(t)
	hc := final[len(final)-1].last("HEALTHCHECK")
	_, cmd, ok := strings.Cut(hc, " CMD ")
	var argv []string
	if !ok || json.Unmarshal([]byte(cmd), &argv) != nil {
		t.Fatalf("HEALTHCHECK %q: want the exec form CMD [...] (the image has no shell)", hc)
	}
	if !slices.Equal(argv, []string{"/relay", "healthcheck"}) {
		t.Errorf("HEALTHCHECK runs %q, want /relay healthcheck", argv)
	}
}

// The data volume is where the relay writes, owned by the user it runs as,
// and the image does not bind the API to every address without tokens.
func TestDockerfileDataVolume(t *testing.T) {
	stages := parseDockerfile(t)
	final := stages[len(stages)-1]
	env := map[string]string{}
	for _, e := range final.all("ENV") {
		for _, kv := range strings.Fields(e) {
			k, v, _ := strings.Cut(kv, "=")
			env[k] = v
		}
	}
	dir := env["RELAY_DATA_DIR"]
	if dir == "" || !filepath.IsAbs(dir) {
		t.Fatalf("RELAY_DATA_DIR %q, want an absolute path", dir)
	}
	var vols []string
	if json.Unmarshal([]byte(final.last("VOLUME")), &vols) != nil || !slices.Equal(vols, []string{dir}) {
		t.Errorf("VOLUME %s, want [%q]", final.last("VOLUME"), dir)
	}
	owned := false
	for _, c := range final.all("COPY") {
		f := strings.Fields(c)
		owned = owned || (slices.Contains(f, "--chown=65532:65532") && f[len(f)-1] == dir)
	}
	if !owned {
		t.Errorf("no COPY --chown=65532:65532 ... %s: the volume would not be writable", dir)
	}
	for _, k := range []string{"RELAY_HTTP_ADDR", "RELAY_NATS_LISTEN"} {
		if v, ok := env[k]; ok && !loopbackAddr(v) {
			t.Errorf("ENV %s=%s: the relay refuses it without tokens or NATS authentication", k, v)
		}
	}
}

func TestDockerignore(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("..", "..", ".dockerignore"))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Fields(string(data))
	for _, want := range []string{".git", "data", "docs", "**/testdata", "**/*_test.go"} {
		if !slices.Contains(lines, want) {
			t.Errorf(".dockerignore lacks %s", want)
		}
	}
	// The relay embeds openapi.json: it must reach the build context.
	for _, l := range lines {
		if m, _ := filepath.Match(l, "internal/api/openapi.json"); m {
			t.Errorf(".dockerignore pattern %s excludes internal/api/openapi.json", l)
		}
	}
}

// A data directory the relay cannot use (a volume not writable by the
// image's user, here a file) stops the start with a clear error instead of
// a crash while stopping what was started.
func TestUnusableDataDirFailsCleanly(t *testing.T) {
	file := filepath.Join(t.TempDir(), "not-a-dir")
	must(t, os.WriteFile(file, nil, 0o600))
	var stderr strings.Builder
	err := run(t.Context(), nil, []string{
		"RELAY_CHATWOOT_URL=http://127.0.0.1:1", "RELAY_HTTP_ADDR=127.0.0.1:0",
		"RELAY_NATS_LISTEN=127.0.0.1:-1", "RELAY_DATA_DIR=" + file,
	}, io.Discard, &stderr)
	if err == nil || !strings.Contains(err.Error(), "state store") {
		t.Errorf("start with a file as RELAY_DATA_DIR: %v, want a state store error", err)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
