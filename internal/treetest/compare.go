//go:build linux

package treetest

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// CompareOptions relaxes Compare. The zero value compares everything.
type CompareOptions struct {
	// IgnoreATime skips access times.
	IgnoreATime bool
	// IgnoreSparse skips the check that sparse files stay sparse.
	IgnoreSparse bool
	// IgnoreRootMeta skips the metadata (mode, owner, times, xattrs) of the
	// two root folders themselves; their content is still compared.
	IgnoreRootMeta bool
}

// sparseMinSize is the smallest file whose sparseness Compare checks: tiny
// files may legitimately be stored inline, with no blocks at all.
const sparseMinSize = 64 << 10

// maxShown caps the bytes of an xattr value or a symlink target quoted in a
// difference.
const maxShown = 48

// Compare walks the trees want and got (lstat only: symlinks are never
// followed) and returns their differences, one human-readable line each and
// none when the trees are equal. Paths in the lines are relative to the
// roots and quoted with %q, so bytes that are not valid UTF-8 show as \xNN.
//
// Compared, for every entry: the set of names in each folder (byte for
// byte), the type, the permission bits with setuid, setgid and sticky, uid,
// gid, mtime to the nanosecond, atime to the nanosecond (unless
// opts.IgnoreATime) and every xattr, name and value (POSIX ACLs are the
// system.posix_acl_* xattrs). For regular files also the size, the content
// byte for byte (streamed, skipping ranges that are holes in both files) and
// sparseness: a file of at least 64 KiB that allocates less than half its
// size in want must do so in got too (unless opts.IgnoreSparse). For
// symlinks the raw target, for device nodes the device number, and across
// the tree the hardlink structure: two paths share an inode in want iff they
// share one in got. Never compared: ctime, inode numbers, link counts, the
// size of folders and symlinks.
//
// Compare leaves the trees as it found them, atimes included: it opens files
// and folders with O_NOATIME and puts back a symlink's atime if readlink(2)
// changed it. t.Fatal is called only if want's root cannot be read; other
// errors are reported as differences.
func Compare(t testing.TB, want, got string, opts CompareOptions) []string {
	t.Helper()
	if _, err := os.Lstat(want); err != nil {
		t.Fatalf("treetest: %v", err)
	}
	c := &comparer{
		opts:  opts,
		roots: [2]string{want, got},
		inode: [2]map[string]inodeKey{{}, {}},
	}
	c.entry("")
	c.hardlinks()
	return c.diffs
}

// RequireEqual compares want and got like Compare and reports each of the
// first 50 differences, and their count, with t.Errorf.
func RequireEqual(t testing.TB, want, got string, opts CompareOptions) {
	t.Helper()
	diffs := Compare(t, want, got, opts)
	const limit = 50
	for i, d := range diffs {
		if i == limit {
			t.Errorf("... and %d more differences", len(diffs)-limit)
			break
		}
		t.Errorf("%s", d)
	}
	if len(diffs) > 0 {
		t.Errorf("treetest: %d differences between %s (want) and %s (got)", len(diffs), want, got)
	}
}

// Sides of a comparison, indexes of comparer's arrays.
const (
	wantSide = 0
	gotSide  = 1
)

var sideName = [2]string{"want", "got"}

// inodeKey identifies a file within one tree.
type inodeKey struct{ dev, ino uint64 }

// comparer holds the state of one Compare call.
type comparer struct {
	opts  CompareOptions
	roots [2]string
	diffs []string
	// inode maps the relative path of every non-folder found in both trees
	// to its inode, for the hardlink check.
	inode [2]map[string]inodeKey
	// buf holds the two read buffers of content compares, made on first use.
	buf [2][]byte
}

// addf records a difference about the entry at rel.
func (c *comparer) addf(rel, format string, args ...any) {
	c.diffs = append(c.diffs, show(rel)+": "+fmt.Sprintf(format, args...))
}

// show quotes a relative path for a difference line; the root shows as ".".
func show(rel string) string {
	if rel == "" {
		return `"."`
	}
	return fmt.Sprintf("%q", rel)
}

// path returns the absolute path of rel on one side.
func (c *comparer) path(side int, rel string) string {
	if rel == "" {
		return c.roots[side]
	}
	return c.roots[side] + "/" + rel
}

// entry compares the entry at rel, which exists in both trees, and below it.
func (c *comparer) entry(rel string) {
	var st [2]unix.Stat_t
	for side := range 2 {
		if err := unix.Lstat(c.path(side, rel), &st[side]); err != nil {
			c.addf(rel, "lstat %s: %v", sideName[side], err)
			return
		}
	}
	if rel != "" || !c.opts.IgnoreRootMeta {
		c.meta(rel, &st)
	}
	if st[wantSide].Mode&unix.S_IFMT != st[gotSide].Mode&unix.S_IFMT {
		return // meta reported the type; nothing else is comparable
	}
	switch st[wantSide].Mode & unix.S_IFMT {
	case unix.S_IFDIR:
		c.folder(rel)
		return
	case unix.S_IFREG:
		c.content(rel, &st)
		c.sparseness(rel, &st)
	case unix.S_IFLNK:
		c.symlink(rel, &st)
	case unix.S_IFCHR, unix.S_IFBLK:
		if st[wantSide].Rdev != st[gotSide].Rdev {
			c.addf(rel, "device: want %s, got %s", device(st[wantSide].Rdev), device(st[gotSide].Rdev))
		}
	}
	for side := range 2 {
		c.inode[side][rel] = inodeKey{st[side].Dev, st[side].Ino}
	}
}

// meta compares the metadata every type of entry has.
func (c *comparer) meta(rel string, st *[2]unix.Stat_t) {
	w, g := &st[wantSide], &st[gotSide]
	if wt, gt := w.Mode&unix.S_IFMT, g.Mode&unix.S_IFMT; wt != gt {
		c.addf(rel, "type: want %s, got %s", typeName(wt), typeName(gt))
	}
	if wp, gp := w.Mode&07777, g.Mode&07777; wp != gp {
		c.addf(rel, "mode: want %#o, got %#o", wp, gp)
	}
	if w.Uid != g.Uid {
		c.addf(rel, "uid: want %d, got %d", w.Uid, g.Uid)
	}
	if w.Gid != g.Gid {
		c.addf(rel, "gid: want %d, got %d", w.Gid, g.Gid)
	}
	if w.Mode&unix.S_IFMT == unix.S_IFREG && g.Mode&unix.S_IFMT == unix.S_IFREG && w.Size != g.Size {
		c.addf(rel, "size: want %d, got %d", w.Size, g.Size)
	}
	if w.Mtim != g.Mtim {
		c.addf(rel, "mtime: want %s, got %s", timestamp(w.Mtim), timestamp(g.Mtim))
	}
	if !c.opts.IgnoreATime && w.Atim != g.Atim {
		c.addf(rel, "atime: want %s, got %s", timestamp(w.Atim), timestamp(g.Atim))
	}
	c.xattrs(rel)
}

// folder compares the names in folder rel and then each entry in both.
func (c *comparer) folder(rel string) {
	var names [2][]string
	for side := range 2 {
		var err error
		if names[side], err = readNames(c.path(side, rel)); err != nil {
			c.addf(rel, "read folder in %s: %v", sideName[side], err)
			return
		}
	}
	w, g := names[wantSide], names[gotSide]
	for len(w) > 0 || len(g) > 0 {
		switch {
		case len(g) == 0 || len(w) > 0 && w[0] < g[0]:
			c.addf(join(rel, w[0]), "missing in got")
			w = w[1:]
		case len(w) == 0 || g[0] < w[0]:
			c.addf(join(rel, g[0]), "extra in got")
			g = g[1:]
		default:
			c.entry(join(rel, w[0]))
			w, g = w[1:], g[1:]
		}
	}
}

func join(rel, name string) string {
	if rel == "" {
		return name
	}
	return rel + "/" + name
}

// readNames returns the sorted names in folder p, without changing its atime.
func readNames(p string) ([]string, error) {
	f, err := openNoATime(p, unix.O_DIRECTORY)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	names, err := f.Readdirnames(-1)
	slices.Sort(names)
	return names, err
}

// openNoATime opens p read-only with O_NOATIME, or without it where the
// caller may not use it (not the owner and no CAP_FOWNER).
func openNoATime(p string, flag int) (*os.File, error) {
	f, err := os.OpenFile(p, os.O_RDONLY|flag|unix.O_NOATIME, 0)
	if errors.Is(err, unix.EPERM) {
		f, err = os.OpenFile(p, os.O_RDONLY|flag, 0)
	}
	return f, err
}

// symlink compares the raw targets of two symlinks.
func (c *comparer) symlink(rel string, st *[2]unix.Stat_t) {
	var targets [2]string
	for side := range 2 {
		var err error
		targets[side], err = readlinkKeepATime(c.path(side, rel), &st[side])
		if err != nil {
			c.addf(rel, "readlink in %s: %v", sideName[side], err)
			return
		}
	}
	if targets[wantSide] != targets[gotSide] {
		c.addf(rel, "symlink target: want %s, got %s", quote([]byte(targets[wantSide])), quote([]byte(targets[gotSide])))
	}
}

// readlinkKeepATime reads symlink p, whose lstat is st, and restores its
// times if readlink(2) updated the atime (as relatime does when the atime is
// not newer than the ctime).
func readlinkKeepATime(p string, st *unix.Stat_t) (string, error) {
	target, err := os.Readlink(p)
	if err != nil {
		return "", err
	}
	var after unix.Stat_t
	if err := unix.Lstat(p, &after); err == nil && after.Atim != st.Atim {
		ts := []unix.Timespec{st.Atim, st.Mtim}
		if err := unix.UtimesNanoAt(unix.AT_FDCWD, p, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return "", fmt.Errorf("restore atime: %w", err)
		}
	}
	return target, nil
}

// sparseness checks that a file sparse in want is sparse in got.
func (c *comparer) sparseness(rel string, st *[2]unix.Stat_t) {
	w, g := &st[wantSide], &st[gotSide]
	if c.opts.IgnoreSparse || w.Size < sparseMinSize || !isSparse(w) {
		return
	}
	if !isSparse(g) {
		c.addf(rel, "not sparse: want allocates %d of %d bytes, got %d", w.Blocks*512, w.Size, g.Blocks*512)
	}
}

// isSparse tells whether a file allocates less than half its size.
func isSparse(st *unix.Stat_t) bool {
	return st.Blocks*512 < st.Size/2
}

// hardlinks checks that paths share an inode in want iff they share one in
// got, among the non-folders found in both trees.
func (c *comparer) hardlinks() {
	var groups [2]map[inodeKey][]string
	for side := range 2 {
		groups[side] = map[inodeKey][]string{}
		for rel, key := range c.inode[side] {
			groups[side][key] = append(groups[side][key], rel)
		}
	}
	rels := make([]string, 0, len(c.inode[wantSide]))
	for rel := range c.inode[wantSide] {
		rels = append(rels, rel)
	}
	slices.Sort(rels)
	for _, rel := range rels {
		w := others(groups[wantSide][c.inode[wantSide][rel]], rel)
		g := others(groups[gotSide][c.inode[gotSide][rel]], rel)
		if !slices.Equal(w, g) {
			c.addf(rel, "hardlinks: want linked with %s, got linked with %s", showList(w), showList(g))
		}
	}
}

// others returns the sorted paths of group other than rel.
func others(group []string, rel string) []string {
	var out []string
	for _, p := range group {
		if p != rel {
			out = append(out, p)
		}
	}
	slices.Sort(out)
	return out
}

func showList(rels []string) string {
	if len(rels) == 0 {
		return "nothing"
	}
	shown := make([]string, len(rels))
	for i, rel := range rels {
		shown[i] = show(rel)
	}
	return "[" + strings.Join(shown, " ") + "]"
}

func typeName(mode uint32) string {
	switch mode & unix.S_IFMT {
	case unix.S_IFREG:
		return "regular file"
	case unix.S_IFDIR:
		return "folder"
	case unix.S_IFLNK:
		return "symlink"
	case unix.S_IFIFO:
		return "fifo"
	case unix.S_IFCHR:
		return "char device"
	case unix.S_IFBLK:
		return "block device"
	case unix.S_IFSOCK:
		return "socket"
	}
	return fmt.Sprintf("type %#o", mode&unix.S_IFMT)
}

func device(rdev uint64) string {
	return fmt.Sprintf("%d,%d", unix.Major(rdev), unix.Minor(rdev))
}

// timestamp shows a time to the nanosecond, in UTC.
func timestamp(ts unix.Timespec) string {
	return time.Unix(ts.Sec, ts.Nsec).UTC().Format("2006-01-02T15:04:05.000000000Z")
}

// quote shows at most maxShown bytes of b with %q, and the length if longer.
func quote(b []byte) string {
	if len(b) <= maxShown {
		return fmt.Sprintf("%q", b)
	}
	return fmt.Sprintf("%q... (%d bytes)", b[:maxShown], len(b))
}
