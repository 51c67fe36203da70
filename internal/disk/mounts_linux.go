package disk

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// MountedPartitions returns the mount points of every filesystem that lives
// on the disk at path: on the device itself, on one of its partitions, on a
// device built on them (device-mapper, md: /sys/class/block/*/holders), or on
// a loop device backed by any of these; "[swap]" for active swap among them.
// For a loop device, loop devices backed by the same file at overlapping
// offsets count too (a partition attached with losetup -o); for a disk image
// file, the loop devices backed by it. The list is sorted; empty means nothing
// is mounted.
func MountedPartitions(path string) ([]string, error) {
	set, err := devicesOn(path)
	if err != nil {
		return nil, err
	}
	mounts, err := readMountinfo()
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	for _, m := range mounts {
		if set[m.dev] || set[blockRdev(m.source)] {
			seen[m.point] = true
		}
	}
	if b, err := os.ReadFile("/proc/swaps"); err == nil {
		for _, line := range strings.Split(string(b), "\n")[1:] {
			if f := strings.Fields(line); len(f) > 0 && set[blockRdev(unescape(f[0]))] {
				seen["[swap]"] = true
			}
		}
	}
	var out []string
	for p := range seen {
		out = append(out, p)
	}
	sort.Strings(out)
	return out, nil
}

// IsMounted reports whether anything on the disk at path is mounted (see
// MountedPartitions).
func IsMounted(path string) (bool, error) {
	m, err := MountedPartitions(path)
	return len(m) > 0, err
}

// Holds reports whether the filesystem holding path lives on the disk dev
// (the device, a partition of it, or a device built on them, as for
// MountedPartitions): restoring onto dev would destroy path. It goes by
// path's st_dev, and for filesystems that report an anonymous one (btrfs) by
// the device its mount names as source.
func Holds(dev, path string) (bool, error) {
	set, err := devicesOn(dev)
	if err != nil {
		return false, err
	}
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return false, &os.PathError{Op: "stat", Path: path, Err: err}
	}
	if set[st.Dev] {
		return true, nil
	}
	mounts, err := readMountinfo()
	if err != nil {
		return false, err
	}
	for _, m := range mounts {
		if m.dev == st.Dev && set[blockRdev(m.source)] {
			return true, nil
		}
	}
	return false, nil
}

// devicesOn returns the numbers of the block devices whose data lies on the
// disk at path (see MountedPartitions).
func devicesOn(path string) (map[uint64]bool, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return nil, &os.PathError{Op: "stat", Path: path, Err: err}
	}
	loops := readLoops()
	set := map[uint64]bool{}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFBLK:
		set[st.Rdev] = true
		for _, me := range loops {
			if me.dev != st.Rdev {
				continue
			}
			for _, l := range loops {
				if l.backing == me.backing && l.overlaps(me) {
					set[l.dev] = true
				}
			}
		}
	case unix.S_IFREG:
		for _, l := range loops {
			if l.backing == (fileID{st.Dev, st.Ino}) {
				set[l.dev] = true
			}
		}
	default:
		return nil, fmt.Errorf("%s: neither a block device nor a disk image file", path)
	}
	// Add partitions, holders and loop devices backed by what is in the set,
	// until nothing new comes.
	for grew := true; grew; {
		grew = false
		add := func(d uint64) {
			if d != 0 && !set[d] {
				set[d], grew = true, true
			}
		}
		for d := range set {
			dir, err := sysfsDir(d)
			if err != nil {
				continue
			}
			parts, _ := filepath.Glob(filepath.Join(dir, "*", "partition"))
			for _, p := range parts {
				add(devNumber(filepath.Join(filepath.Dir(p), "dev")))
			}
			holders, _ := filepath.Glob(filepath.Join(dir, "holders", "*"))
			for _, h := range holders {
				add(devNumber(filepath.Join("/sys/class/block", filepath.Base(h), "dev")))
			}
		}
		for _, l := range loops {
			if l.backing.dev == 0 && set[l.backing.ino] {
				add(l.dev)
			}
		}
	}
	return set, nil
}

// fileID names a loop device's backing file: st_dev and st_ino of a regular
// file, or 0 and st_rdev of a block device.
type fileID struct{ dev, ino uint64 }

type loopDev struct {
	dev             uint64
	backing         fileID
	offset, sizeLim uint64 // sizeLim 0: to the end
}

func (l loopDev) overlaps(o loopDev) bool {
	end := func(x loopDev) uint64 {
		if x.sizeLim == 0 {
			return ^uint64(0)
		}
		return x.offset + x.sizeLim
	}
	return l.offset < end(o) && o.offset < end(l)
}

// readLoops lists the attached loop devices and what backs them.
func readLoops() []loopDev {
	files, _ := filepath.Glob("/sys/block/loop*/loop/backing_file")
	var out []loopDev
	for _, f := range files {
		dir := filepath.Dir(f)
		var st unix.Stat_t
		if unix.Stat(readTrim(f), &st) != nil { // gone, or "(deleted)"
			continue
		}
		l := loopDev{dev: devNumber(filepath.Join(dir, "..", "dev"))}
		l.offset, _ = strconv.ParseUint(readTrim(filepath.Join(dir, "offset")), 10, 64)
		l.sizeLim, _ = strconv.ParseUint(readTrim(filepath.Join(dir, "sizelimit")), 10, 64)
		if st.Mode&unix.S_IFMT == unix.S_IFBLK {
			l.backing = fileID{0, st.Rdev}
		} else {
			l.backing = fileID{st.Dev, st.Ino}
		}
		out = append(out, l)
	}
	return out
}

// devNumber reads a sysfs "dev" file ("8:1") as a device number; 0 if absent.
func devNumber(path string) uint64 {
	maj, min, ok := strings.Cut(readTrim(path), ":")
	a, err1 := strconv.ParseUint(maj, 10, 32)
	b, err2 := strconv.ParseUint(min, 10, 32)
	if !ok || err1 != nil || err2 != nil {
		return 0
	}
	return unix.Mkdev(uint32(a), uint32(b))
}

// blockRdev returns the device number of the block device at path, or 0.
func blockRdev(path string) uint64 {
	var st unix.Stat_t
	if !strings.HasPrefix(path, "/") || unix.Stat(path, &st) != nil || st.Mode&unix.S_IFMT != unix.S_IFBLK {
		return 0
	}
	return st.Rdev
}

type mount struct {
	dev           uint64 // st_dev of the mounted filesystem
	point, source string
}

// readMountinfo parses /proc/self/mountinfo.
func readMountinfo() ([]mount, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []mount
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		// 36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue
		pre, post, ok := strings.Cut(sc.Text(), " - ")
		f, g := strings.Fields(pre), strings.Fields(post)
		if !ok || len(f) < 5 || len(g) < 2 {
			continue
		}
		maj, min, _ := strings.Cut(f[2], ":")
		a, _ := strconv.ParseUint(maj, 10, 32)
		b, _ := strconv.ParseUint(min, 10, 32)
		out = append(out, mount{dev: unix.Mkdev(uint32(a), uint32(b)), point: unescape(f[4]), source: unescape(g[1])})
	}
	return out, sc.Err()
}

// unescape undoes the octal escapes (\040 for a space) of /proc's tables.
func unescape(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
