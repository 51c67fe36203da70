//go:build linux

// Package disktest builds real disks for tests: image files with GPT or MBR tables
// (sgdisk, sfdisk), real filesystems made by mkfs on loop devices attached to each
// partition, filled with real files. Free space is random, not zero, as on a used
// disk. It needs root and the tools .ci/run installs.
package disktest

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// MiB is a mebibyte.
const MiB = 1 << 20

// Partition describes one partition to make.
type Partition struct {
	Size  int64  // bytes; a multiple of 1 MiB
	Type  string // sgdisk type code ("ef00", "8300", "0700", "2700") or MBR type ("c", "83", "6")
	Name  string // GPT partition name
	FS    string // "ext2", "ext3", "ext4", "fat16", "fat32", "ntfs", "swap" or "" (left random)
	Label string
	// Fill copies files into the new filesystem: called with its mount point.
	Fill func(t testing.TB, mnt string)
}

// Disk is a disk image file with its layout.
type Disk struct {
	Path  string
	Size  int64
	Parts []Placed
}

// Placed is a partition with its place on the disk.
type Placed struct {
	Partition
	Number int
	Start  int64
}

// Run runs a command and fails the test with its output on error.
func Run(t testing.TB, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// RandomFile makes a file of size random bytes (the content of a used disk's free space).
func RandomFile(t testing.TB, path string, size int64) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := io.CopyN(f, rand.Reader, size); err != nil {
		t.Fatal(err)
	}
}

// MakeGPT makes a disk image of size bytes at path with a GPT holding parts in order,
// the first starting at 1 MiB, and makes and fills their filesystems.
func MakeGPT(t testing.TB, path string, size int64, parts []Partition) *Disk {
	t.Helper()
	RandomFile(t, path, size)
	args := []string{"-o"}
	d := &Disk{Path: path, Size: size}
	start := int64(MiB)
	for i, p := range parts {
		n := i + 1
		args = append(args, fmt.Sprintf("-n%d:%d:%d", n, start/512, (start+p.Size)/512-1), fmt.Sprintf("-t%d:%s", n, p.Type))
		if p.Name != "" {
			args = append(args, fmt.Sprintf("-c%d:%s", n, p.Name))
		}
		d.Parts = append(d.Parts, Placed{Partition: p, Number: n, Start: start})
		start += p.Size
	}
	Run(t, "sgdisk", append(args, path)...)
	d.format(t)
	return d
}

// MakeMBR makes a disk image with an MBR holding parts as primary partitions.
func MakeMBR(t testing.TB, path string, size int64, parts []Partition) *Disk {
	t.Helper()
	RandomFile(t, path, size)
	var script bytes.Buffer
	script.WriteString("label: dos\n")
	d := &Disk{Path: path, Size: size}
	start := int64(MiB)
	for i, p := range parts {
		fmt.Fprintf(&script, "start=%d, size=%d, type=%s\n", start/512, p.Size/512, p.Type)
		d.Parts = append(d.Parts, Placed{Partition: p, Number: i + 1, Start: start})
		start += p.Size
	}
	cmd := exec.Command("sfdisk", "-q", path)
	cmd.Stdin = &script
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("sfdisk: %v\n%s", err, out)
	}
	d.format(t)
	return d
}

func (d *Disk) format(t testing.TB) {
	t.Helper()
	for _, p := range d.Parts {
		if p.FS == "" {
			continue
		}
		loop := AttachPartition(t, d.Path, p.Start, p.Size)
		MakeFS(t, loop, p.FS, p.Label)
		if p.Fill != nil {
			mnt := Mount(t, loop, p.FS, false)
			p.Fill(t, mnt)
			Unmount(t, mnt)
		}
		Detach(t, loop)
	}
}

// MakeFS makes a filesystem of type fs on dev without discarding its blocks.
func MakeFS(t testing.TB, dev, fs, label string) {
	t.Helper()
	switch fs {
	case "ext2", "ext3", "ext4":
		args := []string{"-q", "-F", "-E", "nodiscard", "-t", fs}
		if label != "" {
			args = append(args, "-L", label)
		}
		Run(t, "mkfs."+fs, append(args, dev)...)
	case "fat16", "fat32":
		args := []string{"-F", strings.TrimPrefix(fs, "fat")}
		if label != "" {
			args = append(args, "-n", label)
		}
		Run(t, "mkfs.vfat", append(args, dev)...)
	case "ntfs":
		args := []string{"-F", "-Q", "-q"}
		if label != "" {
			args = append(args, "-L", label)
		}
		Run(t, "mkntfs", append(args, dev)...)
	case "swap":
		args := []string{}
		if label != "" {
			args = append(args, "-L", label)
		}
		Run(t, "mkswap", append(args, dev)...)
	default:
		t.Fatalf("disktest: unknown filesystem %q", fs)
	}
}

// AttachPartition attaches bytes [start, start+size) of image to a loop device (this
// machine's loop devices show no partitions of their own) and detaches it when the
// test ends if the test has not.
func AttachPartition(t testing.TB, image string, start, size int64) string {
	t.Helper()
	dev := strings.TrimSpace(Run(t, "losetup", "-f", "--show", "-o", fmt.Sprint(start), "--sizelimit", fmt.Sprint(size), image))
	t.Cleanup(func() { _ = exec.Command("losetup", "-d", dev).Run() })
	return dev
}

// Attach attaches a whole image to a loop device.
func Attach(t testing.TB, image string) string {
	t.Helper()
	dev := strings.TrimSpace(Run(t, "losetup", "-f", "--show", image))
	t.Cleanup(func() { _ = exec.Command("losetup", "-d", dev).Run() })
	return dev
}

// Detach detaches a loop device.
func Detach(t testing.TB, dev string) {
	t.Helper()
	Run(t, "losetup", "-d", dev)
}

// Mount mounts dev (a filesystem of type fs) on a new temporary folder.
func Mount(t testing.TB, dev, fs string, readOnly bool) string {
	t.Helper()
	mnt, err := os.MkdirTemp("", "disktest-mnt-")
	if err != nil {
		t.Fatal(err)
	}
	opts := "rw"
	if readOnly {
		opts = "ro"
	}
	switch fs {
	case "ntfs":
		Run(t, "mount", "-t", "ntfs-3g", "-o", opts, dev, mnt)
	case "fat16", "fat32":
		Run(t, "mount", "-t", "vfat", "-o", opts, dev, mnt)
	default:
		Run(t, "mount", "-o", opts, dev, mnt)
	}
	t.Cleanup(func() {
		if exec.Command("mountpoint", "-q", mnt).Run() == nil {
			_ = exec.Command("umount", mnt).Run()
		}
		os.Remove(mnt)
	})
	return mnt
}

// Unmount unmounts mnt.
func Unmount(t testing.TB, mnt string) {
	t.Helper()
	Run(t, "umount", mnt)
}

// CopyTree copies src into dst with cp -a (or plain cp -r for filesystems that keep
// no owners or links, when plain is set).
func CopyTree(t testing.TB, src, dst string, plain bool) {
	t.Helper()
	if plain {
		Run(t, "cp", "-rL", "--no-preserve=all", src+"/.", dst)
		return
	}
	Run(t, "cp", "-a", src+"/.", dst)
}

// SfdiskJSON returns sfdisk's view of an image's table.
func SfdiskJSON(t testing.TB, path string) map[string]any {
	t.Helper()
	var v map[string]any
	if err := json.Unmarshal([]byte(Run(t, "sfdisk", "--json", path)), &v); err != nil {
		t.Fatal(err)
	}
	return v["partitiontable"].(map[string]any)
}

// Fsck checks the filesystem on dev with the filesystem's own tool, read-only.
func Fsck(t testing.TB, dev, fs string) {
	t.Helper()
	switch fs {
	case "ext2", "ext3", "ext4":
		Run(t, "e2fsck", "-fn", dev)
	case "fat16", "fat32":
		Run(t, "fsck.vfat", "-n", dev)
	case "ntfs":
		Run(t, "ntfsfix", "-n", dev)
	}
}

// UsrDir returns a folder of real files from /usr of about the given size, for
// filling filesystems: a subfolder of /usr/share/doc and friends.
func UsrDir(t testing.TB, dst string, maxBytes int64) {
	t.Helper()
	var total int64
	_ = filepath.Walk("/usr/share/doc", func(p string, fi os.FileInfo, err error) error {
		if err != nil || total > maxBytes {
			return filepath.SkipDir
		}
		rel, _ := filepath.Rel("/usr/share/doc", p)
		target := filepath.Join(dst, rel)
		switch {
		case fi.IsDir():
			return os.MkdirAll(target, 0o755)
		case fi.Mode().IsRegular():
			b, err := os.ReadFile(p)
			if err != nil {
				return nil
			}
			total += int64(len(b))
			return os.WriteFile(target, b, 0o644)
		}
		return nil
	})
}
