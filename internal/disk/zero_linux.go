package disk

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// Zero makes n bytes at off read as zeros: a hole punched in a file, BLKZEROOUT
// on a block device (which the device may do without writing), or written zeros
// where neither works.
func (d *Device) Zero(off, n int64) error {
	if !d.writable {
		return fmt.Errorf("%s: opened read-only", d.Path)
	}
	if off < 0 || n < 0 || off+n > d.Size {
		return fmt.Errorf("%s: zero %d-%d beyond the end (%d bytes)", d.Path, off, off+n, d.Size)
	}
	if n == 0 {
		return nil
	}
	fd := int(d.f.Fd())
	if d.IsBlockDevice {
		ss := int64(d.SectorSize)
		if off%ss == 0 && n%ss == 0 {
			r := [2]uint64{uint64(off), uint64(n)}
			if err := ioctlRange(fd, unix.BLKZEROOUT, &r); err == nil {
				return nil
			}
		}
	} else if unix.Fallocate(fd, unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, off, n) == nil {
		return nil
	}
	return d.writeZeros(off, n)
}
