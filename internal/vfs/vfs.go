// Package vfs is the one read-only tree over snapshots that ls, cat, diff, restore,
// mount and the web all read: a file snapshot's folders and files, and (through the
// filesystem readers) the filesystems inside image snapshots. Every name it hands out
// is a valid single path element.
package vfs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path"
	"sort"
	"strings"
	"sync"

	"cairn/internal/repo"
)

// Entry is one file, folder, link or special file in a snapshot's tree; Node holds
// its metadata, which callers must not change.
type Entry struct {
	Node *repo.Node
	src  source
	ref  any // the source's own handle of the entry
}

// source produces the children and content of the entries of one kind of snapshot.
type source interface {
	children(ctx context.Context, e *Entry) ([]*Entry, error)
	open(ctx context.Context, e *Entry) (*File, error)
}

// ErrNotDir is returned when a path goes through something that is not a folder.
var ErrNotDir = errors.New("not a directory")

// ErrNotFound is returned when a path names nothing in the snapshot.
var ErrNotFound = errors.New("no such file or directory")

// Root returns the root folder of a snapshot.
func Root(r *repo.Repository, s *repo.Snapshot) (*Entry, error) {
	if s.Kind == repo.KindImage && s.Image != nil {
		return imageRoot(r, s)
	}
	if s.Kind != repo.KindFile {
		return nil, fmt.Errorf("browsing %s snapshots is not supported", s.Kind)
	}
	tree := s.Tree
	return &Entry{Node: &repo.Node{Name: "/", Type: repo.NodeDir, Mode: 0755, Subtree: &tree, MTime: s.Time.UnixNano()}, src: &treeSource{r: r}}, nil
}

// Name returns the entry's name.
func (e *Entry) Name() string { return string(e.Node.Name) }

// IsDir reports whether the entry is a folder.
func (e *Entry) IsDir() bool { return e.Node.Type == repo.NodeDir }

// Children returns a folder's entries sorted by name. When some entries are
// damaged (a folder inside an image of a damaged filesystem) it returns the
// others together with an error naming the damaged ones, as os.File.ReadDir
// returns what it read with its error; when the folder cannot be read at all,
// no entries and the error.
func (e *Entry) Children(ctx context.Context) ([]*Entry, error) {
	if !e.IsDir() {
		return nil, fmt.Errorf("%s: %w", e.Name(), ErrNotDir)
	}
	return e.src.children(ctx, e)
}

// Open returns a reader of a regular file's content.
func (e *Entry) Open(ctx context.Context) (*File, error) {
	if e.Node.Type != repo.NodeFile {
		return nil, fmt.Errorf("%s: not a regular file", e.Name())
	}
	return e.src.open(ctx, e)
}

// Lookup returns the entry at p, a slash-separated path below e ("/" or "" is e).
func (e *Entry) Lookup(ctx context.Context, p string) (*Entry, error) {
	cur := e
	walked := "/"
	for _, part := range strings.Split(path.Clean("/"+p), "/") {
		if part == "" {
			continue
		}
		if !cur.IsDir() {
			return nil, fmt.Errorf("%s: %w", walked, ErrNotDir)
		}
		kids, err := cur.Children(ctx)
		var next *Entry
		for _, k := range kids {
			if k.Name() == part {
				next = k
				break
			}
		}
		if next == nil {
			if err != nil {
				return nil, err // the entry may be one of the damaged ones
			}
			return nil, fmt.Errorf("%s: %w", path.Join(walked, part), ErrNotFound)
		}
		cur = next
		walked = path.Join(walked, part)
	}
	return cur, nil
}

// SkipDir, returned by a Walk function for a folder, skips its content.
var SkipDir = errors.New("skip this directory") //nolint:staticcheck // named like filepath.SkipDir, which it mirrors

// Walk calls fn for e and everything below it, depth first in name order, with each
// entry's path relative to e joined to base. An error from fn stops the walk and is
// returned. A folder that cannot be listed, or only in part (damaged entries), does
// not: Walk goes on with what it could list and returns those errors, joined, at
// the end.
func Walk(ctx context.Context, e *Entry, base string, fn func(p string, e *Entry) error) error {
	var listErrs []error
	err := WalkListing(ctx, e, base, fn, func(p string, _ int, err error) error {
		listErrs = append(listErrs, fmt.Errorf("%s: %w", p, err))
		return nil
	})
	if err != nil {
		return err
	}
	return errors.Join(listErrs...)
}

// WalkListing is Walk that tells listErr of each folder that cannot be listed, or
// only in part, with the number of entries it could list (which are walked) and
// the error; an error listErr returns stops the walk, as one from fn does.
func WalkListing(ctx context.Context, e *Entry, base string, fn func(p string, e *Entry) error, listErr func(p string, listed int, err error) error) error {
	if err := fn(base, e); err != nil {
		if errors.Is(err, SkipDir) {
			return nil
		}
		return err
	}
	if !e.IsDir() {
		return nil
	}
	kids, err := e.Children(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err := listErr(base, len(kids), err); err != nil {
			return err
		}
	}
	for _, k := range kids {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := WalkListing(ctx, k, path.Join(base, k.Name()), fn, listErr); err != nil {
			return err
		}
	}
	return nil
}

// File reads a regular file's content. ReadAt is safe for concurrent use: it keeps
// the last few pieces it loaded and, as a read reaches a piece, starts loading the
// next ones, so that sequential reads (through a mount, say) do not wait for each.
// Read is for one goroutine at a time.
type File struct {
	size   int64
	chunks []chunkRef
	load   func(ctx context.Context, i int) ([]byte, error)
	ctx    context.Context

	mu        sync.Mutex
	slots     map[int]*slot
	order     []int // slots in the order they were started, oldest first
	sequenced int64 // position for Read
}

// slot is a piece being loaded or loaded.
type slot struct {
	done chan struct{}
	data []byte
	err  error
}

// fileCache is how many pieces a File keeps; fileAhead how many it loads ahead.
const (
	fileCache = 8
	fileAhead = 2
)

// piece returns piece i, loading it (and starting the ones after it) if need be.
func (f *File) piece(i int) ([]byte, error) {
	f.mu.Lock()
	if f.slots == nil {
		f.slots = map[int]*slot{}
	}
	s := f.start(i)
	for j := i + 1; j <= i+fileAhead && j < len(f.chunks); j++ {
		f.start(j)
	}
	f.mu.Unlock()
	<-s.done
	if s.err != nil {
		f.mu.Lock()
		if f.slots[i] == s {
			delete(f.slots, i) // try again next time
		}
		f.mu.Unlock()
	}
	return s.data, s.err
}

// start returns the slot of piece i, starting its load if it has none. f.mu is held.
func (f *File) start(i int) *slot {
	if s, ok := f.slots[i]; ok {
		return s
	}
	s := &slot{done: make(chan struct{})}
	f.slots[i] = s
	f.order = append(f.order, i)
	for len(f.order) > fileCache {
		old := f.order[0]
		f.order = f.order[1:]
		if old != i {
			delete(f.slots, old)
		}
	}
	go func() {
		s.data, s.err = f.load(f.ctx, i)
		close(s.done)
	}()
	return s
}

// readerFile returns a File over size bytes of src, read in pieces of 1 MiB.
func readerFile(ctx context.Context, src io.ReaderAt, size int64) *File {
	const piece = 1 << 20
	f := &File{size: size, ctx: ctx}
	for off := int64(0); off < size; off += piece {
		f.chunks = append(f.chunks, chunkRef{offset: off, length: min(piece, size-off)})
	}
	f.load = func(ctx context.Context, i int) ([]byte, error) {
		c := f.chunks[i]
		b := make([]byte, c.length)
		n, err := src.ReadAt(b, c.offset)
		if n == len(b) {
			return b, nil
		}
		if err == nil || errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	return f
}

type chunkRef struct {
	offset int64
	length int64
}

// Size returns the file's length in bytes.
func (f *File) Size() int64 { return f.size }

// ReadAt implements io.ReaderAt.
func (f *File) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, errors.New("negative offset")
	}
	n := 0
	for n < len(p) {
		pos := off + int64(n)
		if pos >= f.size {
			return n, io.EOF
		}
		i := f.chunkAt(pos)
		if i < 0 {
			return n, io.ErrUnexpectedEOF
		}
		data, err := f.piece(i)
		if err != nil {
			return n, err
		}
		c := f.chunks[i]
		n += copy(p[n:], data[pos-c.offset:])
	}
	return n, nil
}

// Read implements io.Reader from the start of the file.
func (f *File) Read(p []byte) (int, error) {
	n, err := f.ReadAt(p, f.sequenced)
	f.sequenced += int64(n)
	if errors.Is(err, io.EOF) && n > 0 {
		err = nil
	}
	return n, err
}

func (f *File) chunkAt(pos int64) int {
	lo, hi := 0, len(f.chunks)
	for lo < hi {
		m := (lo + hi) / 2
		c := f.chunks[m]
		switch {
		case pos < c.offset:
			hi = m
		case pos >= c.offset+c.length:
			lo = m + 1
		default:
			return m
		}
	}
	return -1
}

// Chunks calls fn with the file's content piece by piece, in order, loading up to
// parallel pieces ahead at once.
func (f *File) Chunks(ctx context.Context, parallel int, fn func(off int64, data []byte) error) error {
	if parallel < 1 {
		parallel = 1
	}
	type result struct {
		data []byte
		err  error
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	results := make([]chan result, len(f.chunks))
	for i := range results {
		results[i] = make(chan result, 1)
	}
	sem := make(chan struct{}, parallel)
	go func() {
		for i := range f.chunks {
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				return
			}
			go func() {
				data, err := f.load(ctx, i)
				results[i] <- result{data, err}
			}()
		}
	}()
	for i, c := range f.chunks {
		var r result
		select {
		case r = <-results[i]:
		case <-ctx.Done():
			return ctx.Err()
		}
		<-sem
		if r.err != nil {
			return r.err
		}
		if err := fn(c.offset, r.data); err != nil {
			return err
		}
	}
	return nil
}

func sortEntries(list []*Entry) {
	sort.Slice(list, func(i, j int) bool { return list[i].Node.Name < list[j].Node.Name })
}
