package main

import (
	"path/filepath"
	"strings"
	"testing"
)

func TestForget(t *testing.T) {
	e := newEnv(t)
	a := filepath.Join(e.dir, "a")
	b := filepath.Join(e.dir, "b")
	writeFile(t, filepath.Join(a, "f"), []byte("a"))
	writeFile(t, filepath.Join(b, "f"), []byte("b"))
	e.must("init")
	var ids []string
	for i := 0; i < 4; i++ {
		ids = append(ids, summary(t, e.must("backup", "--json", a))["snapshot_id"].(string))
	}
	e.must("backup", "--tag", "keep", b)
	e.must("backup", b)

	if r := e.run("forget"); r.code != 2 {
		t.Fatalf("forget without a policy: exit %d", r.code)
	}
	if r := e.run("forget", "--keep-within", "7x"); r.code != 2 {
		t.Fatalf("bad duration: exit %d", r.code)
	}
	dry := e.must("forget", "--keep-last", "1", "--dry-run")
	if !strings.Contains(dry, "would remove 4 snapshots") {
		t.Fatalf("dry run:\n%s", dry)
	}
	if n := strings.Count(e.must("snapshots"), "\n"); n != 6+2 {
		t.Fatalf("a dry run removed snapshots")
	}
	// Groups by host and paths: the newest of a and of b stay, and the tagged b.
	s := summary(t, e.must("forget", "--json", "--keep-last", "1", "--keep-tag", "keep"))
	if s["removed"].(float64) != 3 || s["kept"].(float64) != 3 {
		t.Fatalf("forget summary: %v", s)
	}
	list := e.must("snapshots")
	if !strings.Contains(list, ids[3][:8]) || strings.Contains(list, ids[0][:8]) || !strings.Contains(list, "keep") {
		t.Fatalf("after forget:\n%s", list)
	}
	e.must("check")
}
