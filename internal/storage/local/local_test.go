package local

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"cairn/internal/storage"
	"cairn/internal/storage/storagetest"
)

func newTestStorage(t *testing.T) *Storage {
	t.Helper()
	s, err := Create(filepath.Join(t.TempDir(), "repo"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestConformance(t *testing.T) {
	storagetest.Run(t, func(t *testing.T) storage.Storage { return newTestStorage(t) })
}

// tempFiles returns the temporary files anywhere under root.
func tempFiles(t *testing.T, root string) []string {
	t.Helper()
	var found []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if strings.HasPrefix(d.Name(), tmpPrefix) {
			found = append(found, p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return found
}

func TestLayout(t *testing.T) {
	s := newTestStorage(t)
	ctx := context.Background()
	for _, d := range []string{"keys", "data", "index", "snapshots", "locks"} {
		fi, err := os.Stat(filepath.Join(s.Location(), d))
		if err != nil || !fi.IsDir() || fi.Mode().Perm() != dirMode {
			t.Errorf("folder %s: %v, %v", d, fi, err)
		}
	}
	entries, err := os.ReadDir(filepath.Join(s.Location(), "data"))
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 256 {
		t.Errorf("data has %d entries, want 256", len(entries))
	}
	for i, e := range entries {
		if want := fmt.Sprintf("%02x", i); e.Name() != want || !e.IsDir() {
			t.Errorf("data entry %d is %q, want folder %q", i, e.Name(), want)
		}
	}
	files := map[storage.Handle]string{
		{Type: storage.ConfigFile}:                  "config",
		{Type: storage.PackFile, Name: "ab12cd"}:    "data/ab/ab12cd",
		{Type: storage.PackFile, Name: "Zq"}:        "data/Zq/Zq", // a folder made on demand
		{Type: storage.KeyFile, Name: "k1"}:         "keys/k1",
		{Type: storage.IndexFile, Name: "i1"}:       "index/i1",
		{Type: storage.SnapshotFile, Name: "s1"}:    "snapshots/s1",
		{Type: storage.LockFile, Name: "l1"}:        "locks/l1",
		{Type: storage.PackFile, Name: "0f" + "99"}: "data/0f/0f99",
	}
	for h, rel := range files {
		if err := s.Save(ctx, h, []byte(rel)); err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(filepath.Join(s.Location(), filepath.FromSlash(rel)))
		if err != nil || string(b) != rel {
			t.Errorf("%v is not at %s: %q, %v", h, rel, b, err)
		}
	}
	if found := tempFiles(t, s.Location()); len(found) != 0 {
		t.Errorf("temporary files left behind: %v", found)
	}
}

func TestReadOnly(t *testing.T) {
	s := newTestStorage(t)
	ctx := context.Background()
	for _, h := range []storage.Handle{{Type: storage.ConfigFile}, {Type: storage.PackFile, Name: "abcdef"}, {Type: storage.KeyFile, Name: "key"}} {
		if err := s.Save(ctx, h, []byte("content")); err != nil {
			t.Fatal(err)
		}
		fi, err := os.Stat(s.path(h))
		if err != nil {
			t.Fatal(err)
		}
		if perm := fi.Mode().Perm(); perm&0o222 != 0 || perm != fileMode {
			t.Errorf("%v has mode %v, want %v (read-only)", h, perm, fs.FileMode(fileMode))
		}
		if os.Geteuid() != 0 { // root may write to anything
			if f, err := os.OpenFile(s.path(h), os.O_WRONLY, 0); err == nil {
				f.Close()
				t.Errorf("%v could be opened for writing", h)
			}
		}
	}
}

func TestCreateOpen(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing")
	for _, p := range []string{missing, dir} { // no folder; a folder without config
		_, err := Open(p)
		if err == nil || err.Error() != "no repository at "+p || !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("Open(%s): %v, want \"no repository at %s\" matching fs.ErrNotExist", p, err, p)
		}
	}

	path := filepath.Join(dir, "a", "b", "repo") // parents made too
	s, err := Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if s.Location() != path {
		t.Errorf("Location() = %q, want %q", s.Location(), path)
	}
	if _, err := Create(path); err != nil {
		t.Errorf("Create again before the config is saved: %v", err)
	}
	if err := s.Save(ctx, storage.Handle{Type: storage.ConfigFile}, []byte("cfg")); err != nil {
		t.Fatal(err)
	}
	if _, err := Create(path); !errors.Is(err, storage.ErrExists) || !strings.Contains(err.Error(), path) {
		t.Errorf("Create over a repository: %v, want an error naming the path and matching ErrExists", err)
	}
	o, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if b, err := o.Load(ctx, storage.Handle{Type: storage.ConfigFile}, 0, 0); err != nil || string(b) != "cfg" {
		t.Errorf("Load(config) after Open = %q, %v", b, err)
	}

	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Create(file); err == nil {
		t.Error("Create over a plain file succeeded")
	}
}

func TestListSkipsStrays(t *testing.T) {
	s := newTestStorage(t)
	ctx := context.Background()
	pack := storage.Handle{Type: storage.PackFile, Name: "ab01"}
	key := storage.Handle{Type: storage.KeyFile, Name: "k1"}
	for _, h := range []storage.Handle{pack, key} {
		if err := s.Save(ctx, h, []byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	for _, rel := range []string{
		"keys/.tmp-123", "data/ab/.tmp-456", "data/ab/README.txt", "data/cd/ab02", "index/.tmp-9", "locks/a b",
	} {
		if err := os.WriteFile(filepath.Join(s.Location(), filepath.FromSlash(rel)), []byte("stray"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(s.Location(), "keys", "sub"), dirMode); err != nil {
		t.Fatal(err)
	}
	for _, ft := range storage.FileTypes {
		var got []string
		err := s.List(ctx, ft, func(fi storage.FileInfo) error {
			got = append(got, fi.Name)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		want := map[storage.FileType]string{storage.PackFile: "ab01", storage.KeyFile: "k1"}[ft]
		if (want == "" && len(got) != 0) || (want != "" && (len(got) != 1 || got[0] != want)) {
			t.Errorf("List(%s) = %q, want only %q", ft, got, want)
		}
	}
}

// cancelAfter is a context whose Err is nil for its first n calls, then
// context.Canceled: it cancels a Save in the middle of writing.
type cancelAfter struct {
	context.Context
	n atomic.Int32
}

func (c *cancelAfter) Err() error {
	if c.n.Add(-1) < 0 {
		return context.Canceled
	}
	return nil
}

func TestCancelMidWrite(t *testing.T) {
	s := newTestStorage(t)
	h := storage.Handle{Type: storage.PackFile, Name: "abcd"}
	data := storagetest.RandomData(3*writeChunk + 5)
	for calls := int32(1); calls <= 5; calls++ {
		ctx := &cancelAfter{Context: context.Background()}
		ctx.n.Store(calls)
		if err := s.Save(ctx, h, data); !errors.Is(err, context.Canceled) {
			t.Errorf("Save cancelled after %d checks: %v, want context.Canceled", calls, err)
		}
		if _, err := s.Stat(context.Background(), h); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("Save cancelled after %d checks left the file (Stat: %v)", calls, err)
		}
		if found := tempFiles(t, s.Location()); len(found) != 0 {
			t.Errorf("Save cancelled after %d checks left temporary files: %v", calls, found)
		}
	}
}
