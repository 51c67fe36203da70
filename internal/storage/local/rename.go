//go:build !windows

package local

import (
	"errors"
	"io/fs"
	"os"
)

// renameIfAbsent renames oldpath to newpath unless newpath exists, in which case the
// error matches fs.ErrExist. It is the fallback where the filesystem offers no
// atomic way: two Saves of the same name racing may both succeed, the later one
// replacing the earlier (identical, for content-addressed files) content.
func renameIfAbsent(oldpath, newpath string) error {
	if _, err := os.Lstat(newpath); err == nil {
		return &os.LinkError{Op: "rename", Old: oldpath, New: newpath, Err: fs.ErrExist}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return os.Rename(oldpath, newpath)
}
