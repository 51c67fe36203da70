// Package archiver turns files and folders into trees of a snapshot: it walks the
// sources, reads and chunks changed files on all cores, reuses the content of
// unchanged files from the parent snapshot, and saves trees bottom up.
package archiver

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"time"

	"cairn/internal/chunker"
	"cairn/internal/localfs"
	"cairn/internal/repo"
)

// FileStatus says how a file compares with the parent snapshot.
type FileStatus int

// File statuses.
const (
	FileNew FileStatus = iota
	FileChanged
	FileUnchanged
)

// Progress receives events of a running backup; its methods are called from many
// goroutines at once.
type Progress interface {
	// Scanned reports the total the scanner has found so far, and whether it is done.
	Scanned(files, bytes int64, done bool)
	// FileDone reports a finished file, with how it compares to the parent.
	FileDone(path string, size int64, status FileStatus)
	// BytesRead reports file content read (or taken from the parent unread).
	BytesRead(n int64)
	// Error reports a source that could not be read; the backup goes on without it.
	Error(path string, err error)
	// Warning reports something the backup noted, such as a file that changed while read.
	Warning(path string, msg string)
}

// Options control a backup.
type Options struct {
	Host, User string
	Tags       []string
	// Excludes are patterns: one without '/' matches any file or folder name, one
	// with '/' matches a whole path; shell globs (filepath.Match).
	Excludes []string
	// ExcludePaths are absolute paths left out, such as the repository itself.
	ExcludePaths []string
	// OneFileSystem keeps the walk on the filesystem of each source.
	OneFileSystem bool
	// Parent is the snapshot whose unchanged files are not read again; nil reads all.
	Parent *repo.Snapshot
	// ParentID is the id of Parent, recorded in the new snapshot.
	ParentID *repo.ID
	// Workers is how many files are read at once; 0 means 2 per core.
	Workers  int
	Progress Progress
	// Now gives the snapshot's time; nil means time.Now.
	Now func() time.Time
}

// PathError is a source that could not be read.
type PathError struct {
	Path string
	Err  error
}

func (e PathError) Error() string { return e.Path + ": " + e.Err.Error() }

// Result is the outcome of a backup.
type Result struct {
	ID       repo.ID
	Snapshot *repo.Snapshot
	// Errors lists sources that could not be read; the snapshot was saved without them.
	Errors []PathError
}

// ErrSourceMissing is returned when a source path does not exist.
var ErrSourceMissing = errors.New("source does not exist")

type archiver struct {
	r         *repo.Repository
	opts      Options
	progress  Progress
	sizes     chunker.Sizes
	files     chan fileJob
	blobs     chan blobJob
	large     chan struct{} // semaphore of large files being read
	finishing chan struct{} // semaphore of files read whose ids the savers have yet to give
	chunks    *chunkRing    // memory of chunks between readers and savers
	workers   sync.WaitGroup

	mu     sync.Mutex
	errors []PathError
	stats  repo.Summary

	zeroMu  sync.Mutex
	zeroIDs map[int]repo.ID
}

// Backup stores the sources as a new file snapshot and returns it. Sources that
// cannot be read below the given paths are listed in Result.Errors; a given path that
// does not exist fails the backup before anything is written.
func Backup(ctx context.Context, r *repo.Repository, paths []string, opts Options) (*Result, error) {
	if len(paths) == 0 {
		return nil, errors.New("no paths to back up")
	}
	var abs []string
	for _, p := range paths {
		a, err := filepath.Abs(p)
		if err != nil {
			return nil, err
		}
		if _, err := os.Lstat(a); err != nil {
			if os.IsNotExist(err) {
				return nil, fmt.Errorf("%s: %w", p, ErrSourceMissing)
			}
			return nil, err
		}
		abs = append(abs, a)
	}
	abs = dedupPaths(abs)
	if opts.Progress == nil {
		opts.Progress = nopProgress{}
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Workers <= 0 {
		opts.Workers = 2 * runtime.GOMAXPROCS(0)
	}
	minSize, avg, maxSize := r.ChunkSizes()
	a := &archiver{
		r: r, opts: opts, progress: opts.Progress,
		sizes:     chunker.Sizes{Min: minSize, Avg: avg, Max: maxSize},
		files:     make(chan fileJob),
		blobs:     make(chan blobJob, runtime.GOMAXPROCS(0)),
		large:     make(chan struct{}, largeFiles),
		finishing: make(chan struct{}, 64),
		// Four average chunks a saver (one to work on, more queued), and room
		// for a chunk of the largest size with others in flight.
		chunks:  newChunkRing(max(4*avg*runtime.GOMAXPROCS(0), maxSize+2*avg)),
		zeroIDs: map[int]repo.ID{},
	}
	start := opts.Now()
	a.stats.Start = start

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go a.scan(ctx, abs)
	a.startWorkers(ctx)

	var prevRoot *repo.Node
	if opts.Parent != nil {
		t := opts.Parent.Tree
		prevRoot = &repo.Node{Type: repo.NodeDir, Subtree: &t}
	}
	rootFuture := a.saveVirtualDir(ctx, buildVirtualTree(abs), prevRoot)
	rootNode, err := rootFuture.wait()
	close(a.files)
	a.workers.Wait()
	a.chunks = nil // the savers are done: let what follows have its memory
	if err == nil {
		err = ctx.Err()
	}
	if err != nil {
		// Keep what was stored for the next run; the context may be cancelled already.
		_ = r.Abort(context.WithoutCancel(ctx))
		return nil, err
	}

	a.stats.End = opts.Now()
	a.stats.Errors = uint64(len(a.errors))
	summary := a.stats
	snap := &repo.Snapshot{
		Time: start, Kind: repo.KindFile, Host: opts.Host, User: opts.User,
		Paths: abs, Tags: opts.Tags, Parent: opts.ParentID, Tree: *rootNode.Subtree,
		Summary: &summary,
	}
	id, err := r.SaveSnapshot(ctx, snap)
	if err != nil {
		_ = r.Abort(context.WithoutCancel(ctx))
		return nil, err
	}
	sort.Slice(a.errors, func(i, j int) bool { return a.errors[i].Path < a.errors[j].Path })
	return &Result{ID: id, Snapshot: snap, Errors: a.errors}, nil
}

// dedupPaths sorts paths and drops those inside another one.
func dedupPaths(paths []string) []string {
	sort.Strings(paths)
	var out []string
	for _, p := range paths {
		if len(out) > 0 {
			last := out[len(out)-1]
			if p == last || strings.HasPrefix(p, strings.TrimSuffix(last, string(filepath.Separator))+string(filepath.Separator)) {
				continue
			}
		}
		out = append(out, p)
	}
	return out
}

func (a *archiver) addError(path string, err error) {
	a.mu.Lock()
	a.errors = append(a.errors, PathError{Path: path, Err: err})
	a.mu.Unlock()
	a.progress.Error(path, err)
}

// virtualDir is a folder on the way to the sources: "/" and "/home" for a source
// /home/ann. Its metadata comes from the real folder of that path.
type virtualDir struct {
	path     string
	children map[string]*virtualDir
	source   bool // the path itself is a source: back up all it holds
}

func buildVirtualTree(paths []string) *virtualDir {
	root := &virtualDir{path: string(filepath.Separator), children: map[string]*virtualDir{}}
	for _, p := range paths {
		vol := filepath.VolumeName(p)
		rest := strings.TrimPrefix(p[len(vol):], string(filepath.Separator))
		d := root
		if rest == "" {
			d.source = true
			continue
		}
		parts := strings.Split(rest, string(filepath.Separator))
		if vol != "" {
			parts = append([]string{strings.TrimSuffix(vol, ":")}, parts...)
		}
		cur := vol + string(filepath.Separator)
		for i, part := range parts {
			if i > 0 || vol == "" {
				cur = filepath.Join(cur, part)
			}
			c := d.children[part]
			if c == nil {
				c = &virtualDir{path: cur, children: map[string]*virtualDir{}}
				d.children[part] = c
			}
			d = c
		}
		d.source = true
	}
	return root
}

// future is a node whose content is still being saved.
type future struct {
	done chan struct{}
	node *repo.Node
	err  error // fatal: the backup stops
	skip bool  // left out after an error that was reported
}

func doneFuture(n *repo.Node) *future {
	f := &future{done: make(chan struct{}), node: n}
	close(f.done)
	return f
}

func (f *future) wait() (*repo.Node, error) {
	<-f.done
	return f.node, f.err
}

// saveVirtualDir saves the tree of a folder on the way to the sources; prev is the
// folder's node in the parent snapshot, or nil.
func (a *archiver) saveVirtualDir(ctx context.Context, d *virtualDir, prev *repo.Node) *future {
	fi, err := os.Lstat(d.path)
	if err != nil {
		return failedFuture(err)
	}
	node, err := localfs.ReadNode(d.path, fi)
	if node == nil {
		return failedFuture(err)
	}
	if filepath.Dir(d.path) == d.path {
		node.Name = "/"
	}
	if d.source {
		switch node.Type {
		case repo.NodeDir:
			return a.saveDir(ctx, d.path, node, prev, node.DeviceID)
		case repo.NodeFile:
			return a.saveFile(ctx, d.path, node, prev)
		default:
			return doneFuture(node)
		}
	}
	prevTree := a.loadPrevTree(ctx, prev)
	names := make([]string, 0, len(d.children))
	for n := range d.children {
		names = append(names, n)
	}
	sort.Strings(names)
	var children []*future
	for _, name := range names {
		var prevChild *repo.Node
		if prevTree != nil {
			prevChild = prevTree.Find(name)
		}
		children = append(children, a.saveVirtualDir(ctx, d.children[name], prevChild))
	}
	return a.finishDir(ctx, d.path, node, prev, children)
}

func failedFuture(err error) *future {
	f := &future{done: make(chan struct{}), err: err}
	close(f.done)
	return f
}

func findDir(t *repo.Tree, name string) *repo.Node {
	if t == nil {
		return nil
	}
	n := t.Find(name)
	if n == nil || n.Type != repo.NodeDir || n.Subtree == nil {
		return nil
	}
	return n
}

// loadPrevTree loads the subtree of a folder's node in the parent snapshot; a tree
// that cannot be loaded only means that everything below is read again.
func (a *archiver) loadPrevTree(ctx context.Context, prev *repo.Node) *repo.Tree {
	if prev == nil || prev.Subtree == nil {
		return nil
	}
	t, err := a.r.LoadTree(ctx, *prev.Subtree)
	if err != nil {
		return nil
	}
	return t
}

// saveDir walks the folder at path (whose own metadata is node) and returns a future
// of node with its subtree saved. prev is the folder's node in the parent snapshot.
func (a *archiver) saveDir(ctx context.Context, path string, node *repo.Node, prev *repo.Node, dev uint64) *future {
	prevTree := a.loadPrevTree(ctx, prev)
	names, err := readDirNames(path)
	if err != nil {
		a.addError(path, err)
	}
	var children []*future
	for _, name := range names {
		if ctx.Err() != nil {
			break
		}
		p := filepath.Join(path, name)
		if a.excluded(p, name) {
			continue
		}
		fi, err := os.Lstat(p)
		if err != nil {
			a.addError(p, err)
			continue
		}
		n, err := localfs.ReadNode(p, fi)
		if n == nil {
			a.addError(p, err)
			continue
		}
		if err != nil {
			a.progress.Warning(p, err.Error())
		}
		n.Name = repo.RawString(name)
		switch n.Type {
		case repo.NodeDir:
			if a.opts.OneFileSystem && n.DeviceID != dev {
				children = append(children, a.finishDir(ctx, p, n, nil, nil))
				continue
			}
			children = append(children, a.saveDir(ctx, p, n, findDir(prevTree, name), dev))
		case repo.NodeFile:
			var pn *repo.Node
			if prevTree != nil {
				pn = prevTree.Find(name)
			}
			children = append(children, a.saveFile(ctx, p, n, pn))
		default:
			children = append(children, doneFuture(n))
		}
	}
	return a.finishDir(ctx, path, node, prev, children)
}

// finishDir waits, in the background, for the children and saves the folder's tree.
func (a *archiver) finishDir(ctx context.Context, path string, node *repo.Node, prev *repo.Node, children []*future) *future {
	f := &future{done: make(chan struct{}), node: node}
	go func() {
		defer close(f.done)
		tree := &repo.Tree{}
		for _, c := range children {
			n, err := c.wait()
			if err != nil {
				f.err = err
				continue
			}
			if c.skip {
				continue
			}
			tree.Nodes = append(tree.Nodes, n)
		}
		if f.err != nil {
			return
		}
		id, _, err := a.r.SaveTree(ctx, tree)
		if err != nil {
			f.err = fmt.Errorf("save tree of %s: %w", path, err)
			return
		}
		node.Subtree = &id
		node.Size = 0
		a.mu.Lock()
		switch {
		case prev == nil:
			a.stats.DirsNew++
		case *prev.Subtree == id:
			a.stats.DirsUnmodified++
		default:
			a.stats.DirsChanged++
		}
		a.mu.Unlock()
	}()
	return f
}

func readDirNames(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	names, err := f.Readdirnames(-1)
	sort.Strings(names)
	return names, err
}

func (a *archiver) excluded(path, name string) bool {
	for _, p := range a.opts.ExcludePaths {
		if path == p {
			return true
		}
	}
	for _, pat := range a.opts.Excludes {
		if strings.ContainsRune(pat, '/') {
			if ok, _ := filepath.Match(pat, path); ok {
				return true
			}
		} else if ok, _ := filepath.Match(pat, name); ok {
			return true
		}
	}
	return false
}

// scan counts what the backup will read, for the progress display's totals.
func (a *archiver) scan(ctx context.Context, paths []string) {
	var files, size int64
	last := time.Now()
	for _, root := range paths {
		_ = filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if err != nil {
				return nil
			}
			if a.excluded(p, fi.Name()) && p != root {
				if fi.IsDir() {
					return filepath.SkipDir
				}
				return nil
			}
			if fi.Mode().IsRegular() {
				files++
				size += fi.Size()
			}
			if time.Since(last) > 200*time.Millisecond {
				a.progress.Scanned(files, size, false)
				last = time.Now()
			}
			return nil
		})
	}
	a.progress.Scanned(files, size, true)
}

type nopProgress struct{}

func (nopProgress) Scanned(int64, int64, bool)         {}
func (nopProgress) FileDone(string, int64, FileStatus) {}
func (nopProgress) BytesRead(int64)                    {}
func (nopProgress) Error(string, error)                {}
func (nopProgress) Warning(string, string)             {}
