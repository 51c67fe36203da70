//go:build !linux

package disk

import "fmt"

// MountedPartitions returns where the disk at path or anything on it is
// mounted; on this platform it is not supported yet.
func MountedPartitions(path string) ([]string, error) {
	return nil, fmt.Errorf("mounted partitions of %s: %w", path, ErrNotSupported)
}

// IsMounted reports whether anything on the disk at path is mounted; on this
// platform it is not supported yet.
func IsMounted(path string) (bool, error) {
	_, err := MountedPartitions(path)
	return false, err
}

// Holds reports whether the filesystem holding path lives on the disk dev; on
// this platform it is not supported yet.
func Holds(dev, path string) (bool, error) {
	return false, fmt.Errorf("which disk holds %s: %w", path, ErrNotSupported)
}
