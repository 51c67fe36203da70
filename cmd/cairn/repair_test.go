package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A repository whose index files are lost or damaged is whole again after
// repair index.
func TestRepairIndex(t *testing.T) {
	e := newEnv(t)
	src := filepath.Join(e.dir, "src")
	writeFile(t, filepath.Join(src, "a"), randomData(t, 3<<20))
	writeFile(t, filepath.Join(src, "b"), []byte("bee"))
	e.must("init")
	e.must("backup", src)
	writeFile(t, filepath.Join(src, "c"), randomData(t, 1<<20))
	e.must("backup", src)

	index, _ := os.ReadDir(filepath.Join(e.repo, "index"))
	if len(index) < 2 {
		t.Fatalf("%d index files", len(index))
	}
	// Lose one index file and damage the other.
	os.Remove(filepath.Join(e.repo, "index", index[0].Name()))
	damaged := filepath.Join(e.repo, "index", index[1].Name())
	os.Chmod(damaged, 0o600)
	b, _ := os.ReadFile(damaged)
	b[len(b)/2] ^= 1
	os.WriteFile(damaged, b, 0o400)

	if r := e.run("check"); r.code != 1 {
		t.Fatalf("check of a repository without its index: exit %d\n%s", r.code, r.stdout)
	}
	s := summary(t, e.must("repair", "index", "--json"))
	if s["packs_indexed"].(float64) < 1 {
		t.Fatalf("repair index: %v", s)
	}
	out := e.must("check", "--read-data")
	if !strings.Contains(out, "no problems found") {
		t.Fatalf("check after repair:\n%s", out)
	}
	if got := e.must("cat", "latest", filepath.Join(src, "b")); got != "bee" {
		t.Fatalf("cat after repair: %q", got)
	}
}
