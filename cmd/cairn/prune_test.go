package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"cairn/internal/repo"
	"cairn/internal/storage/local"
)

func TestPruneDeletesAndRepacks(t *testing.T) {
	e := newEnv(t)
	src := filepath.Join(e.dir, "src")
	for i := 0; i < 8; i++ {
		writeFile(t, filepath.Join(src, fmt.Sprintf("f%d", i)), randomData(t, 1<<20))
	}
	e.must("init")
	first := summary(t, e.must("backup", "--json", src))["snapshot_id"].(string)
	for i := 0; i < 6; i++ {
		os.Remove(filepath.Join(src, fmt.Sprintf("f%d", i)))
	}
	writeFile(t, filepath.Join(src, "new"), randomData(t, 3<<20))
	e.must("backup", src)
	// A pack left by an interrupted backup: in the storage, in no index.
	pack := largestPack(t, e.repo)
	stray := filepath.Join(e.repo, "data", "ab", strings.Repeat("ab", 32))
	b, _ := os.ReadFile(pack)
	if err := os.WriteFile(stray, b, 0o400); err != nil {
		t.Fatal(err)
	}
	before := repoSize(t, e.repo)

	dry := summary(t, e.must("prune", "--json", "--dry-run"))
	if dry["packs_deleted"].(float64) != 1 || repoSize(t, e.repo) != before {
		t.Fatalf("dry run: %v", dry)
	}
	e.must("forget", "--keep-last", "1")
	s := summary(t, e.must("prune", "--json", "--max-unused", "0%"))
	after := repoSize(t, e.repo)
	t.Logf("prune: %v; repository %d -> %d bytes", s, before, after)
	if s["packs_repacked"].(float64) < 1 || s["bytes_repacked"].(float64) < 1<<20 {
		t.Errorf("the pack with 6 of 8 files unused was not repacked: %v", s)
	}
	if _, err := os.Stat(stray); err == nil {
		t.Errorf("the stray pack is still there")
	}
	// 6 MiB of the first backup's files and the 8 MiB stray pack are gone.
	if before-after < 13<<20 {
		t.Errorf("prune freed %d bytes, want at least 13 MiB", before-after)
	}
	e.must("check", "--read-data")
	target := filepath.Join(e.dir, "restore")
	e.must("restore", "latest:"+src, "--target", target, "--verify")
	for _, name := range []string{"f6", "f7", "new"} {
		want, _ := os.ReadFile(filepath.Join(src, name))
		got, err := os.ReadFile(filepath.Join(target, name))
		if err != nil || string(got) != string(want) {
			t.Errorf("%s after prune: %v", name, err)
		}
	}
	if r := e.run("ls", first[:8]); r.code == 0 {
		t.Errorf("the forgotten snapshot is still listed")
	}
	// A second prune has nothing to do.
	if s := summary(t, e.must("prune", "--json")); s["packs_deleted"].(float64) != 0 || s["packs_repacked"].(float64) != 0 {
		t.Errorf("second prune: %v", s)
	}
}

// Prune waits for no one: while a backup holds its shared lock, prune refuses;
// backups share.
func TestPruneRespectsLocks(t *testing.T) {
	e := newEnv(t)
	src := filepath.Join(e.dir, "src")
	writeFile(t, filepath.Join(src, "a"), []byte("a"))
	e.must("init")
	st, err := local.Open(e.repo)
	if err != nil {
		t.Fatal(err)
	}
	r, err := repo.Open(context.Background(), st, "correct horse")
	if err != nil {
		t.Fatal(err)
	}
	lock, err := r.Lock(context.Background(), false)
	if err != nil {
		t.Fatal(err)
	}
	e.must("backup", src) // shared with shared
	res := e.run("prune")
	if res.code != 1 || !strings.Contains(res.stderr, "locked") || !strings.Contains(res.stderr, fmt.Sprint(os.Getpid())) {
		t.Fatalf("prune under a shared lock: exit %d, %s", res.code, res.stderr)
	}
	if res := e.run("forget", "--keep-last", "1"); res.code != 1 || !strings.Contains(res.stderr, "locked") {
		t.Fatalf("forget under a shared lock: exit %d, %s", res.code, res.stderr)
	}
	if err := lock.Unlock(); err != nil {
		t.Fatal(err)
	}
	e.must("prune")
	if entries, _ := os.ReadDir(filepath.Join(e.repo, "locks")); len(entries) != 0 {
		t.Fatalf("%d lock files left behind", len(entries))
	}
}
