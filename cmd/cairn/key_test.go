package main

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
)

func TestKeys(t *testing.T) {
	e := newEnv(t)
	src := filepath.Join(e.dir, "src")
	writeFile(t, filepath.Join(src, "a"), []byte("a"))
	e.must("init")
	e.must("backup", src)

	second := filepath.Join(e.dir, "second")
	writeFile(t, second, []byte("another password"))
	e.must("key", "add", "--new-password-file", second)
	var keys []map[string]any
	if err := json.Unmarshal([]byte(e.must("key", "list", "--json")), &keys); err != nil || len(keys) != 2 {
		t.Fatalf("key list: %v %v", keys, err)
	}
	// Both passwords open the repository.
	if r := e.runRaw(nil, "--repo", e.repo, "--password-file", second, "cat", "latest", filepath.Join(src, "a")); r.code != 0 || r.stdout != "a" {
		t.Fatalf("second password: exit %d %s", r.code, r.stderr)
	}
	// The key in use cannot be removed; the other can.
	var current, other string
	for _, k := range keys {
		if k["current"] == true {
			current = k["id"].(string)
		} else {
			other = k["id"].(string)
		}
	}
	if r := e.run("key", "remove", current[:8]); r.code != 1 || !strings.Contains(r.stderr, "in use") {
		t.Fatalf("removing the key in use: exit %d %s", r.code, r.stderr)
	}
	e.must("key", "remove", other[:8])
	if r := e.runRaw(nil, "--repo", e.repo, "--password-file", second, "snapshots"); r.code != 1 || !strings.Contains(r.stderr, "wrong password") {
		t.Fatalf("removed password still opens: exit %d", r.code)
	}
	// passwd: the new password opens, the old one no longer does.
	third := filepath.Join(e.dir, "third")
	writeFile(t, third, []byte("third password"))
	e.must("key", "passwd", "--new-password-file", third)
	if r := e.run("snapshots"); r.code != 1 {
		t.Fatalf("the old password still opens after passwd")
	}
	if r := e.runRaw(nil, "--repo", e.repo, "--password-file", third, "check"); r.code != 0 {
		t.Fatalf("the new password: exit %d %s", r.code, r.stderr)
	}
}
