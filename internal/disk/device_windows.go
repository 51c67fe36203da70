package disk

import (
	"fmt"
	"os"
	"strings"
	"unsafe"

	"golang.org/x/sys/windows"
)

const (
	ioctlDiskGetLengthInfo      = 0x0007405C // IOCTL_DISK_GET_LENGTH_INFO
	ioctlDiskGetDriveGeometryEx = 0x000700A0 // IOCTL_DISK_GET_DRIVE_GEOMETRY_EX
)

// diskGeometryEx is DISK_GEOMETRY_EX without its variable-length tail.
type diskGeometryEx struct {
	Cylinders         int64
	MediaType         uint32
	TracksPerCylinder uint32
	SectorsPerTrack   uint32
	BytesPerSector    uint32
	DiskSize          int64
	Data              [8]byte
}

// open opens \\.\PhysicalDriveN (or any \\.\ device) or a regular file.
// Reads and writes of a device must be whole sectors at sector offsets.
func open(path string, write bool) (*Device, error) {
	if !strings.HasPrefix(path, `\\.\`) {
		return openFile(path, write)
	}
	access := uint32(windows.GENERIC_READ)
	if write {
		access |= windows.GENERIC_WRITE
	}
	p, err := windows.UTF16PtrFromString(path)
	if err != nil {
		return nil, err
	}
	h, err := windows.CreateFile(p, access, windows.FILE_SHARE_READ|windows.FILE_SHARE_WRITE, nil, windows.OPEN_EXISTING, 0, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	var length int64
	var geo diskGeometryEx
	var n uint32
	if err := windows.DeviceIoControl(h, ioctlDiskGetLengthInfo, nil, 0, (*byte)(unsafe.Pointer(&length)), 8, &n, nil); err != nil {
		_ = windows.CloseHandle(h)
		return nil, fmt.Errorf("%s: IOCTL_DISK_GET_LENGTH_INFO: %w", path, err)
	}
	if err := windows.DeviceIoControl(h, ioctlDiskGetDriveGeometryEx, nil, 0, (*byte)(unsafe.Pointer(&geo)), uint32(unsafe.Sizeof(geo)), &n, nil); err != nil {
		_ = windows.CloseHandle(h)
		return nil, fmt.Errorf("%s: IOCTL_DISK_GET_DRIVE_GEOMETRY_EX: %w", path, err)
	}
	ss := int(geo.BytesPerSector)
	if ss == 0 {
		ss = 512
	}
	return &Device{Path: path, Size: length, SectorSize: ss, IsBlockDevice: true, f: os.NewFile(uintptr(h), path), writable: write}, nil
}
