//go:build linux

package main

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"cairn/internal/treetest"
)

// A real tree full of edge cases and a part of /usr comes back from a backup with
// every byte and every metadata field, holes included.
func TestRoundTripRealTree(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root for owners, device nodes and xattrs")
	}
	e := newEnv(t)
	src := filepath.Join(e.dir, "src")
	treetest.MakeEdgeCases(t, filepath.Join(src, "edge"), treetest.EdgeOptions{Seed: 7})
	treetest.CopyUsr(t, filepath.Join(src, "usr"), 150<<20)

	// Reading a folder sets its atime; one in the future stays as it is.
	future := time.Date(2090, 1, 2, 3, 4, 5, 6, time.UTC)
	fi, err := os.Stat(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(src, future, fi.ModTime()); err != nil {
		t.Fatal(err)
	}
	e.must("init")
	first := summary(t, e.must("backup", "--json", src))
	target := filepath.Join(e.dir, "restore")
	s := summary(t, e.must("restore", "--json", "--verify", "latest:"+src, "--target", target))
	if s["files_verified"] != s["files_restored"] {
		t.Errorf("restore --verify verified %v of %v files", s["files_verified"], s["files_restored"])
	}
	treetest.RequireEqual(t, src, target, treetest.CompareOptions{IgnoreRootMeta: true})

	// The whole snapshot restores under the full path, the same again.
	full := filepath.Join(e.dir, "full")
	e.must("restore", "latest", "--target", full)
	treetest.RequireEqual(t, src, filepath.Join(full, src), treetest.CompareOptions{})

	// Nothing changed: nothing is read again and the tree is the same.
	second := summary(t, e.must("backup", "--json", src))
	if second["files_unmodified"] != first["total_files_processed"] || second["files_new"].(float64) != 0 {
		t.Errorf("unchanged backup: %v unmodified of %v files, %v new", second["files_unmodified"], first["total_files_processed"], second["files_new"])
	}
	if second["data_added"].(float64) > 0 {
		t.Errorf("unchanged backup added %v bytes", second["data_added"])
	}
	e.must("check", "--read-data")
}
