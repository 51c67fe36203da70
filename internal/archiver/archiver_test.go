package archiver_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"cairn/internal/archiver"
	"cairn/internal/repo"
	"cairn/internal/repo/repotest"
	"cairn/internal/vfs"
)

type recorder struct {
	mu       sync.Mutex
	warnings []string
	errors   []string
	onBytes  func()
}

func (r *recorder) Scanned(int64, int64, bool)                  {}
func (r *recorder) FileDone(string, int64, archiver.FileStatus) {}
func (r *recorder) BytesRead(int64) {
	if r.onBytes != nil {
		r.onBytes()
	}
}
func (r *recorder) Error(path string, err error) {
	r.mu.Lock()
	r.errors = append(r.errors, path+": "+err.Error())
	r.mu.Unlock()
}
func (r *recorder) Warning(path, msg string) {
	r.mu.Lock()
	r.warnings = append(r.warnings, path+": "+msg)
	r.mu.Unlock()
}

func write(t *testing.T, p string, data []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

func random(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return b
}

func readAll(t *testing.T, r *repo.Repository, s *repo.Snapshot, p string) []byte {
	t.Helper()
	root, err := vfs.Root(r, s)
	if err != nil {
		t.Fatal(err)
	}
	e, err := root.Lookup(context.Background(), p)
	if err != nil {
		t.Fatal(err)
	}
	f, err := e.Open(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(f); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestBackupContentExcludesAndParent(t *testing.T) {
	ctx := context.Background()
	r := repotest.New(t)
	dir := t.TempDir()
	big := random(12 << 20)
	write(t, filepath.Join(dir, "a", "big.bin"), big)
	write(t, filepath.Join(dir, "a", "skip.tmp"), []byte("temporary"))
	write(t, filepath.Join(dir, "cache", "x"), []byte("cached"))
	write(t, filepath.Join(dir, "b", "empty"), nil)

	res, err := archiver.Backup(ctx, r, []string{dir}, archiver.Options{Host: "h", Excludes: []string{"*.tmp", dir + "/cache"}})
	if err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, r, res.Snapshot, dir+"/a/big.bin"); !bytes.Equal(got, big) {
		t.Fatalf("big.bin read back %d bytes that differ", len(got))
	}
	if got := readAll(t, r, res.Snapshot, dir+"/b/empty"); len(got) != 0 {
		t.Fatalf("empty file has %d bytes", len(got))
	}
	root, _ := vfs.Root(r, res.Snapshot)
	for _, p := range []string{dir + "/a/skip.tmp", dir + "/cache"} {
		if _, err := root.Lookup(ctx, p); err == nil {
			t.Errorf("excluded %s is in the snapshot", p)
		}
	}
	s := res.Snapshot.Summary
	if s.FilesNew != 2 || s.TotalBytes != uint64(len(big)) || s.DataAdded < uint64(len(big)) {
		t.Fatalf("summary: %+v", s)
	}

	// With the parent, nothing is read: the content ids come from the parent.
	res2, err := archiver.Backup(ctx, r, []string{dir}, archiver.Options{Host: "h", Excludes: []string{"*.tmp", dir + "/cache"}, Parent: res.Snapshot, ParentID: &res.ID})
	if err != nil {
		t.Fatal(err)
	}
	if res2.Snapshot.Summary.FilesUnmodified != 2 || res2.Snapshot.Summary.DataAdded != 0 {
		t.Fatalf("second summary: %+v", res2.Snapshot.Summary)
	}
	if *res2.Snapshot.Parent != res.ID {
		t.Fatalf("parent not recorded")
	}
}

// A file that grows while it is read is noted, and the snapshot still holds
// consistent content (what was read).
func TestFileChangingWhileRead(t *testing.T) {
	ctx := context.Background()
	r := repotest.New(t)
	dir := t.TempDir()
	p := filepath.Join(dir, "growing.log")
	write(t, p, random(40<<20))
	var once sync.Once
	rec := &recorder{}
	rec.onBytes = func() {
		once.Do(func() {
			f, err := os.OpenFile(p, os.O_APPEND|os.O_WRONLY, 0)
			if err != nil {
				t.Error(err)
				return
			}
			_, _ = f.Write(random(1 << 20))
			f.Close()
		})
	}
	res, err := archiver.Backup(ctx, r, []string{p}, archiver.Options{Host: "h", Progress: rec, Workers: 1})
	if err != nil {
		t.Fatal(err)
	}
	if len(rec.warnings) != 1 || !strings.Contains(rec.warnings[0], "changed while it was read") {
		t.Fatalf("warnings: %v", rec.warnings)
	}
	root, _ := vfs.Root(r, res.Snapshot)
	e, err := root.Lookup(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	if e.Node.Error == "" {
		t.Fatalf("the node does not record the change")
	}
	f, _ := e.Open(ctx)
	if uint64(f.Size()) != e.Node.Size {
		t.Fatalf("node size %d, content %d", e.Node.Size, f.Size())
	}
}

func TestMissingSourceFailsBeforeWriting(t *testing.T) {
	r := repotest.New(t)
	_, err := archiver.Backup(context.Background(), r, []string{"/no/such/path"}, archiver.Options{})
	if err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Fatalf("err = %v", err)
	}
	ids, _ := r.SnapshotIDs(context.Background())
	if len(ids) != 0 {
		t.Fatalf("%d snapshots written", len(ids))
	}
}

func BenchmarkBackupRandomFile(b *testing.B) {
	dir := b.TempDir()
	data := random(128 << 20)
	p := filepath.Join(dir, "f")
	if err := os.WriteFile(p, data, 0o644); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		r := repotest.New(b)
		if _, err := archiver.Backup(context.Background(), r, []string{p}, archiver.Options{}); err != nil {
			b.Fatal(err)
		}
	}
}
