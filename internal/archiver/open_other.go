//go:build !linux

package archiver

import "os"

func openFile(path string) (*os.File, error) { return os.Open(path) }

func sparse(f *os.File) bool { return false }
