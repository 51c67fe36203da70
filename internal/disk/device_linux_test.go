package disk

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// needRoot skips tests that attach loop devices or mount when not root.
func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	needTools(t, "losetup")
}

// attach attaches a loop device (losetup -f --show ARGS...), detached when
// the test ends.
func attach(t *testing.T, args ...string) string {
	t.Helper()
	dev := strings.TrimSpace(run(t, "", "losetup", append([]string{"-f", "--show"}, args...)...))
	t.Cleanup(func() { exec.Command("losetup", "-d", dev).Run() })
	return dev
}

// mountDev mounts dev on a new folder, unmounted when the test ends (or by
// calling the returned func).
func mountDev(t *testing.T, dev string) (dir string, umount func()) {
	t.Helper()
	dir = t.TempDir()
	run(t, "", "mount", dev, dir)
	done := false
	umount = func() {
		if !done {
			done = true
			run(t, "", "umount", dir)
		}
	}
	t.Cleanup(umount)
	return dir, umount
}

func TestOpenFile(t *testing.T) {
	img := sparseFile(t, t.TempDir(), "disk.img", 64*mib)
	d, err := Open(img)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if d.Size != 64*mib || d.SectorSize != 512 || d.IsBlockDevice || d.Model != "" || d.Serial != "" {
		t.Errorf("%+v", d)
	}
	if _, err := d.WriteAt([]byte("x"), 0); err == nil {
		t.Error("write through Open succeeded")
	}

	w, err := OpenWrite(img)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if _, err := w.WriteAt([]byte("cairn"), 64*mib-5); err != nil {
		t.Fatal(err)
	}
	if _, err := w.WriteAt([]byte("cairn"), 64*mib-4); err == nil {
		t.Error("write past the end succeeded")
	}
	b := make([]byte, 5)
	if _, err := d.ReadAt(b, 64*mib-5); err != nil || string(b) != "cairn" {
		t.Errorf("read %q, %v", b, err)
	}
	if _, err := Open(t.TempDir()); err == nil {
		t.Error("opened a folder")
	}
}

func TestOpenLoop(t *testing.T) {
	needRoot(t)
	img := makeGPT(t, t.TempDir())
	dev := attach(t, img)
	d, err := Open(dev)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if d.Size != 256*mib || d.SectorSize != 512 || !d.IsBlockDevice || d.Model != "" || d.Serial != "" {
		t.Errorf("%+v", d)
	}
	tab, err := ReadTable(d, d.Size, d.SectorSize)
	if err != nil {
		t.Fatal(err)
	}
	if want := readTableFile(t, img); !slices.Equal(tab.Partitions, want.Partitions) {
		t.Errorf("table through the loop device differs: %+v", tab.Partitions)
	}
}

// TestGPT4K reads a GPT made on a disk of 4096-byte sectors.
func TestGPT4K(t *testing.T) {
	needRoot(t)
	needTools(t, "sgdisk")
	img := sparseFile(t, t.TempDir(), "4k.img", 256*mib)
	dev := attach(t, "--sector-size", "4096", img)
	run(t, "", "sgdisk", "-n1:1M:+64M", "-t1:ef00", "-n2:0:0", "-t2:8300", dev)
	d, err := Open(dev)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if d.SectorSize != 4096 {
		t.Fatalf("sector size %d", d.SectorSize)
	}
	tab, err := ReadTable(d, d.Size, d.SectorSize)
	if err != nil {
		t.Fatal(err)
	}
	checkAgainstSfdisk(t, tab, dev)
	// The file, with the sector size guessed.
	f, err := Open(img)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if ft, err := ReadTable(f, f.Size, 0); err != nil || ft.SectorSize != 4096 || !slices.Equal(ft.Partitions, tab.Partitions) {
		t.Errorf("read from the file: %v %+v", err, ft)
	}
}

// TestMounted mounts a partition of a loop device (attached by losetup -o on
// the disk's loop device, and on the image file) and asks what is mounted.
func TestMounted(t *testing.T) {
	needRoot(t)
	needTools(t, "mkfs.ext4", "mount")
	for _, onFile := range []bool{false, true} {
		name := map[bool]string{false: "on the loop device", true: "on the image file"}[onFile]
		t.Run(name, func(t *testing.T) {
			img := makeGPT(t, t.TempDir())
			tab := readTableFile(t, img)
			p := tab.partition(2)
			disk := attach(t, img)
			backing := disk
			if onFile {
				backing = img
			}
			part := attach(t, "-o", itoa(p.Start), "--sizelimit", itoa(p.Size), backing)
			run(t, "", "mkfs.ext4", "-q", "-E", "nodiscard", part)
			for _, path := range []string{disk, img, part} {
				if m, err := IsMounted(path); err != nil || m {
					t.Errorf("IsMounted(%s) before mounting = %v, %v", path, m, err)
				}
			}

			dir, umount := mountDev(t, part)
			if err := os.WriteFile(filepath.Join(dir, "f"), []byte("x"), 0o644); err != nil {
				t.Fatal(err)
			}
			for _, path := range []string{disk, img, part} {
				if m, err := MountedPartitions(path); err != nil || !slices.Equal(m, []string{dir}) {
					t.Errorf("MountedPartitions(%s) = %q, %v; want %s", path, m, err, dir)
				}
				if h, err := Holds(path, filepath.Join(dir, "f")); err != nil || !h {
					t.Errorf("Holds(%s, file on it) = %v, %v", path, h, err)
				}
				if h, err := Holds(path, "/"); err != nil || h {
					t.Errorf("Holds(%s, /) = %v, %v", path, h, err)
				}
			}
			if _, err := OpenWrite(part); err == nil || !strings.Contains(err.Error(), "in use") {
				t.Errorf("OpenWrite of a mounted device: %v", err)
			}

			umount()
			for _, path := range []string{disk, img, part} {
				if m, err := IsMounted(path); err != nil || m {
					t.Errorf("IsMounted(%s) after umount = %v, %v", path, m, err)
				}
			}
			w, err := OpenWrite(part)
			if err != nil {
				t.Fatal(err)
			}
			w.Close()
		})
	}
}

// TestNotMountedElsewhere checks that an unrelated loop device is not seen
// as holding the root filesystem, and that a missing path is an error.
func TestNotMountedElsewhere(t *testing.T) {
	needRoot(t)
	dev := attach(t, sparseFile(t, t.TempDir(), "other.img", 64*mib))
	if h, err := Holds(dev, "/"); err != nil || h {
		t.Errorf("Holds(%s, /) = %v, %v", dev, h, err)
	}
	if _, err := IsMounted("/nonexistent/disk"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing device: %v", err)
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// TestMountedThroughHolders mounts a filesystem on a device-mapper device
// built on part of a loop device (skipped where the kernel has no
// device-mapper).
func TestMountedThroughHolders(t *testing.T) {
	needRoot(t)
	needTools(t, "dmsetup", "mkfs.ext4")
	img := makeGPT(t, t.TempDir())
	tab := readTableFile(t, img)
	disk := attach(t, img)
	p := tab.partition(2)
	name := "cairn-disk-test-" + strconv.Itoa(os.Getpid())
	table := itoa(p.Size/512) + " linear " + disk + " " + itoa(p.Start/512)
	if out, err := exec.Command("dmsetup", "create", name, "--table", table).CombinedOutput(); err != nil {
		t.Skipf("no device-mapper here: %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command("dmsetup", "remove", "--retry", name).Run() })
	dm := "/dev/mapper/" + name
	exec.Command("udevadm", "settle").Run()
	if _, err := os.Stat(dm); err != nil {
		t.Skipf("no %s: %v", dm, err)
	}
	run(t, "", "mkfs.ext4", "-q", dm)
	dir, _ := mountDev(t, dm)
	if m, err := MountedPartitions(disk); err != nil || !slices.Equal(m, []string{dir}) {
		t.Errorf("MountedPartitions(%s) = %q, %v; want %s", disk, m, err, dir)
	}
	if h, err := Holds(disk, dir); err != nil || !h {
		t.Errorf("Holds(%s, %s) = %v, %v", disk, dir, h, err)
	}
}

// TestSwapInUse turns a partition into active swap.
func TestSwapInUse(t *testing.T) {
	needRoot(t)
	needTools(t, "mkswap", "swapon", "swapoff")
	img := makeGPT(t, t.TempDir())
	q := readTableFile(t, img).partition(3)
	disk := attach(t, img)
	swap := attach(t, "-o", itoa(q.Start), "--sizelimit", itoa(q.Size), disk)
	run(t, "", "mkswap", swap)
	if out, err := exec.Command("swapon", swap).CombinedOutput(); err != nil {
		t.Skipf("swapon: %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command("swapoff", swap).Run() })
	if m, err := MountedPartitions(disk); err != nil || !slices.Equal(m, []string{"[swap]"}) {
		t.Errorf("MountedPartitions(%s) with swap on = %q, %v", disk, m, err)
	}
}
