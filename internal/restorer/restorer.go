// Package restorer writes a snapshot's tree (or part of it) into a folder with all
// its metadata: files with their holes, links, hardlinks, special files, owners,
// modes, times and extended attributes. Nothing is ever written outside the target.
package restorer

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"

	"cairn/internal/localfs"
	"cairn/internal/repo"
	"cairn/internal/vfs"
)

// Progress receives events of a running restore, from many goroutines at once.
type Progress interface {
	// Planned reports the totals of what will be restored.
	Planned(files, bytes int64)
	// FileDone reports a restored file or other entry.
	FileDone(path string, size int64)
	// BytesWritten reports file content written.
	BytesWritten(n int64)
	// Error reports an entry that could not be restored; the restore goes on.
	Error(path string, err error)
}

// Options control a restore.
type Options struct {
	// Target is the folder to restore into; it is created if missing.
	Target string
	// Include and Exclude are patterns matched against each entry's path in the
	// snapshot (one without '/' against its name); with Include, only matching
	// entries and what is inside them are restored.
	Include, Exclude []string
	// Verify re-reads every restored file and compares it with the snapshot.
	Verify bool
	// Repository, if set, is the repository of the snapshot: the content of its
	// files is then read pack by pack (each pack once, in about the order it was
	// written) instead of chunk by chunk, file by file.
	Repository *repo.Repository
	// Workers is how many files, or packs, are restored at once; 0 means 2 per core.
	Workers  int
	Progress Progress
}

// PathError is an entry that could not be restored.
type PathError struct {
	Path string
	Err  error
}

func (e PathError) Error() string { return e.Path + ": " + e.Err.Error() }

// Result is the outcome of a restore.
type Result struct {
	Files, Dirs, Others int64
	Bytes               int64
	Verified            int64
	Errors              []PathError
}

type restorer struct {
	opts     Options
	target   string
	progress Progress

	mu       sync.Mutex
	res      Result
	links    map[[2]uint64]string // (device, inode) -> first restored path
	dirs     []dirMeta
	linkJobs []linkJob
	plan     *contentPlan // file content restored pack by pack; nil: file by file

	// realDirs are the folders of the target this restore made or found to be
	// real folders (not symlinks); only the walk uses it.
	realDirs map[string]bool
}

type dirMeta struct {
	path string
	node *repo.Node
}

type linkJob struct {
	from, to string
	entry    *vfs.Entry
}

type fileJob struct {
	path  string
	entry *vfs.Entry
}

// Restore writes root, whose path in the snapshot is rootPath, into opts.Target: a
// folder's content goes into the target, a single file into the target folder.
func Restore(ctx context.Context, root *vfs.Entry, rootPath string, opts Options) (*Result, error) {
	if opts.Target == "" {
		return nil, errors.New("no target folder given")
	}
	target, err := filepath.Abs(opts.Target)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(target, 0o700); err != nil {
		return nil, fmt.Errorf("create target: %w", err)
	}
	if fi, err := os.Lstat(target); err != nil || !fi.IsDir() {
		return nil, fmt.Errorf("target %s is not a folder", target)
	}
	if opts.Progress == nil {
		opts.Progress = nopProgress{}
	}
	if opts.Workers <= 0 {
		opts.Workers = 2 * runtime.GOMAXPROCS(0)
	}
	rs := &restorer{opts: opts, target: target, progress: opts.Progress, links: map[[2]uint64]string{}, realDirs: map[string]bool{}}
	if opts.Repository != nil {
		// A pack worker waits, besides for its pack, for the filesystem to make
		// the files it writes (it reads inode tables when cold): two a core keep
		// the cores busy, with a pack buffer each.
		rs.plan = newContentPlan(opts.Repository, rs, opts.Workers)
	}

	// Plan: count what will be restored.
	var files, bytes int64
	if err := rs.walk(ctx, root, rootPath, nil, func(p string, rel []string, e *vfs.Entry) error {
		if e.Node.Type == repo.NodeFile {
			files++
			bytes += int64(e.Node.Size)
		}
		return nil
	}); err != nil {
		return nil, err
	}
	rs.progress.Planned(files, bytes)

	jobs := make(chan fileJob)
	var wg sync.WaitGroup
	for range opts.Workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range jobs {
				rs.restoreFile(ctx, j)
			}
		}()
	}
	walkErr := rs.walk(ctx, root, rootPath, rs.fail, func(p string, rel []string, e *vfs.Entry) error {
		dst, err := rs.prepare(rel)
		if err != nil {
			rs.fail(p, err)
			return vfs.SkipDir
		}
		return rs.restoreEntry(ctx, p, dst, e, jobs)
	})
	close(jobs)
	if rs.plan != nil {
		rs.plan.finish(ctx)
	}
	wg.Wait()
	if walkErr != nil {
		return nil, walkErr
	}
	for _, l := range rs.linkJobs {
		_ = os.Remove(l.to)
		if err := os.Link(l.from, l.to); err != nil {
			rs.fail(l.to, err)
			continue
		}
		if opts.Verify {
			if err := verifyFile(ctx, l.to, l.entry); err != nil {
				rs.fail(l.to, fmt.Errorf("verify: %w", err))
				continue
			}
			rs.res.Verified++
		}
	}
	// Folders last, deepest first: creating their content changed their times.
	sort.Slice(rs.dirs, func(i, j int) bool { return len(rs.dirs[i].path) > len(rs.dirs[j].path) })
	for _, d := range rs.dirs {
		if err := localfs.ApplyMetadata(d.path, d.node); err != nil {
			rs.fail(d.path, err)
		}
	}
	sort.Slice(rs.res.Errors, func(i, j int) bool { return rs.res.Errors[i].Path < rs.res.Errors[j].Path })
	return &rs.res, ctx.Err()
}

// walk visits the entries to restore, with their snapshot path and their path
// relative to the target, applying Include and Exclude. A folder whose listing
// cannot be read, or only in part (damaged, say), is passed to dirErr, if set, and
// the walk goes on with the rest.
func (rs *restorer) walk(ctx context.Context, root *vfs.Entry, rootPath string, dirErr func(p string, err error), fn func(p string, rel []string, e *vfs.Entry) error) error {
	rootPath = path.Clean("/" + rootPath)
	return walkEntries(ctx, root, rootPath, rootPath, dirErr, func(p string, e *vfs.Entry) error {
		var rel []string
		if p != rootPath {
			rel = strings.Split(strings.TrimPrefix(p, strings.TrimSuffix(rootPath, "/")+"/"), "/")
		} else if !e.IsDir() {
			rel = []string{e.Name()}
		}
		if matchAny(rs.opts.Exclude, p, e.Name()) {
			if e.IsDir() {
				return vfs.SkipDir
			}
			return nil
		}
		if len(rs.opts.Include) > 0 && !included(rs.opts.Include, p) {
			if e.IsDir() && mayContainMatch(rs.opts.Include, p) {
				return nil // look inside, but do not restore the folder itself yet
			}
			if e.IsDir() {
				return vfs.SkipDir
			}
			return nil
		}
		return fn(p, rel, e)
	})
}

// walkEntries is vfs.Walk that reports a folder it cannot list, or lists only in
// part, to dirErr (when set) and goes on with the entries it has; a root it cannot
// list at all stops it.
func walkEntries(ctx context.Context, e *vfs.Entry, p, root string, dirErr func(string, error), fn func(p string, e *vfs.Entry) error) error {
	return vfs.WalkListing(ctx, e, p, fn, func(dir string, listed int, err error) error {
		if dir == root && listed == 0 {
			return fmt.Errorf("%s: %w", dir, err)
		}
		if dirErr != nil {
			what := "cannot list the folder"
			if listed > 0 {
				what = "some entries of the folder are damaged; the others are restored"
			}
			dirErr(dir, fmt.Errorf("%s: %w", what, err))
		}
		return nil
	})
}

// prepare returns the target path of rel after making sure that every folder on the
// way exists as a real folder inside the target (never a symlink).
func (rs *restorer) prepare(rel []string) (string, error) {
	dst := rs.target
	for i, name := range rel {
		if err := repo.CheckName(name); err != nil {
			return "", err
		}
		dst = filepath.Join(dst, name)
		if i == len(rel)-1 {
			break
		}
		if rs.realDirs[dst] {
			continue
		}
		fi, err := os.Lstat(dst)
		switch {
		case os.IsNotExist(err):
			if err := os.Mkdir(dst, 0o700); err != nil {
				return "", err
			}
		case err != nil:
			return "", err
		case fi.Mode()&os.ModeSymlink != 0:
			return "", fmt.Errorf("refusing to restore through the symlink %s", dst)
		case !fi.IsDir():
			return "", fmt.Errorf("%s exists and is not a folder", dst)
		}
		rs.realDirs[dst] = true
	}
	return dst, nil
}

func (rs *restorer) fail(p string, err error) {
	rs.mu.Lock()
	rs.res.Errors = append(rs.res.Errors, PathError{Path: p, Err: err})
	rs.mu.Unlock()
	rs.progress.Error(p, err)
}

func (rs *restorer) restoreEntry(ctx context.Context, p, dst string, e *vfs.Entry, jobs chan<- fileJob) error {
	n := e.Node
	switch n.Type {
	case repo.NodeDir:
		if dst == rs.target {
			// The target itself keeps its own metadata.
			return nil
		}
		fi, err := os.Lstat(dst)
		switch {
		case os.IsNotExist(err):
			err = os.Mkdir(dst, 0o700)
		case err == nil && fi.Mode()&os.ModeSymlink != 0:
			err = fmt.Errorf("refusing to restore through the symlink %s", dst)
		case err == nil && !fi.IsDir():
			err = fmt.Errorf("%s exists and is not a folder", dst)
		}
		if err != nil {
			rs.fail(p, err)
			return vfs.SkipDir
		}
		rs.realDirs[dst] = true
		rs.mu.Lock()
		rs.dirs = append(rs.dirs, dirMeta{path: dst, node: n})
		rs.res.Dirs++
		rs.mu.Unlock()
		return nil
	case repo.NodeFile:
		if n.Links > 1 {
			key := [2]uint64{n.DeviceID, n.Inode}
			rs.mu.Lock()
			first, seen := rs.links[key]
			if !seen {
				rs.links[key] = dst
			} else {
				rs.linkJobs = append(rs.linkJobs, linkJob{from: first, to: dst, entry: e})
				rs.res.Files++
			}
			rs.mu.Unlock()
			if seen {
				rs.progress.FileDone(p, int64(n.Size))
				return nil
			}
		}
		if rs.plan != nil && len(n.Content) > 0 {
			if err := rs.plan.add(ctx, dst, e); err != nil {
				rs.fail(dst, err)
			}
			return nil
		}
		select {
		case jobs <- fileJob{path: dst, entry: e}:
		case <-ctx.Done():
			return ctx.Err()
		}
		return nil
	default:
		if err := removeExisting(dst); err != nil {
			rs.fail(p, err)
			return nil
		}
		if err := localfs.Create(dst, n); err != nil {
			rs.fail(p, err)
			return nil
		}
		if err := localfs.ApplyMetadata(dst, n); err != nil {
			rs.fail(p, err)
		}
		rs.mu.Lock()
		rs.res.Others++
		rs.mu.Unlock()
		rs.progress.FileDone(p, 0)
		return nil
	}
}

// removeExisting deletes a non-folder at dst so that it can be replaced; a folder
// there is an error.
func removeExisting(dst string) error {
	fi, err := os.Lstat(dst)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		return err
	}
	if fi.IsDir() {
		return fmt.Errorf("%s exists and is a folder", dst)
	}
	return os.Remove(dst)
}

// restoreFile writes one file's content, leaving holes for zero chunks, then its metadata.
func (rs *restorer) restoreFile(ctx context.Context, j fileJob) {
	if err := rs.writeFile(ctx, j); err != nil {
		rs.fail(j.path, err)
		return
	}
	rs.finishFile(ctx, j.path, j.entry)
}

// finishFile applies the metadata of a file whose content is written, verifies it
// if asked, and counts it.
func (rs *restorer) finishFile(ctx context.Context, path string, e *vfs.Entry) {
	n := e.Node
	if err := localfs.ApplyMetadata(path, n); err != nil {
		rs.fail(path, err)
	}
	if rs.opts.Verify {
		if err := verifyFile(ctx, path, e); err != nil {
			rs.fail(path, fmt.Errorf("verify: %w", err))
			return
		}
		rs.mu.Lock()
		rs.res.Verified++
		rs.mu.Unlock()
	}
	rs.mu.Lock()
	rs.res.Files++
	rs.res.Bytes += int64(n.Size)
	rs.mu.Unlock()
	rs.progress.FileDone(path, int64(n.Size))
}

func (rs *restorer) writeFile(ctx context.Context, j fileJob) error {
	if err := removeExisting(j.path); err != nil {
		return err
	}
	f, err := os.OpenFile(j.path, os.O_WRONLY|os.O_CREATE|os.O_EXCL|noFollow, 0o600)
	if err != nil {
		return err
	}
	src, err := j.entry.Open(ctx)
	if err != nil {
		f.Close()
		return err
	}
	err = src.Chunks(ctx, 4, func(off int64, data []byte) error {
		rs.progress.BytesWritten(int64(len(data)))
		return localfs.WriteSparse(f, off, data)
	})
	if err == nil {
		err = f.Truncate(src.Size())
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil && uint64(src.Size()) != j.entry.Node.Size {
		err = fmt.Errorf("restored %d bytes, the snapshot records %d", src.Size(), j.entry.Node.Size)
	}
	return err
}

func matchAny(patterns []string, p, name string) bool {
	for _, pat := range patterns {
		if strings.ContainsRune(pat, '/') {
			if ok, _ := path.Match(pat, p); ok {
				return true
			}
		} else if ok, _ := path.Match(pat, name); ok {
			return true
		}
	}
	return false
}

// included reports whether p or a folder above it matches an include pattern.
func included(patterns []string, p string) bool {
	for q := p; ; q = path.Dir(q) {
		if matchAny(patterns, q, path.Base(q)) {
			return true
		}
		if q == "/" || q == "." {
			return false
		}
	}
}

// mayContainMatch reports whether something below folder p could match a pattern.
func mayContainMatch(patterns []string, p string) bool {
	for _, pat := range patterns {
		if !strings.ContainsRune(pat, '/') {
			return true // a name pattern can match at any depth
		}
		parts := strings.Split(strings.Trim(pat, "/"), "/")
		dir := strings.Split(strings.Trim(p, "/"), "/")
		if p == "/" {
			dir = nil
		}
		if len(dir) >= len(parts) {
			continue
		}
		ok := true
		for i, d := range dir {
			if m, _ := path.Match(parts[i], d); !m {
				ok = false
				break
			}
		}
		if ok {
			return true
		}
	}
	return false
}

type nopProgress struct{}

func (nopProgress) Planned(int64, int64)   {}
func (nopProgress) FileDone(string, int64) {}
func (nopProgress) BytesWritten(int64)     {}
func (nopProgress) Error(string, error)    {}
