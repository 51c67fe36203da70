package repo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"cairn/internal/format"
	"cairn/internal/storage"
)

// The local cache keeps copies of a remote repository's metadata on this computer:
// index files, snapshot files and whole tree packs, in the repository's own layout
// under <cache dir>/<repository id>/. It is an optimisation and never the truth:
// listings always ask the storage, only contents come from the cache, and every
// cached byte is verified as bytes from the storage are (names are keyed hashes of
// the content, blobs are sealed). A cached file that fails verification is deleted
// and loaded from the storage again. Data packs are never cached.

// cacheTagFile marks the cache folder for backup programs that skip caches
// (https://bford.info/cachedir/).
const (
	cacheTagFile = "CACHEDIR.TAG"
	cacheTag     = "Signature: 8a477f597d28d172789f06886806bc55\n" +
		"# This file is a cache tag created by cairn.\n" +
		"# For information about cache tags see https://bford.info/cachedir/\n"
)

// cacheTempPrefix starts the names of files being written; leftovers of a crash are
// removed when their type is listed and they are older than cacheTempAge.
const (
	cacheTempPrefix = ".tmp-"
	cacheTempAge    = time.Hour
)

// maxPackFetches bounds how many whole packs are held in memory at once while they
// are fetched into the cache.
const maxPackFetches = 4

// DefaultCacheDir returns the folder that holds the caches of remote repositories:
// the user's cache folder (os.UserCacheDir) with "cairn" appended.
func DefaultCacheDir() (string, error) {
	d, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("no cache folder: %w", err)
	}
	return filepath.Join(d, "cairn"), nil
}

// OpenOptions are the settings of OpenWith. The zero value opens as Open does.
type OpenOptions struct {
	// CacheDir, if not empty, turns on the local cache of index files, snapshot
	// files and tree packs in CacheDir/<repository id>/, so that opening, listing
	// snapshots and an unchanged backup need no downloads. Meant for remote
	// repositories; DefaultCacheDir gives the usual folder.
	CacheDir string
	// Warn, if not nil, is called at most once, from any goroutine, when the cache
	// cannot be written; the repository then carries on without it.
	Warn func(error)
}

// cache is the local cache of one repository. A nil *cache is a cache that is off:
// every method does nothing or reports a miss.
type cache struct {
	dir  string // <cache dir>/<repository id>
	warn func(error)
	off  atomic.Bool
	once sync.Once

	mu       sync.Mutex
	fetching map[ID]chan struct{} // packs being fetched; closed when done
	damaged  map[ID]bool          // stored packs that do not match their name
	fetches  chan struct{}        // semaphore of whole packs in memory
}

// openCache returns the cache of repository id in base, ready to be written, or
// nil (after a warning) when it cannot be written, or when base is empty.
func openCache(base, id string, warn func(error)) *cache {
	if base == "" {
		return nil
	}
	c := &cache{
		dir: filepath.Join(base, id), warn: warn,
		fetching: map[ID]chan struct{}{}, damaged: map[ID]bool{},
		fetches: make(chan struct{}, maxPackFetches),
	}
	if err := c.prepare(base); err != nil {
		c.fail(err)
		return nil
	}
	now := time.Now()
	_ = os.Chtimes(c.dir, now, now) // in use: not old
	removeOldCaches(base, now)
	return c
}

// cacheMaxAge is how long the cache of a repository may go unopened before the
// opening of any other repository's cache removes it, as restic's old caches go
// after 30 days; using that repository again only fetches its files again.
const cacheMaxAge = 30 * 24 * time.Hour

// removeOldCaches removes the repository caches in base (folders named by a
// repository id, holding an index folder) that no one has opened for
// cacheMaxAge; it leaves everything else alone and ignores errors: a cache that
// stays is no harm.
func removeOldCaches(base string, now time.Time) {
	entries, err := os.ReadDir(base)
	if err != nil {
		return
	}
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		if _, err := format.ParseID(e.Name()); err != nil {
			continue
		}
		fi, err := e.Info()
		if err != nil || now.Sub(fi.ModTime()) < cacheMaxAge {
			continue
		}
		if _, err := os.Stat(filepath.Join(base, e.Name(), string(storage.IndexFile))); err != nil {
			continue // not a cache this code made
		}
		_ = os.RemoveAll(filepath.Join(base, e.Name()))
	}
}

// prepare creates the folders, tags the cache folder and checks that it can be
// written.
func (c *cache) prepare(base string) error {
	for _, t := range []storage.FileType{storage.IndexFile, storage.SnapshotFile, storage.PackFile} {
		if err := os.MkdirAll(filepath.Join(c.dir, string(t)), 0o700); err != nil {
			return err
		}
	}
	if _, err := os.Stat(filepath.Join(base, cacheTagFile)); err != nil {
		if err := writeAtomic(filepath.Join(base, cacheTagFile), []byte(cacheTag)); err != nil {
			return err
		}
	}
	f, err := os.CreateTemp(c.dir, cacheTempPrefix+"probe-*")
	if err != nil {
		return err
	}
	f.Close()
	return os.Remove(f.Name())
}

// usable reports whether the cache is on.
func (c *cache) usable() bool { return c != nil && !c.off.Load() }

// fail turns the cache off for good and warns, once.
func (c *cache) fail(err error) {
	c.off.Store(true)
	c.once.Do(func() {
		if c.warn != nil {
			c.warn(fmt.Errorf("local cache %s cannot be written, carrying on without it: %w", c.dir, err))
		}
	})
}

// cachedType reports whether files of type t are kept in the cache.
func cachedType(t storage.FileType) bool {
	return t == storage.IndexFile || t == storage.SnapshotFile || t == storage.PackFile
}

// path returns where file t/name is cached: the layout of the local storage.
func (c *cache) path(t storage.FileType, name string) string {
	if t == storage.PackFile {
		return filepath.Join(c.dir, string(t), name[:min(2, len(name))], name)
	}
	return filepath.Join(c.dir, string(t), name)
}

// read returns the cached file t/name, or ok=false.
func (c *cache) read(t storage.FileType, name string) ([]byte, bool) {
	if !c.usable() || !cachedType(t) {
		return nil, false
	}
	b, err := os.ReadFile(c.path(t, name))
	return b, err == nil
}

// readAt returns length bytes at offset of the cached pack, or ok=false. A pack too
// short for the range is damaged and removed.
func (c *cache) readAt(pack ID, offset, length uint32) ([]byte, bool) {
	if !c.usable() {
		return nil, false
	}
	f, err := os.Open(c.path(storage.PackFile, pack.String()))
	if err != nil {
		return nil, false
	}
	defer f.Close()
	b := make([]byte, length)
	if _, err := f.ReadAt(b, int64(offset)); err != nil {
		if errors.Is(err, io.EOF) {
			c.remove(storage.PackFile, pack.String())
		}
		return nil, false
	}
	return b, true
}

// write stores data as the cached file t/name; a failure turns the cache off.
func (c *cache) write(t storage.FileType, name string, data []byte) {
	if !c.usable() || !cachedType(t) {
		return
	}
	p := c.path(t, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		c.fail(err)
		return
	}
	if err := writeAtomic(p, data); err != nil {
		c.fail(err)
	}
}

// writeAtomic writes data to path through a temporary file and a rename, so that
// path is never seen half written. It does not sync: what a crash damages fails
// verification and is loaded again.
func writeAtomic(path string, data []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), cacheTempPrefix+"*")
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		os.Remove(f.Name())
	}
	return err
}

// remove deletes the cached file t/name, if any.
func (c *cache) remove(t storage.FileType, name string) {
	if !c.usable() || !cachedType(t) {
		return
	}
	if err := os.Remove(c.path(t, name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		c.fail(err)
	}
}

// keep deletes every cached file of type t whose name is not in names: the storage
// no longer has it. Names must be a complete listing of t.
func (c *cache) keep(t storage.FileType, names map[string]bool) {
	if !c.usable() || !cachedType(t) {
		return
	}
	dirs := []string{filepath.Join(c.dir, string(t))}
	if t == storage.PackFile {
		subs, _ := os.ReadDir(dirs[0])
		dirs = dirs[:0]
		for _, s := range subs {
			if s.IsDir() {
				dirs = append(dirs, filepath.Join(c.dir, string(t), s.Name()))
			}
		}
	}
	for _, d := range dirs {
		entries, _ := os.ReadDir(d)
		for _, e := range entries {
			if e.IsDir() || names[e.Name()] {
				continue
			}
			if strings.HasPrefix(e.Name(), cacheTempPrefix) {
				// Perhaps being written right now by another process.
				if fi, err := e.Info(); err != nil || time.Since(fi.ModTime()) < cacheTempAge {
					continue
				}
			}
			if err := os.Remove(filepath.Join(d, e.Name())); err != nil && !errors.Is(err, fs.ErrNotExist) {
				c.fail(err)
				return
			}
		}
	}
}

// useCache turns on the cache that opts ask for: r.st becomes a cachedStorage.
// Call it before the repository is used.
func (r *Repository) useCache(opts OpenOptions) {
	r.cache = openCache(opts.CacheDir, r.cfg.ID, opts.Warn)
	if r.cache != nil {
		r.st = &cachedStorage{Storage: r.st, c: r.cache, key: r.key.ContentID}
	}
}

// cachedStorage is a repository's storage seen through its cache. Whole loads of
// index and snapshot files come from the cache when it holds them and their content
// still matches their name (a keyed hash of it); otherwise from the storage, and
// are then kept. Saved index and snapshot files are kept too. A complete listing of
// a cached type drops the cached files the storage no longer lists, and Remove
// drops the cached copy. Everything else goes to the storage alone.
type cachedStorage struct {
	storage.Storage
	c   *cache
	key func([]byte) [32]byte // the repository's ContentID
}

// Connections passes on the storage's own number of connections.
func (s *cachedStorage) Connections() int { return storage.Connections(s.Storage) }

// wholeFileType reports whether files of type t are cached by cachedStorage: those
// loaded whole. Tree packs are cached by LoadBlob.
func wholeFileType(t storage.FileType) bool {
	return t == storage.IndexFile || t == storage.SnapshotFile
}

// matches reports whether data is the content of the file named name.
func (s *cachedStorage) matches(name string, data []byte) bool {
	id, err := ParseID(name)
	return err == nil && ID(s.key(data)) == id
}

// Save implements storage.Storage.
func (s *cachedStorage) Save(ctx context.Context, h storage.Handle, data []byte) error {
	if err := s.Storage.Save(ctx, h, data); err != nil {
		return err
	}
	if wholeFileType(h.Type) && s.matches(h.Name, data) {
		s.c.write(h.Type, h.Name, data)
	}
	return nil
}

// Load implements storage.Storage.
func (s *cachedStorage) Load(ctx context.Context, h storage.Handle, offset, length int64) ([]byte, error) {
	if !wholeFileType(h.Type) || offset != 0 || length != 0 || !s.c.usable() {
		return s.Storage.Load(ctx, h, offset, length)
	}
	if b, ok := s.c.read(h.Type, h.Name); ok {
		if s.matches(h.Name, b) {
			return b, nil
		}
		s.c.remove(h.Type, h.Name) // damaged: load it again
	}
	b, err := s.Storage.Load(ctx, h, offset, length)
	if err == nil && s.matches(h.Name, b) {
		s.c.write(h.Type, h.Name, b)
	}
	return b, err
}

// List implements storage.Storage.
func (s *cachedStorage) List(ctx context.Context, t storage.FileType, fn func(storage.FileInfo) error) error {
	if !cachedType(t) || !s.c.usable() {
		return s.Storage.List(ctx, t, fn)
	}
	var mu sync.Mutex
	names := map[string]bool{}
	err := s.Storage.List(ctx, t, func(fi storage.FileInfo) error {
		mu.Lock()
		names[fi.Name] = true
		mu.Unlock()
		return fn(fi)
	})
	if err == nil {
		s.c.keep(t, names) // the storage's names are the truth
	}
	return err
}

// Remove implements storage.Storage.
func (s *cachedStorage) Remove(ctx context.Context, h storage.Handle) error {
	s.c.remove(h.Type, h.Name)
	return s.Storage.Remove(ctx, h)
}

// cachePack keeps a copy of a pack just saved, if it holds tree blobs.
func (r *Repository) cachePack(t BlobType, id ID, data []byte) {
	if t == TreeBlob {
		r.cache.write(storage.PackFile, id.String(), data)
	}
}

// loadCachedBlob serves a tree blob from its cached pack, fetching the whole pack
// into the cache first when it is not there, once however many callers ask for it.
// ok is false when the cache is off or t is not the tree type; LoadBlob then loads
// the blob alone from the storage.
func (r *Repository) loadCachedBlob(ctx context.Context, t BlobType, id ID, l BlobLocation) (data []byte, ok bool, err error) {
	c := r.cache
	if t != TreeBlob || !c.usable() {
		return nil, false, nil
	}
	if data, ok := r.blobFromCachedPack(t, id, l); ok {
		return data, true, nil
	}
	c.mu.Lock()
	if c.damaged[l.Pack] {
		c.mu.Unlock()
		return nil, false, nil
	}
	wait, busy := c.fetching[l.Pack]
	if busy {
		c.mu.Unlock()
		select {
		case <-wait:
		case <-ctx.Done():
			return nil, true, ctx.Err()
		}
		// Cached by the fetch we waited for, unless that failed.
		data, ok := r.blobFromCachedPack(t, id, l)
		return data, ok, nil
	}
	done := make(chan struct{})
	c.fetching[l.Pack] = done
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		delete(c.fetching, l.Pack)
		c.mu.Unlock()
		close(done)
	}()
	// A fetch that ended between the first look and the lock has cached the pack.
	if data, ok := r.blobFromCachedPack(t, id, l); ok {
		return data, true, nil
	}

	select {
	case c.fetches <- struct{}{}:
	case <-ctx.Done():
		return nil, true, ctx.Err()
	}
	defer func() { <-c.fetches }()
	pack, err := r.st.Load(ctx, storage.Handle{Type: storage.PackFile, Name: l.Pack.String()}, 0, 0)
	if err != nil {
		return nil, true, fmt.Errorf("%v blob %s: %w", t, id.Short(), err)
	}
	if ID(r.key.ContentID(pack)) == l.Pack {
		c.write(storage.PackFile, l.Pack.String(), pack)
	} else {
		// The stored pack is damaged: never cached, its blobs loaded alone from
		// now on; this one may still be intact.
		c.mu.Lock()
		c.damaged[l.Pack] = true
		c.mu.Unlock()
	}
	end := int(l.Offset) + int(l.Length)
	if end > len(pack) {
		return nil, true, fmt.Errorf("%v blob %s: beyond the end of pack %s", t, id.Short(), l.Pack.Short())
	}
	data, err = r.openBlob(t, id, pack[l.Offset:end], int(l.RawLength))
	return data, true, err
}

// blobFromCachedPack returns a blob read from its cached pack and verified, or
// ok=false. A cached pack whose blob fails verification is deleted.
func (r *Repository) blobFromCachedPack(t BlobType, id ID, l BlobLocation) ([]byte, bool) {
	sealed, ok := r.cache.readAt(l.Pack, l.Offset, l.Length)
	if !ok {
		return nil, false
	}
	data, err := r.openBlob(t, id, sealed, int(l.RawLength))
	if err != nil {
		r.cache.remove(storage.PackFile, l.Pack.String())
		return nil, false
	}
	return data, true
}

// dropUnindexedPacks deletes the cached packs that the index no longer names:
// pruned, perhaps by another computer. Call it only with a fully loaded index.
func (r *Repository) dropUnindexedPacks() {
	if !r.cache.usable() {
		return
	}
	names := map[string]bool{}
	for _, p := range r.IndexedPacks() {
		names[p.String()] = true
	}
	r.cache.keep(storage.PackFile, names)
}
