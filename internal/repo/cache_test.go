package repo_test

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	// The cache is tested end to end through the real backup path, as the CLI runs
	// it; an external test package, so no import cycle.
	"cairn/internal/archiver" //nolint:depguard // test of the cache through a real backup
	"cairn/internal/repo"
	"cairn/internal/repo/repotest"
	"cairn/internal/snapshot" //nolint:depguard // test of the cache through a real backup
	"cairn/internal/storage"
	"cairn/internal/storage/local"
)

// countingStorage counts the Loads of each file type, and those of whole files. The
// storage underneath does the work; this only counts.
type countingStorage struct {
	storage.Storage
	mu           sync.Mutex
	loads, whole map[storage.FileType]int
}

func (c *countingStorage) Load(ctx context.Context, h storage.Handle, offset, length int64) ([]byte, error) {
	c.mu.Lock()
	c.loads[h.Type]++
	if offset == 0 && length == 0 {
		c.whole[h.Type]++
	}
	c.mu.Unlock()
	return c.Storage.Load(ctx, h, offset, length)
}

func (c *countingStorage) count(t storage.FileType) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.loads[t]
}

func (c *countingStorage) reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.loads = map[storage.FileType]int{}
	c.whole = map[storage.FileType]int{}
}

func (c *countingStorage) wholeCount(t storage.FileType) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.whole[t]
}

// cacheEnv is a repository in a local folder, seen through a counting storage,
// holding trees in two tree packs, a data pack and three snapshots, and an empty
// cache folder.
type cacheEnv struct {
	st        *countingStorage
	inner     storage.Storage
	cache     string
	id        string
	trees     map[repo.ID]string // tree id -> the name of its only node
	treePacks []repo.ID          // in the order they were written
	data      repo.ID
	snaps     []repo.ID
}

func newCacheEnv(t *testing.T) *cacheEnv {
	t.Helper()
	ctx := context.Background()
	inner, err := local.Create(filepath.Join(t.TempDir(), "repo"))
	if err != nil {
		t.Fatal(err)
	}
	e := &cacheEnv{st: &countingStorage{Storage: inner}, inner: inner, cache: filepath.Join(t.TempDir(), "cache"), trees: map[repo.ID]string{}}
	e.st.reset()
	r := repotest.NewOn(t, e.st)
	e.id = r.ID()
	e.data, _, err = r.SaveBlob(ctx, repo.DataBlob, randomBlob(7, 20000))
	if err != nil {
		t.Fatal(err)
	}
	for pack := 0; pack < 2; pack++ {
		var last repo.ID
		for i := 0; i < 20; i++ {
			name := fmt.Sprintf("file-%d-%d", pack, i)
			id, _, err := r.SaveTree(ctx, &repo.Tree{Nodes: []*repo.Node{{Name: repo.RawString(name), Type: repo.NodeFile, Mode: 0o644, Size: 20000, Content: []repo.ID{e.data}}}})
			if err != nil {
				t.Fatal(err)
			}
			e.trees[id] = name
			last = id
		}
		if err := r.Flush(ctx); err != nil { // finishes the tree pack
			t.Fatal(err)
		}
		l, _ := r.LookupBlob(repo.TreeBlob, last)
		e.treePacks = append(e.treePacks, l.Pack)
		for j := 0; j < 1+pack; j++ {
			sid, err := r.SaveSnapshot(ctx, &repo.Snapshot{Time: time.Unix(int64(1000*pack+j), 0), Kind: repo.KindFile, Host: "h", Paths: []string{fmt.Sprintf("/p%d", j)}, Tree: last})
			if err != nil {
				t.Fatal(err)
			}
			e.snaps = append(e.snaps, sid)
		}
	}
	if e.treePacks[0] == e.treePacks[1] {
		t.Fatal("the trees are in one pack; the test needs two")
	}
	return e
}

// open opens the repository with the cache; warnings are collected in the result.
func (e *cacheEnv) open(t *testing.T) (*repo.Repository, *warnings) {
	t.Helper()
	w := &warnings{}
	r, err := repo.OpenWith(context.Background(), e.st, repotest.Password, repo.OpenOptions{CacheDir: e.cache, Warn: w.add})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Close() })
	return r, w
}

type warnings struct {
	mu   sync.Mutex
	list []error
}

func (w *warnings) add(err error) {
	w.mu.Lock()
	w.list = append(w.list, err)
	w.mu.Unlock()
}

func (w *warnings) get() []error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.list)
}

// cached returns the names of the cached files of type t, sorted.
func (e *cacheEnv) cached(t *testing.T, ft storage.FileType) []string {
	t.Helper()
	var names []string
	err := filepath.WalkDir(filepath.Join(e.cache, e.id, string(ft)), func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			names = append(names, d.Name())
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(names)
	return names
}

// stored returns the names of the stored files of type t, sorted.
func (e *cacheEnv) stored(t *testing.T, ft storage.FileType) []string {
	t.Helper()
	var names []string
	if err := e.inner.List(context.Background(), ft, func(fi storage.FileInfo) error {
		names = append(names, fi.Name)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	sort.Strings(names)
	return names
}

func (e *cacheEnv) cachePath(ft storage.FileType, name string) string {
	if ft == storage.PackFile {
		return filepath.Join(e.cache, e.id, string(ft), name[:2], name)
	}
	return filepath.Join(e.cache, e.id, string(ft), name)
}

// checkSnapshots lists the snapshots and checks them against the stored ones.
func (e *cacheEnv) checkSnapshots(t *testing.T, r *repo.Repository) {
	t.Helper()
	list, err := snapshot.List(context.Background(), r, snapshot.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, s := range list {
		if s.Host != "h" || s.Kind != repo.KindFile {
			t.Fatalf("snapshot %s: %+v", s.ID.Short(), s.Snapshot)
		}
		got = append(got, s.ID.String())
	}
	sort.Strings(got)
	if want := e.stored(t, storage.SnapshotFile); !slices.Equal(got, want) {
		t.Fatalf("snapshots %v, want %v", got, want)
	}
}

// checkTrees loads every tree, from goroutines at once if parallel, and checks it.
func (e *cacheEnv) checkTrees(t *testing.T, r *repo.Repository, parallel bool) {
	t.Helper()
	var wg sync.WaitGroup
	for id, name := range e.trees {
		check := func() {
			tr, err := r.LoadTree(context.Background(), id)
			if err != nil {
				t.Error(err)
				return
			}
			if len(tr.Nodes) != 1 || string(tr.Nodes[0].Name) != name {
				t.Errorf("tree %s holds %v, want %s", id.Short(), tr.Nodes, name)
			}
		}
		if parallel {
			wg.Go(check)
		} else {
			check()
		}
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
}

func (e *cacheEnv) wantLoads(t *testing.T, ft storage.FileType, n int, when string) {
	t.Helper()
	if got := e.st.count(ft); got != n {
		t.Fatalf("%s: %d loads of %s files, want %d", when, got, ft, n)
	}
}

func names(ids []repo.ID) []string {
	var out []string
	for _, id := range ids {
		out = append(out, id.String())
	}
	sort.Strings(out)
	return out
}

func TestCacheServesIndexSnapshotsAndTrees(t *testing.T) {
	e := newCacheEnv(t)
	ctx := context.Background()

	e.st.reset()
	r1, w := e.open(t)
	if e.st.count(storage.IndexFile) == 0 {
		t.Fatal("the first open loaded no index file; the counting is broken")
	}
	e.checkSnapshots(t, r1)
	e.wantLoads(t, storage.SnapshotFile, len(e.snaps), "first listing of snapshots")
	e.st.reset()
	e.checkSnapshots(t, r1)
	e.wantLoads(t, storage.SnapshotFile, 0, "second listing of snapshots")

	// Tree blobs: each tree pack is fetched whole, once, however many load at once.
	e.checkTrees(t, r1, true)
	e.wantLoads(t, storage.PackFile, len(e.treePacks), "first loads of the trees")
	if n := e.st.wholeCount(storage.PackFile); n != len(e.treePacks) {
		t.Fatalf("%d whole loads of packs, want %d", n, len(e.treePacks))
	}
	e.st.reset()
	e.checkTrees(t, r1, true)
	e.wantLoads(t, storage.PackFile, 0, "second loads of the trees")

	// Data blobs never come from the cache, nor go into it.
	for i := 0; i < 2; i++ {
		if b, err := r1.LoadBlob(ctx, repo.DataBlob, e.data); err != nil || !bytes.Equal(b, randomBlob(7, 20000)) {
			t.Fatalf("data blob: %v", err)
		}
	}
	e.wantLoads(t, storage.PackFile, 2, "loads of a data blob")
	if got, want := e.cached(t, storage.PackFile), names(e.treePacks); !slices.Equal(got, want) {
		t.Fatalf("cached packs %v, want the tree packs %v", got, want)
	}

	// A new process: nothing of the index, the snapshots or the trees is loaded again.
	e.st.reset()
	r2, w2 := e.open(t)
	e.wantLoads(t, storage.IndexFile, 0, "second open")
	e.checkSnapshots(t, r2)
	e.checkTrees(t, r2, false)
	e.wantLoads(t, storage.SnapshotFile, 0, "listing snapshots in a second process")
	e.wantLoads(t, storage.PackFile, 0, "loading trees in a second process")

	for _, ft := range []storage.FileType{storage.IndexFile, storage.SnapshotFile, storage.PackFile} {
		if got, want := e.cached(t, ft), e.stored(t, ft); ft != storage.PackFile && !slices.Equal(got, want) {
			t.Fatalf("cached %s %v, want %v", ft, got, want)
		}
		for _, name := range e.cached(t, ft) {
			want, err := e.inner.Load(ctx, storage.Handle{Type: ft, Name: name}, 0, 0)
			if err != nil {
				t.Fatal(err)
			}
			if got, err := os.ReadFile(e.cachePath(ft, name)); err != nil || !bytes.Equal(got, want) {
				t.Fatalf("cached %s/%s differs from the stored file (%v)", ft, name, err)
			}
		}
	}
	for _, d := range []string{e.id, "index", "snapshots", "data", filepath.Join("data", e.treePacks[0].String()[:2])} {
		p := filepath.Join(e.cache, d)
		if d != e.id {
			p = filepath.Join(e.cache, e.id, d)
		}
		if fi, err := os.Stat(p); err != nil || fi.Mode().Perm() != 0o700 {
			t.Fatalf("cache folder %s: %v %v, want mode 0700", p, fi.Mode(), err)
		}
	}
	if b, err := os.ReadFile(filepath.Join(e.cache, "CACHEDIR.TAG")); err != nil || !strings.HasPrefix(string(b), "Signature: 8a477f597d28d172789f06886806bc55") {
		t.Fatalf("CACHEDIR.TAG: %q %v", b, err)
	}
	if len(w.get())+len(w2.get()) != 0 {
		t.Fatalf("warnings: %v %v", w.get(), w2.get())
	}
}

func TestCacheUnchangedBackupLoadsNoPacks(t *testing.T) {
	ctx := context.Background()
	src := t.TempDir()
	for i := 0; i < 30; i++ {
		dir := filepath.Join(src, fmt.Sprintf("d%d", i%5), fmt.Sprintf("e%d", i%3))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("f%d", i)), randomBlob(int64(i), 1000+i*300), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	inner, err := local.Create(filepath.Join(t.TempDir(), "repo"))
	if err != nil {
		t.Fatal(err)
	}
	st := &countingStorage{Storage: inner}
	st.reset()
	repotest.NewOn(t, st)
	cacheDir := filepath.Join(t.TempDir(), "cache")

	// backup runs a backup as cli/backup.go does: the parent, then the archiver.
	var progress *fileCounter
	backup := func(r *repo.Repository) *archiver.Result {
		t.Helper()
		progress = &fileCounter{}
		opts := archiver.Options{Host: "h", Progress: progress}
		parent, ok, err := snapshot.FindParent(ctx, r, repo.KindFile, "h", []string{src})
		if err != nil {
			t.Fatal(err)
		}
		if ok {
			opts.Parent, opts.ParentID = parent.Snapshot, &parent.ID
		}
		res, err := archiver.Backup(ctx, r, []string{src}, opts)
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	open := func(cache string) *repo.Repository {
		t.Helper()
		r, err := repo.OpenWith(ctx, st, repotest.Password, repo.OpenOptions{CacheDir: cache, Warn: func(err error) { t.Errorf("warning: %v", err) }})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = r.Close() })
		return r
	}

	first := backup(open(cacheDir))
	st.reset()
	second := backup(open(cacheDir))
	for _, ft := range []storage.FileType{storage.PackFile, storage.IndexFile, storage.SnapshotFile} {
		if n := st.count(ft); n != 0 {
			t.Errorf("unchanged backup with the cache filled by the first one: %d loads of %s files, want 0", n, ft)
		}
	}
	if second.Snapshot.Parent == nil || *second.Snapshot.Parent != first.ID {
		t.Fatalf("second backup: parent %v, want %s", second.Snapshot.Parent, first.ID.Short())
	}
	if progress.changed != 0 || progress.unchanged != 30 {
		t.Fatalf("second backup: %d files read, %d unchanged, want 0 and 30", progress.changed, progress.unchanged)
	}

	// Without the cache the same backup reads the parent's trees from the packs:
	// what the counts above would show if the cache did not work.
	st.reset()
	backup(open(""))
	if st.count(storage.PackFile) == 0 {
		t.Fatal("an unchanged backup without the cache loaded no pack; the test cannot see the cache work")
	}
}

// fileCounter is an archiver.Progress that counts unchanged and read files.
type fileCounter struct {
	mu                 sync.Mutex
	unchanged, changed int
}

func (p *fileCounter) FileDone(_ string, _ int64, s archiver.FileStatus) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if s == archiver.FileUnchanged {
		p.unchanged++
	} else {
		p.changed++
	}
}

func (p *fileCounter) Scanned(int64, int64, bool) {}
func (p *fileCounter) BytesRead(int64)            {}
func (p *fileCounter) Error(string, error)        {}
func (p *fileCounter) Warning(string, string)     {}

// flipByte changes one byte of a file.
func flipByte(t *testing.T, path string, at int64) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b[at] ^= 0x20
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestCacheDamagedFilesAreLoadedAgain(t *testing.T) {
	e := newCacheEnv(t)
	ctx := context.Background()
	r1, _ := e.open(t)
	e.checkSnapshots(t, r1)
	e.checkTrees(t, r1, false)

	// Damage one cached index file, one snapshot file, another cut to nothing (as a
	// crash might leave it), and one blob of a cached tree pack.
	idx := e.cached(t, storage.IndexFile)[0]
	flipByte(t, e.cachePath(storage.IndexFile, idx), 40)
	flipByte(t, e.cachePath(storage.SnapshotFile, e.snaps[0].String()), 10)
	if err := os.Truncate(e.cachePath(storage.SnapshotFile, e.snaps[1].String()), 0); err != nil {
		t.Fatal(err)
	}
	var damagedTree repo.ID
	var damagedLoc repo.BlobLocation
	for id := range e.trees {
		if l, _ := r1.LookupBlob(repo.TreeBlob, id); l.Pack == e.treePacks[1] {
			damagedTree, damagedLoc = id, l
			break
		}
	}
	flipByte(t, e.cachePath(storage.PackFile, e.treePacks[1].String()), int64(damagedLoc.Offset)+int64(damagedLoc.Length)/2)

	e.st.reset()
	r2, w := e.open(t)
	e.wantLoads(t, storage.IndexFile, 1, "open with one damaged cached index file")
	e.checkSnapshots(t, r2)
	e.wantLoads(t, storage.SnapshotFile, 2, "listing with two damaged cached snapshot files")
	tr, err := r2.LoadTree(ctx, damagedTree)
	if err != nil || string(tr.Nodes[0].Name) != e.trees[damagedTree] {
		t.Fatalf("tree from a damaged cached pack: %v %v", tr, err)
	}
	e.checkTrees(t, r2, false)
	e.wantLoads(t, storage.PackFile, 1, "loading trees with one damaged cached pack")
	if len(w.get()) != 0 {
		t.Fatalf("warnings: %v", w.get())
	}

	// The damaged copies were replaced by the stored files.
	for _, f := range []struct {
		ft   storage.FileType
		name string
	}{{storage.IndexFile, idx}, {storage.SnapshotFile, e.snaps[0].String()}, {storage.SnapshotFile, e.snaps[1].String()}, {storage.PackFile, e.treePacks[1].String()}} {
		want, _ := e.inner.Load(ctx, storage.Handle{Type: f.ft, Name: f.name}, 0, 0)
		if got, err := os.ReadFile(e.cachePath(f.ft, f.name)); err != nil || !bytes.Equal(got, want) {
			t.Fatalf("%s/%s: cached copy not replaced by the stored file (%v)", f.ft, f.name[:8], err)
		}
	}
	e.st.reset()
	r3, _ := e.open(t)
	e.checkSnapshots(t, r3)
	e.checkTrees(t, r3, false)
	for _, ft := range []storage.FileType{storage.IndexFile, storage.SnapshotFile, storage.PackFile} {
		e.wantLoads(t, ft, 0, "after the repair of the cache")
	}
}

func TestCacheDamagedStoredPackIsNotCached(t *testing.T) {
	e := newCacheEnv(t)
	ctx := context.Background()
	r, w := e.open(t)
	var inPack []repo.ID
	for id := range e.trees {
		if l, _ := r.LookupBlob(repo.TreeBlob, id); l.Pack == e.treePacks[0] {
			inPack = append(inPack, id)
		}
	}
	// Damage one tree blob of the stored pack.
	damaged, _ := r.LookupBlob(repo.TreeBlob, inPack[0])
	h := storage.Handle{Type: storage.PackFile, Name: e.treePacks[0].String()}
	b, err := e.inner.Load(ctx, h, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	b[damaged.Offset+damaged.Length/2] ^= 1
	if err := e.inner.Remove(ctx, h); err != nil {
		t.Fatal(err)
	}
	if err := e.inner.Save(ctx, h, b); err != nil {
		t.Fatal(err)
	}

	e.st.reset()
	for i, id := range inPack[1:] {
		tr, err := r.LoadTree(ctx, id)
		if err != nil || string(tr.Nodes[0].Name) != e.trees[id] {
			t.Fatalf("intact tree %d of a damaged pack: %v %v", i, tr, err)
		}
	}
	// One whole load that found the pack damaged, then each blob alone.
	e.wantLoads(t, storage.PackFile, len(inPack)-1, "loading the intact trees of a damaged pack")
	if n := e.st.wholeCount(storage.PackFile); n != 1 {
		t.Fatalf("the damaged pack was loaded whole %d times, want once", n)
	}
	if _, err := r.LoadTree(ctx, inPack[0]); err == nil {
		t.Fatal("a damaged tree loaded without error")
	}
	if got := e.cached(t, storage.PackFile); len(got) != 0 {
		t.Fatalf("cached packs %v, want none: the only one read is damaged", got)
	}
	if len(w.get()) != 0 {
		t.Fatalf("warnings: %v", w.get())
	}
}

func TestCacheDropsFilesGoneFromStorage(t *testing.T) {
	e := newCacheEnv(t)
	ctx := context.Background()
	r1, _ := e.open(t)
	e.checkSnapshots(t, r1)
	e.checkTrees(t, r1, false)
	if got, want := e.cached(t, storage.PackFile), names(e.treePacks); !slices.Equal(got, want) {
		t.Fatalf("cached packs %v, want %v", got, want)
	}

	// Another computer forgets a snapshot and prunes: its index no longer names the
	// second tree pack, and it deletes the first.
	other, err := repo.Open(ctx, e.inner, repotest.Password)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if err := other.RemoveSnapshot(ctx, e.snaps[0]); err != nil {
		t.Fatal(err)
	}
	if err := other.RewriteIndex(ctx, func(p repo.ID) bool { return p != e.treePacks[1] }); err != nil {
		t.Fatal(err)
	}
	if err := e.inner.Remove(ctx, storage.Handle{Type: storage.PackFile, Name: e.treePacks[0].String()}); err != nil {
		t.Fatal(err)
	}

	// Listing a type drops the cached files the storage no longer has.
	if _, err := r1.SnapshotIDs(ctx); err != nil {
		t.Fatal(err)
	}
	if got, want := e.cached(t, storage.SnapshotFile), e.stored(t, storage.SnapshotFile); !slices.Equal(got, want) || len(got) != len(e.snaps)-1 {
		t.Fatalf("cached snapshots %v, want %v", got, want)
	}
	if _, err := r1.ListFiles(ctx, storage.PackFile); err != nil {
		t.Fatal(err)
	}
	if got, want := e.cached(t, storage.PackFile), names(e.treePacks[1:]); !slices.Equal(got, want) {
		t.Fatalf("cached packs %v, want %v", got, want)
	}
	if err := r1.LoadIndex(ctx); err != nil {
		t.Fatal(err)
	}
	if got, want := e.cached(t, storage.IndexFile), e.stored(t, storage.IndexFile); !slices.Equal(got, want) || len(got) != 1 {
		t.Fatalf("cached index files %v, want %v", got, want)
	}

	// Opening drops the cached packs the index no longer names.
	e.open(t)
	if got := e.cached(t, storage.PackFile); len(got) != 0 {
		t.Fatalf("cached packs %v after opening an index without them", got)
	}
}

// readOnly makes dir read-only, by a read-only bind mount of it onto itself (tests
// run as root, to whom a folder's mode bits deny nothing).
func readOnly(t *testing.T, dir string) {
	t.Helper()
	run := func(args ...string) {
		if out, err := exec.Command("mount", args...).CombinedOutput(); err != nil {
			t.Fatalf("mount %v: %v: %s", args, err, out)
		}
	}
	run("--bind", dir, dir)
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
		}
	})
	run("-o", "remount,ro,bind", dir)
	if err := os.WriteFile(filepath.Join(dir, "probe"), nil, 0o600); err == nil {
		t.Fatalf("%s is still writable", dir)
	}
}

func TestCacheReadOnlyFolderOnlyWarns(t *testing.T) {
	e := newCacheEnv(t)
	ctx := context.Background()
	r1, w1 := e.open(t)
	e.checkSnapshots(t, r1)
	readOnly(t, e.cache)

	// The cache becomes read-only while in use: saving warns once and works.
	for i := 0; i < 3; i++ {
		id, _, err := r1.SaveTree(ctx, &repo.Tree{Nodes: []*repo.Node{{Name: repo.RawString(fmt.Sprintf("new-%d", i)), Type: repo.NodeFile, Mode: 0o644}}})
		if err != nil {
			t.Fatal(err)
		}
		e.trees[id] = fmt.Sprintf("new-%d", i)
		if _, err := r1.SaveSnapshot(ctx, &repo.Snapshot{Time: time.Now(), Kind: repo.KindFile, Host: "h", Paths: []string{"/new"}, Tree: id}); err != nil {
			t.Fatal(err)
		}
	}
	e.checkSnapshots(t, r1)
	e.checkTrees(t, r1, true)
	if got := w1.get(); len(got) != 1 || !strings.Contains(got[0].Error(), e.cache) {
		t.Fatalf("warnings %v, want one naming the cache folder", got)
	}

	// Opening with a read-only cache warns once and reads the storage.
	e.st.reset()
	r2, w2 := e.open(t)
	if len(w2.get()) != 1 {
		t.Fatalf("warnings %v, want one", w2.get())
	}
	e.checkSnapshots(t, r2)
	e.checkTrees(t, r2, true)
	if len(w2.get()) != 1 {
		t.Fatalf("warnings %v, want one", w2.get())
	}
	if e.st.count(storage.IndexFile) == 0 || e.st.count(storage.SnapshotFile) == 0 {
		t.Fatal("nothing was loaded from the storage with the cache off")
	}
}

func TestDefaultCacheDir(t *testing.T) {
	d := t.TempDir()
	t.Setenv("XDG_CACHE_HOME", d)
	t.Setenv("LocalAppData", d)
	t.Setenv("HOME", d)
	got, err := repo.DefaultCacheDir()
	if err != nil {
		t.Fatal(err)
	}
	if want, _ := os.UserCacheDir(); got != filepath.Join(want, "cairn") || !strings.HasPrefix(got, d) {
		t.Fatalf("DefaultCacheDir() = %s, want %s", got, filepath.Join(d, "cairn"))
	}
}

// TestCacheRemovesCachesUnusedFor30Days checks that opening a cache removes the
// caches of other repositories that no one opened for 30 days, and nothing else:
// not a recent one, not a folder that is not a repository's cache, and not the
// cache being opened, however old its folder was.
func TestCacheRemovesCachesUnusedFor30Days(t *testing.T) {
	e := newCacheEnv(t)
	r0, _ := e.open(t) // makes the cache folder and fills it
	e.checkSnapshots(t, r0)
	old := time.Now().Add(-31 * 24 * time.Hour)
	mk := func(name string, withIndex bool, mtime time.Time) string {
		d := filepath.Join(e.cache, name)
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
		if withIndex {
			if err := os.MkdirAll(filepath.Join(d, "index"), 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(d, "index", "x"), []byte("cached"), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.Chtimes(d, mtime, mtime); err != nil {
			t.Fatal(err)
		}
		return d
	}
	stale := mk(strings.Repeat("a", 64), true, old)
	recent := mk(strings.Repeat("b", 64), true, time.Now().Add(-29*24*time.Hour))
	notCache := mk(strings.Repeat("c", 64), false, old)
	notID := mk("photos", true, old)
	own := filepath.Join(e.cache, e.id)
	if err := os.Chtimes(own, old, old); err != nil {
		t.Fatal(err)
	}

	r, _ := e.open(t)
	for d, want := range map[string]bool{stale: false, recent: true, notCache: true, notID: true, own: true} {
		if _, err := os.Stat(d); (err == nil) != want {
			t.Errorf("%s: exists %v, want %v", filepath.Base(d), err == nil, want)
		}
	}
	if fi, err := os.Stat(own); err != nil || time.Since(fi.ModTime()) > time.Hour {
		t.Errorf("the cache in use is not marked as used: %v", err)
	}
	e.checkSnapshots(t, r)
}
