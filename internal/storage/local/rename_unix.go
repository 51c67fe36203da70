//go:build unix && !linux

package local

// renameNoReplace renames oldpath to newpath unless newpath exists, in which case
// the error matches fs.ErrExist.
func renameNoReplace(oldpath, newpath string) error { return linkNoReplace(oldpath, newpath) }
