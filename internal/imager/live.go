package imager

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"strings"

	"cairn/internal/disk"
)

// LiveOptions say how to image a disk whose filesystems are mounted read-write.
type LiveOptions struct {
	// Snapshot "lvm" images an LVM logical volume through a snapshot of it.
	Snapshot string
	// Freeze freezes the mounted filesystems (fsfreeze) for the duration.
	Freeze bool
	// Force images them as they are: the image is only crash-consistent.
	Force bool
}

// LiveSource is a source made safe to read; Release undoes what PrepareSource did.
type LiveSource struct {
	// Path is what to read: the source itself or a snapshot of it.
	Path    string
	release []func() error
}

// Release removes snapshots and thaws frozen filesystems, in reverse order.
func (l *LiveSource) Release() error {
	var first error
	for i := len(l.release) - 1; i >= 0; i-- {
		if err := l.release[i](); err != nil && first == nil {
			first = err
		}
	}
	l.release = nil
	return first
}

// PrepareSource checks whether src (or a partition of it) is mounted read-write and
// then, as opts allow, snapshots it, freezes it, or goes on with a warning; without
// any of them such a source is an error.
func PrepareSource(src string, opts LiveOptions, warn func(path, msg string)) (*LiveSource, error) {
	l := &LiveSource{Path: src}
	fi, err := os.Stat(src)
	if err != nil {
		return nil, err
	}
	if fi.Mode()&os.ModeDevice == 0 {
		return l, nil // a disk image file
	}
	mounts, err := disk.MountedPartitions(src)
	if err != nil {
		return nil, err
	}
	rw := readWrite(mounts)
	if len(rw) == 0 {
		return l, nil
	}
	switch {
	case opts.Snapshot == "lvm":
		snap, err := lvmSnapshot(src)
		if err != nil {
			return nil, err
		}
		l.Path = snap
		l.release = append(l.release, func() error { return run("lvremove", "-f", snap) })
	case opts.Freeze:
		for _, m := range rw {
			if err := run("fsfreeze", "-f", m); err != nil {
				if rerr := l.Release(); rerr != nil {
					return nil, fmt.Errorf("%w (and thawing failed: %v)", err, rerr)
				}
				return nil, err
			}
			l.release = append(l.release, func() error { return run("fsfreeze", "-u", m) })
		}
	case opts.Force:
		warn(src, fmt.Sprintf("mounted read-write at %s: the image is only crash-consistent", strings.Join(rw, ", ")))
	default:
		return nil, fmt.Errorf("%s is mounted read-write at %s: use --snapshot lvm, --freeze or --force", src, strings.Join(rw, ", "))
	}
	return l, nil
}

// readWrite returns the mount points among mounts that are mounted read-write.
func readWrite(mounts []string) []string {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return mounts // cannot tell: treat all as read-write
	}
	defer f.Close()
	rw := map[string]bool{}
	s := bufio.NewScanner(f)
	for s.Scan() {
		fields := strings.Fields(s.Text())
		if len(fields) < 6 {
			continue
		}
		for _, opt := range strings.Split(fields[5], ",") {
			if opt == "rw" {
				rw[unescapeMount(fields[4])] = true
			}
		}
	}
	var out []string
	for _, m := range mounts {
		if rw[m] {
			out = append(out, m)
		}
	}
	return out
}

// unescapeMount undoes the octal escapes of /proc mount fields ("\040" is a space).
func unescapeMount(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			var c int
			if _, err := fmt.Sscanf(s[i+1:i+4], "%03o", &c); err == nil {
				b.WriteByte(byte(c))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// lvmSnapshot makes a snapshot of the logical volume src and returns its device.
func lvmSnapshot(src string) (string, error) {
	out, err := exec.Command("lvs", "--noheadings", "-o", "vg_name,lv_name", src).Output()
	if err != nil {
		return "", fmt.Errorf("%s is not an LVM logical volume (lvs: %v)", src, err)
	}
	f := strings.Fields(string(out))
	if len(f) != 2 {
		return "", fmt.Errorf("%s is not an LVM logical volume", src)
	}
	name := fmt.Sprintf("cairn-snap-%d", os.Getpid())
	if err := run("lvcreate", "-q", "-s", "-n", name, "-l", "100%FREE", f[0]+"/"+f[1]); err != nil {
		return "", err
	}
	return "/dev/" + f[0] + "/" + name, nil
}

func run(name string, args ...string) error {
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}
