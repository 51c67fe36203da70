package disk

import (
	"errors"
	"fmt"
	"os"
)

// ErrNotSupported is returned (wrapped) where this platform has no support.
var ErrNotSupported = errors.New("not supported yet on this platform")

// Device is an open disk: a block device (/dev/sda, /dev/nvme0n1p2,
// /dev/loop3, \\.\PhysicalDrive0) or a regular file holding a disk image. It
// is an io.ReaderAt, and an io.WriterAt when opened by OpenWrite. It is safe
// for concurrent ReadAt and WriteAt calls.
type Device struct {
	Path string
	// Size is the device's size in bytes (BLKGETSIZE64, or the file's size).
	Size int64
	// SectorSize is the logical sector size (BLKSSZGET; 512 for files).
	SectorSize    int
	IsBlockDevice bool
	// Model and Serial identify the hardware where it says (empty for files
	// and loop devices). For a partition they are its disk's.
	Model, Serial string

	f        *os.File
	writable bool
}

// Open opens a block device or disk image file for reading.
func Open(path string) (*Device, error) { return open(path, false) }

// OpenWrite opens a block device or disk image file for reading and writing.
// On Linux a block device is opened exclusively (O_EXCL), so one that is
// mounted, or has a mounted partition, or is held by device-mapper, md or the
// like, cannot be opened: the error says it is in use. Writes must lie inside
// Size: to restore into a new image file, create it at its size first.
func OpenWrite(path string) (*Device, error) { return open(path, true) }

// openFile opens a regular file as a Device.
func openFile(path string, write bool) (*Device, error) {
	flag := os.O_RDONLY
	if write {
		flag = os.O_RDWR
	}
	f, err := os.OpenFile(path, flag, 0)
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, fmt.Errorf("%s: neither a block device nor a disk image file", path)
	}
	return &Device{Path: path, Size: fi.Size(), SectorSize: 512, f: f, writable: write}, nil
}

// ReadAt reads len(p) bytes at off, as io.ReaderAt says.
func (d *Device) ReadAt(p []byte, off int64) (int, error) { return d.f.ReadAt(p, off) }

// WriteAt writes p at off. It fails on a Device opened by Open, and for
// bytes beyond Size.
func (d *Device) WriteAt(p []byte, off int64) (int, error) {
	if !d.writable {
		return 0, fmt.Errorf("%s: opened read-only", d.Path)
	}
	if off < 0 || off+int64(len(p)) > d.Size {
		return 0, fmt.Errorf("%s: write at %d-%d beyond the end (%d bytes)", d.Path, off, off+int64(len(p)), d.Size)
	}
	return d.f.WriteAt(p, off)
}

// Sync flushes written data to the device.
func (d *Device) Sync() error { return d.f.Sync() }

// Close closes the device.
func (d *Device) Close() error { return d.f.Close() }
