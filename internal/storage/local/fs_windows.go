package local

import (
	"errors"
	"os"
	"syscall"
)

// syncDir does nothing: Windows cannot fsync a folder, and NTFS journals renames.
func syncDir(dir string) error { return nil }

// Windows' own codes for a full disk.
const (
	errorHandleDiskFull syscall.Errno = 39
	errorDiskFull       syscall.Errno = 112
)

// isDiskFull reports whether err says there is no space left.
func isDiskFull(err error) bool {
	return errors.Is(err, errorDiskFull) || errors.Is(err, errorHandleDiskFull) || errors.Is(err, syscall.ENOSPC)
}

// renameNoReplace renames oldpath to newpath unless newpath exists, in which case
// the error matches fs.ErrExist. MoveFile, unlike os.Rename, never replaces.
func renameNoReplace(oldpath, newpath string) error {
	from, err := syscall.UTF16PtrFromString(oldpath)
	if err != nil {
		return err
	}
	to, err := syscall.UTF16PtrFromString(newpath)
	if err != nil {
		return err
	}
	if err := syscall.MoveFile(from, to); err != nil {
		return &os.LinkError{Op: "rename", Old: oldpath, New: newpath, Err: err}
	}
	return nil
}
