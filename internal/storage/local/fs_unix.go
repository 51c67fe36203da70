//go:build unix

package local

import (
	"errors"
	"os"
	"syscall"
)

// syncDir fsyncs a folder so that names created or renamed in it survive a crash.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if errors.Is(err, syscall.EINVAL) || errors.Is(err, syscall.ENOTSUP) {
		err = nil // some filesystems (and FUSE ones) cannot sync folders
	}
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// isDiskFull reports whether err says there is no space (or no quota) left.
func isDiskFull(err error) bool {
	return errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT)
}

// linkNoReplace renames oldpath to newpath unless newpath exists (an error matching
// fs.ErrExist), by a hard link and an unlink. Where the filesystem has no hard
// links it falls back to renameIfAbsent.
func linkNoReplace(oldpath, newpath string) error {
	err := os.Link(oldpath, newpath)
	if errors.Is(err, syscall.EPERM) || errors.Is(err, syscall.ENOTSUP) || errors.Is(err, syscall.EOPNOTSUPP) || errors.Is(err, syscall.EMLINK) {
		return renameIfAbsent(oldpath, newpath)
	}
	if err != nil {
		return err
	}
	os.Remove(oldpath) // the file is saved; a leftover temporary file is harmless
	return nil
}
