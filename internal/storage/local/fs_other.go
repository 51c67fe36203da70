//go:build !unix && !windows

package local

// syncDir does nothing where folders cannot be synced portably.
func syncDir(dir string) error { return nil }

// isDiskFull reports whether err says there is no space left; here it cannot tell.
func isDiskFull(err error) bool { return false }

// renameNoReplace renames oldpath to newpath unless newpath exists, in which case
// the error matches fs.ErrExist.
func renameNoReplace(oldpath, newpath string) error { return renameIfAbsent(oldpath, newpath) }
