//go:build !linux && !windows

package disk

import (
	"fmt"
	"os"
)

func open(path string, write bool) (*Device, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: block devices: %w", path, ErrNotSupported)
	}
	return openFile(path, write)
}
