package archiver

import (
	"os"
	"syscall"
)

// openFile opens a file for reading without changing its access time where allowed.
func openFile(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOATIME|syscall.O_NOFOLLOW, 0)
	if err == nil {
		return f, nil
	}
	return os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
}

// sparse reports whether an open file has fewer blocks allocated than its size
// needs, so that reading it should skip its holes.
func sparse(f *os.File) bool {
	fi, err := f.Stat()
	if err != nil {
		return false
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	return ok && fi.Size() >= 1<<20 && st.Blocks*512 < fi.Size()
}
