package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// binary is the cairn executable built once for all tests of this package.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "cairn-bin-")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "cairn")
	out, err := exec.Command("go", "build", "-o", binary, ".").CombinedOutput()
	if err != nil {
		panic("build cairn: " + err.Error() + "\n" + string(out))
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// env is a clean environment for one test: its own home and data folders, and a
// repository with a password file unless the test uses the default repository.
type env struct {
	t        *testing.T
	dir      string
	repo     string
	password string
	vars     []string
}

func newEnv(t *testing.T) *env {
	t.Helper()
	dir := t.TempDir()
	e := &env{t: t, dir: dir, repo: filepath.Join(dir, "repo"), password: filepath.Join(dir, "password")}
	if err := os.WriteFile(e.password, []byte("correct horse\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	e.vars = []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + filepath.Join(dir, "home"),
		"XDG_DATA_HOME=" + filepath.Join(dir, "home", ".local", "share"),
	}
	return e
}

// result is what one run of cairn did.
type result struct {
	stdout, stderr string
	code           int
}

// run runs cairn with the environment's repository and password.
func (e *env) run(args ...string) result {
	e.t.Helper()
	full := append([]string{"--repo", e.repo, "--password-file", e.password, "--insecure-kdf"}, args...)
	return e.runRaw(nil, full...)
}

// runRaw runs cairn with exactly args and extra environment variables.
func (e *env) runRaw(extra []string, args ...string) result {
	e.t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Env = append(append([]string{}, e.vars...), extra...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		e.t.Fatalf("run cairn: %v", err)
	}
	if strings.Contains(errb.String(), "panic:") || strings.Contains(errb.String(), "goroutine ") {
		e.t.Fatalf("cairn %v panicked:\n%s", args, errb.String())
	}
	return result{stdout: out.String(), stderr: errb.String(), code: code}
}

// must runs cairn and fails the test unless it exits 0.
func (e *env) must(args ...string) string {
	e.t.Helper()
	r := e.run(args...)
	if r.code != 0 {
		e.t.Fatalf("cairn %s: exit %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
	}
	return r.stdout
}

// jsonLines parses output of --json into objects, failing on any line that is not one.
func jsonLines(t *testing.T, out string) []map[string]any {
	t.Helper()
	var objs []map[string]any
	s := bufio.NewScanner(strings.NewReader(out))
	s.Buffer(make([]byte, 1<<20), 16<<20)
	for s.Scan() {
		var m map[string]any
		if err := json.Unmarshal(s.Bytes(), &m); err != nil {
			t.Fatalf("not a JSON object: %q: %v", s.Text(), err)
		}
		objs = append(objs, m)
	}
	return objs
}

// summary returns the last JSON line, which must be the summary.
func summary(t *testing.T, out string) map[string]any {
	t.Helper()
	objs := jsonLines(t, out)
	if len(objs) == 0 {
		t.Fatalf("no JSON output")
	}
	last := objs[len(objs)-1]
	if last["message_type"] != "summary" {
		t.Fatalf("last line is not a summary: %v", last)
	}
	return last
}

func writeFile(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

func repoSize(t *testing.T, repo string) int64 {
	t.Helper()
	var n int64
	_ = filepath.Walk(repo, func(p string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() {
			n += fi.Size()
		}
		return nil
	})
	return n
}
