//go:build linux

package restorer_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"cairn/internal/archiver"
	"cairn/internal/repo"
	"cairn/internal/repo/repotest"
	"cairn/internal/restorer"
	"cairn/internal/storage"
	"cairn/internal/treetest"
	"cairn/internal/vfs"
)

// packLoads counts the loads of the pack files named in data (tree packs are read
// by the walk too); the storage underneath does the work.
type packLoads struct {
	storage.Storage
	data sync.Map // pack name -> true
	n    atomic.Int64
}

func (c *packLoads) Load(ctx context.Context, h storage.Handle, offset, length int64) ([]byte, error) {
	if _, ok := c.data.Load(h.Name); ok && h.Type == storage.PackFile {
		c.n.Add(1)
	}
	return c.Storage.Load(ctx, h, offset, length)
}

// backupTree backs up the edge-case tree, plus enough small files (some sharing
// content, within and across the plan's batches) and a file repeating one chunk,
// and returns the source folder, the repository and the snapshot's entry of it.
func backupTree(t *testing.T) (string, *repo.Repository, *packLoads, *vfs.Entry) {
	t.Helper()
	ctx := context.Background()
	src := filepath.Join(t.TempDir(), "src")
	treetest.MakeEdgeCases(t, src, treetest.EdgeOptions{SparseSize: 64 << 20, Seed: 7})
	more := filepath.Join(src, "more")
	if err := os.Mkdir(more, 0o755); err != nil {
		t.Fatal(err)
	}
	for i := range 3000 {
		data := fmt.Appendf(nil, "small file %d\n", i%700) // 700 distinct contents
		if err := os.WriteFile(filepath.Join(more, fmt.Sprintf("f%04d", i)), data, 0o640); err != nil {
			t.Fatal(err)
		}
	}
	chunk := bytes.Repeat([]byte("the same chunk, again and again. "), 64<<10) // 2 MiB
	if err := os.WriteFile(filepath.Join(more, "repeats"), bytes.Repeat(chunk, 3), 0o644); err != nil {
		t.Fatal(err)
	}
	st := &packLoads{Storage: repotest.Storage(t)}
	r := repotest.NewOn(t, st)
	res, err := archiver.Backup(ctx, r, []string{src}, archiver.Options{Host: "h"})
	if err != nil {
		t.Fatal(err)
	}
	root, err := vfs.Root(r, res.Snapshot)
	if err != nil {
		t.Fatal(err)
	}
	e, err := root.Lookup(ctx, src)
	if err != nil {
		t.Fatal(err)
	}
	return src, r, st, e
}

// Restoring pack by pack gives the same tree, every metadata field, hole and hard
// link included, as the source; it reads each pack about once (a pack shared by
// two batches twice), where restoring file by file reads a chunk at a time.
func TestRestorePackByPack(t *testing.T) {
	ctx := context.Background()
	src, r, st, e := backupTree(t)
	opts := treetest.CompareOptions{IgnoreATime: true, IgnoreRootMeta: true}

	packs := map[repo.ID]bool{}
	chunks := 0
	_ = r.EachIndexedBlob(func(b repo.IndexedBlob) error {
		if b.Type == repo.DataBlob {
			packs[b.Pack] = true
			st.data.Store(b.Pack.String(), true)
			chunks++
		}
		return nil
	})

	byPack := filepath.Join(t.TempDir(), "by-pack")
	res, err := restorer.Restore(ctx, e, src, restorer.Options{Target: byPack, Repository: r, Verify: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Errors) > 0 {
		t.Fatalf("errors: %v", res.Errors)
	}
	treetest.RequireEqual(t, src, byPack, opts)

	// Without --verify, which reads each file back chunk by chunk.
	st.n.Store(0)
	if _, err := restorer.Restore(ctx, e, src, restorer.Options{Target: filepath.Join(t.TempDir(), "x"), Repository: r}); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d data pack loads for %d packs (%d chunks)", st.n.Load(), len(packs), chunks)
	if loads, most := st.n.Load(), int64(2*len(packs)); loads > most {
		t.Fatalf("%d pack loads for %d packs, want at most %d", loads, len(packs), most)
	}

	byFile := filepath.Join(t.TempDir(), "by-file")
	st.n.Store(0)
	if _, err := restorer.Restore(ctx, e, src, restorer.Options{Target: byFile}); err != nil {
		t.Fatal(err)
	}
	treetest.RequireEqual(t, src, byFile, opts)
	if loads := st.n.Load(); loads < int64(chunks)/2 {
		t.Fatalf("file by file: %d pack loads for %d chunks; the comparison above means nothing", loads, chunks)
	}
}

// A pack that cannot be read costs the files with content in it, each reported
// once, and nothing else.
func TestRestoreMissingPack(t *testing.T) {
	ctx := context.Background()
	src, r, st, e := backupTree(t)
	var lost repo.ID
	_ = r.EachIndexedBlob(func(b repo.IndexedBlob) error {
		if b.Type == repo.DataBlob {
			lost = b.Pack
		}
		return nil
	})
	if err := st.Remove(ctx, storage.Handle{Type: storage.PackFile, Name: lost.String()}); err != nil {
		t.Fatal(err)
	}
	target := filepath.Join(t.TempDir(), "t")
	res, err := restorer.Restore(ctx, e, src, restorer.Options{Target: target, Repository: r})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Errors) == 0 {
		t.Fatal("no file reported for a missing pack")
	}
	seen := map[string]bool{}
	for _, pe := range res.Errors {
		if seen[pe.Path] {
			t.Errorf("%s reported twice", pe.Path)
		}
		seen[pe.Path] = true
		if !strings.Contains(pe.Err.Error(), lost.Short()) && !storage.IsNotExist(pe.Err) {
			t.Errorf("%s: %v, want the missing pack's error", pe.Path, pe.Err)
		}
	}
	// Every file not reported is restored whole: a difference names a reported
	// file (or a hard link to one).
	reported := map[string]bool{}
	for p := range seen {
		rel, _ := filepath.Rel(target, p)
		reported[fmt.Sprintf("%q", rel)] = true
	}
	for _, d := range treetest.Compare(t, src, target, treetest.CompareOptions{IgnoreATime: true, IgnoreRootMeta: true}) {
		path, _, _ := strings.Cut(d, ": ")
		if !reported[path] && !strings.Contains(d, "hard link") && !strings.Contains(d, "hardlink") {
			t.Errorf("difference in a file not reported: %s", d)
		}
	}
}
