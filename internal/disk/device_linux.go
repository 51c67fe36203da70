package disk

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"
)

func open(path string, write bool) (*Device, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return nil, &os.PathError{Op: "stat", Path: path, Err: err}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFBLK {
		return openFile(path, write)
	}
	flag := os.O_RDONLY
	if write {
		flag = os.O_RDWR | unix.O_EXCL
	}
	f, err := os.OpenFile(path, flag, 0)
	if errors.Is(err, unix.EBUSY) {
		return nil, fmt.Errorf("%s is in use (mounted, or held by another device such as LVM or RAID): %w", path, err)
	}
	if err != nil {
		return nil, err
	}
	d := &Device{Path: path, IsBlockDevice: true, f: f, writable: write}
	var size uint64
	if _, _, e := unix.Syscall(unix.SYS_IOCTL, f.Fd(), unix.BLKGETSIZE64, uintptr(unsafe.Pointer(&size))); e != 0 {
		f.Close()
		return nil, fmt.Errorf("%s: BLKGETSIZE64: %w", path, e)
	}
	if d.SectorSize, err = unix.IoctlGetInt(int(f.Fd()), unix.BLKSSZGET); err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: BLKSSZGET: %w", path, err)
	}
	d.Size = int64(size)
	d.Model, d.Serial = identify(st.Rdev)
	return d, nil
}

// sysfsDir returns the /sys directory of the block device numbered rdev.
func sysfsDir(rdev uint64) (string, error) {
	return filepath.EvalSymlinks(fmt.Sprintf("/sys/dev/block/%d:%d", unix.Major(rdev), unix.Minor(rdev)))
}

func readTrim(path string) string {
	b, _ := os.ReadFile(path)
	return strings.TrimSpace(string(b))
}

// identify finds the model and serial number of the disk numbered rdev (or
// of the disk a partition rdev lies on): from sysfs (SCSI/ATA, NVMe, virtio),
// then udev's database, then the names in /dev/disk/by-id.
func identify(rdev uint64) (model, serial string) {
	dir, err := sysfsDir(rdev)
	if err != nil {
		return "", ""
	}
	if _, err := os.Stat(filepath.Join(dir, "partition")); err == nil {
		dir = filepath.Dir(dir)
	}
	model = readTrim(filepath.Join(dir, "device", "model"))
	serial = readTrim(filepath.Join(dir, "device", "serial"))
	if serial == "" {
		serial = readTrim(filepath.Join(dir, "serial")) // virtio
	}
	if serial == "" {
		// SCSI VPD page 0x80: a 4-byte header, then the serial's length at byte 3.
		if b, _ := os.ReadFile(filepath.Join(dir, "device", "vpd_pg80")); len(b) > 4 {
			serial = strings.TrimSpace(string(b[4:min(len(b), 4+int(b[3]))]))
		}
	}
	whole := readTrim(filepath.Join(dir, "dev")) // "8:0"
	if model == "" || serial == "" {
		for _, line := range strings.Split(readTrim("/run/udev/data/b"+whole), "\n") {
			k, v, _ := strings.Cut(strings.TrimPrefix(line, "E:"), "=")
			switch {
			case k == "ID_MODEL" && model == "":
				model = strings.ReplaceAll(v, "_", " ")
			case k == "ID_SERIAL_SHORT" && serial == "":
				serial = v
			}
		}
	}
	if serial == "" {
		// ata-Samsung_SSD_860_EVO_500GB_S3Z1NB0K123456 -> model and serial.
		links, _ := filepath.Glob("/dev/disk/by-id/*")
		for _, l := range links {
			name := filepath.Base(l)
			bus, rest, ok := strings.Cut(name, "-")
			i := strings.LastIndexByte(rest, '_')
			if !ok || i < 0 || strings.Contains(rest, "-part") || (bus != "ata" && bus != "nvme" && bus != "scsi" && bus != "usb") {
				continue
			}
			var st unix.Stat_t
			if unix.Stat(l, &st) != nil || fmt.Sprintf("%d:%d", unix.Major(st.Rdev), unix.Minor(st.Rdev)) != whole {
				continue
			}
			serial = rest[i+1:]
			if model == "" {
				model = strings.ReplaceAll(rest[:i], "_", " ")
			}
			break
		}
	}
	return model, serial
}
