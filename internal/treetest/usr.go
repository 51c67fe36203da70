//go:build linux

package treetest

import (
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// usrSources are the folders of /usr, relative to it, whose entries CopyUsr
// considers, in order.
var usrSources = []string{"share/doc", "lib"}

// cpBatch is how many paths CopyUsr gives one cp command.
const cpBatch = 200

// CopyUsr copies a part of /usr of about maxBytes (the sum of regular file
// sizes, never more) into dst, created if missing, and calls t.Fatal on
// failure. It takes the entries of /usr/share/doc and then of /usr/lib in
// name order, whole (a folder with all below it), skipping each entry that
// would overshoot maxBytes, and copies them with `cp -a --parents`, so dst
// mirrors /usr's layout (dst/share/doc/..., dst/lib/...) with symlinks,
// hardlinks within a batch, modes, owners, mtimes and xattrs kept, and the
// folders above each entry carrying their /usr metadata too. The choice
// depends only on /usr's content.
//
// Then every atime under dst, dst included, is moved into the future (the
// mtimes stay), as MakeEdgeCases does and for the same reason: reading the
// copy, readlink(2) of a symlink above all, leaves it unchanged, so a backup
// of dst can be restored and compared with atimes included.
func CopyUsr(t testing.TB, dst string, maxBytes int64) {
	t.Helper()
	dst, err := filepath.Abs(dst)
	if err != nil {
		t.Fatalf("treetest: %v", err)
	}
	if err := os.MkdirAll(dst, 0o755); err != nil {
		t.Fatalf("treetest: %v", err)
	}
	picked := pickUsr(t, maxBytes)
	for len(picked) > 0 {
		n := min(cpBatch, len(picked))
		args := append([]string{"-a", "--parents"}, picked[:n]...)
		cmd := exec.Command("cp", append(args, dst)...)
		cmd.Dir = "/usr"
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("treetest: cp -a --parents into %s: %v: %s", dst, err, out)
		}
		picked = picked[n:]
	}
	copyAncestorTimes(t, dst)
	moveATimes(t, dst)
}

// copyAncestorTimes gives the folders above the copied entries (share,
// share/doc, lib) the mtimes they have in /usr: cp --parents sets them, but
// each later batch adds entries and so changes them again.
func copyAncestorTimes(t testing.TB, dst string) {
	t.Helper()
	for _, src := range usrSources {
		for rel := src; rel != "."; rel = filepath.Dir(rel) {
			info, err := os.Lstat(filepath.Join("/usr", rel))
			if err != nil {
				continue
			}
			err = setTimes(filepath.Join(dst, rel), info.ModTime(), info.ModTime())
			if err != nil && !errors.Is(err, fs.ErrNotExist) {
				t.Fatalf("treetest: %v", err)
			}
		}
	}
}

// pickUsr returns the paths, relative to /usr, that CopyUsr copies.
func pickUsr(t testing.TB, maxBytes int64) []string {
	t.Helper()
	var picked []string
	var total int64
	for _, src := range usrSources {
		entries, err := os.ReadDir(filepath.Join("/usr", src))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			t.Fatalf("treetest: %v", err)
		}
		for _, e := range entries {
			rel := src + "/" + e.Name()
			size, err := treeSize(filepath.Join("/usr", rel), maxBytes-total)
			if err != nil {
				t.Fatalf("treetest: %v", err)
			}
			if total+size <= maxBytes {
				picked = append(picked, rel)
				total += size
			}
		}
	}
	return picked
}

// treeSize returns the sum of the sizes of the regular files at and below
// p, or a number over limit as soon as the sum passes limit.
func treeSize(p string, limit int64) (int64, error) {
	var sum int64
	err := filepath.WalkDir(p, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.Type().IsRegular() {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		sum += info.Size()
		if sum > limit {
			return fs.SkipAll
		}
		return nil
	})
	return sum, err
}

// moveATimes gives every entry under root, root included, an atime in the
// future (entry i in walk order gets atimeBase+i s and an odd nanosecond
// part), keeping its mtime.
func moveATimes(t testing.TB, root string) {
	t.Helper()
	i := 0
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := os.Lstat(p)
		if err != nil {
			return err
		}
		i++
		return setTimes(p, edgeTime(atimeBase, i), info.ModTime())
	})
	if err != nil {
		t.Fatalf("treetest: %v", err)
	}
}
