package imager

import (
	"errors"
	"io"

	"cairn/internal/fs"
	"cairn/internal/fs/ext"
	"cairn/internal/fs/fat"
	"cairn/internal/fs/ntfs"
	"cairn/internal/fs/swap"
)

// probes are the filesystems whose used blocks the imager knows, tried in order.
var probes = []func(io.ReaderAt, int64) (*fs.Allocation, error){
	ext.Probe, ntfs.Probe, fat.Probe, swap.Probe,
}

// probe returns the allocation of the filesystem on r, or nil when none is
// recognised. A filesystem that is recognised but damaged is an error.
func probe(r io.ReaderAt, size int64) (*fs.Allocation, error) {
	for _, p := range probes {
		a, err := p(r, size)
		if errors.Is(err, fs.ErrUnknown) {
			continue
		}
		if err != nil {
			return nil, err
		}
		return a, nil
	}
	return nil, nil
}
