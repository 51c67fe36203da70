//go:build linux

package main

import (
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"cairn/internal/disktest"
	"cairn/internal/fs"
	"cairn/internal/fs/ext"
	"cairn/internal/fs/fat"
	"cairn/internal/fs/ntfs"
	"cairn/internal/fs/swap"
	"cairn/internal/treetest"
)

const mib = disktest.MiB

// gptDisk makes the GPT test disk of the issue: a FAT32 EFI partition, an ext4 root
// with a real tree, an NTFS data partition, an unformatted one, and a Windows
// recovery partition at the end. It returns the disk and the trees put in.
func gptDisk(t *testing.T, dir string) (*disktest.Disk, string) {
	t.Helper()
	tree := filepath.Join(dir, "tree")
	disktest.UsrDir(t, filepath.Join(tree, "doc"), 24*mib)
	disktest.RandomFile(t, filepath.Join(tree, "random.bin"), 8*mib)
	fill := func(plain bool) func(testing.TB, string) {
		return func(t testing.TB, mnt string) { disktest.CopyTree(t, tree, mnt, plain) }
	}
	d := disktest.MakeGPT(t, filepath.Join(dir, "disk.img"), 320*mib, []disktest.Partition{
		{Size: 64 * mib, Type: "ef00", Name: "EFI system", FS: "fat32", Label: "EFI"},
		{Size: 160 * mib, Type: "8300", Name: "root", FS: "ext4", Label: "rootfs", Fill: fill(false)},
		{Size: 64 * mib, Type: "0700", Name: "data", FS: "ntfs", Label: "DATA", Fill: fill(true)},
		{Size: 16 * mib, Type: "8300", Name: "raw"},
		{Size: 14 * mib, Type: "2700", Name: "recovery", FS: "ntfs", Label: "Recovery"},
	})
	return d, tree
}

// tableOf returns sfdisk's view of a disk's table without the file's own name.
func tableOf(t *testing.T, path string) string {
	t.Helper()
	tab := disktest.SfdiskJSON(t, path)
	delete(tab, "device")
	for _, p := range tab["partitions"].([]any) {
		delete(p.(map[string]any), "node")
	}
	return fmt.Sprint(tab)
}

// usedBytesDiffer compares, between two disks, every extent the filesystem of the
// partition at start says it uses, and returns how many extents differ. The one
// exception is what the filesystem says it does not need (the log of an ext3/4
// journal that is empty): an image does not store it, so on the restored disk b
// it must read as zeros.
func usedBytesDiffer(t *testing.T, a, b string, start, size int64) int {
	t.Helper()
	f, err := os.Open(a)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var alloc *fs.Allocation
	for _, probe := range []func(io.ReaderAt, int64) (*fs.Allocation, error){ext.Probe, fat.Probe, ntfs.Probe, swap.Probe} {
		if alloc, err = probe(io.NewSectionReader(f, start, size), size); err == nil {
			break
		}
	}
	if alloc == nil {
		t.Fatalf("no filesystem recognised at %d: %v", start, err)
	}
	differ := 0
	for _, e := range alloc.Stored() {
		if !sameBytes(t, a, b, start+e.Off, e.Len) {
			differ++
		}
	}
	for _, e := range alloc.Unneeded {
		if sha(t, b, start+e.Off, e.Len) != sha256.Sum256(make([]byte, e.Len)) {
			t.Errorf("unneeded bytes %d+%d of the partition at %d are not zeros", e.Off, e.Len, start)
			differ++
		}
	}
	return differ
}

// openFile opens path for reading until the end of the test.
func openFile(t *testing.T, path string) *os.File {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

func sha(t *testing.T, path string, off, n int64) [32]byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, io.NewSectionReader(f, off, n)); err != nil {
		t.Fatal(err)
	}
	var s [32]byte
	copy(s[:], h.Sum(nil))
	return s
}

// sameBytes reports whether two files hold the same bytes in [off, off+n).
func sameBytes(t *testing.T, a, b string, off, n int64) bool {
	return sha(t, a, off, n) == sha(t, b, off, n)
}

// checkPartitions runs each filesystem's own checker on the restored disk, compares
// the mounted ext and NTFS trees with the original ones file by file with
// metadata, every used block byte for byte but an empty ext journal's log (zeros),
// and unformatted partitions byte for byte.
func checkPartitions(t *testing.T, d *disktest.Disk, restored string, tree string) {
	t.Helper()
	for _, p := range d.Parts {
		if p.FS == "" {
			if !sameBytes(t, d.Path, restored, p.Start, p.Size) {
				t.Errorf("unformatted partition %d differs", p.Number)
			}
			continue
		}
		if n := usedBytesDiffer(t, d.Path, restored, p.Start, p.Size); n != 0 {
			t.Errorf("partition %d (%s): %d used blocks differ", p.Number, p.FS, n)
		}
		if p.FS == "ext3" || p.FS == "ext4" {
			// Unmounted cleanly, the journal is empty: the exception above
			// is exercised, and the restored journal's zeros pass fsck.
			a, err := ext.Probe(io.NewSectionReader(openFile(t, d.Path), p.Start, p.Size), p.Size)
			if err != nil || len(a.Unneeded) == 0 {
				t.Errorf("partition %d (%s): no empty journal to leave out (%v)", p.Number, p.FS, err)
			}
		}
		loop := disktest.AttachPartition(t, restored, p.Start, p.Size)
		disktest.Fsck(t, loop, p.FS)
		if strings.HasPrefix(p.FS, "ext") || p.FS == "ntfs" {
			mnt := disktest.Mount(t, loop, p.FS, true)
			orig := disktest.Mount(t, disktest.AttachPartition(t, d.Path, p.Start, p.Size), p.FS, true)
			treetest.RequireEqual(t, orig, mnt, treetest.CompareOptions{IgnoreATime: true})
			disktest.Unmount(t, mnt)
			disktest.Unmount(t, orig)
		}
		disktest.Detach(t, loop)
	}
}

func TestImageGPTDiskRoundTrip(t *testing.T) {
	e := newEnv(t)
	d, tree := gptDisk(t, e.dir)
	e.must("init")
	s := summary(t, e.must("image", "create", "--json", d.Path))
	if s["disk_size"].(float64) != float64(d.Size) {
		t.Fatalf("summary: %v", s)
	}
	// Only what the filesystems use is read: far less than the disk.
	if read := s["bytes_read"].(float64); read > 0.6*float64(d.Size) {
		t.Errorf("read %v bytes of a %d-byte disk with mostly free space", read, d.Size)
	}
	if got := repoSize(t, e.repo); got > d.Size/2 {
		t.Errorf("repository holds %d bytes for a %d-byte disk", got, d.Size)
	}

	var show map[string]any
	if err := json.Unmarshal([]byte(e.must("image", "show", "--json", "latest")), &show); err != nil {
		t.Fatal(err)
	}
	img := show["image"].(map[string]any)
	if img["table"] != "gpt" || img["whole_disk"] != true {
		t.Fatalf("image show: %v", img)
	}
	want := map[float64][2]string{1: {"fat32", "EFI"}, 2: {"ext4", "rootfs"}, 3: {"ntfs", "DATA"}, 4: {"", ""}, 5: {"ntfs", "Recovery"}}
	for _, r := range img["regions"].([]any) {
		reg := r.(map[string]any)
		p, ok := reg["partition"].(map[string]any)
		if !ok {
			continue
		}
		w := want[p["number"].(float64)]
		fsName, _ := p["fs"].(string)
		label, _ := p["label"].(string)
		if fsName != w[0] || label != w[1] {
			t.Errorf("partition %v: fs %q label %q, want %q %q", p["number"], fsName, label, w[0], w[1])
		}
	}
	text := e.must("image", "show", "latest")
	if !strings.Contains(text, "rootfs") || !strings.Contains(text, "EFI System") {
		t.Errorf("image show text:\n%s", text)
	}
	if list := e.must("snapshots"); !strings.Contains(list, "image") || !strings.Contains(list, d.Path) {
		t.Errorf("snapshots does not list the image:\n%s", list)
	}

	// Restore into a new file: same table, every partition checks, same files.
	out := filepath.Join(e.dir, "restored.img")
	rs := summary(t, e.must("image", "restore", "--json", "latest", out))
	if rs["chunks_verified"].(float64) == 0 {
		t.Errorf("restore verified nothing: %v", rs)
	}
	if !sameBytes(t, d.Path, out, 0, mib) || !sameBytes(t, d.Path, out, d.Size-33*512, 33*512) {
		t.Fatal("partition table or boot area differs")
	}
	if a, b := tableOf(t, d.Path), tableOf(t, out); a != b {
		t.Fatalf("partition tables differ:\n%v\n%v", a, b)
	}
	checkPartitions(t, d, out, tree)
	// Free space restores as zeros (the source's was random), so the files differ
	// only where the filesystems do not look.
	if sameBytes(t, d.Path, out, d.Parts[1].Start, d.Parts[1].Size) {
		t.Errorf("the ext4 partition restored byte for byte: its free space was read")
	}

	// Onto a block device (a loop device over a file of the same size).
	devFile := filepath.Join(e.dir, "device.img")
	disktest.RandomFile(t, devFile, d.Size)
	loop := disktest.Attach(t, devFile)
	e.must("image", "restore", "latest", loop)
	disktest.Detach(t, loop)
	checkPartitions(t, d, devFile, tree)

	e.must("check", "--read-data")
}

func TestImageMBRDiskRoundTrip(t *testing.T) {
	e := newEnv(t)
	tree := filepath.Join(e.dir, "tree")
	disktest.UsrDir(t, tree, 8*mib)
	fill := func(plain bool) func(testing.TB, string) {
		return func(t testing.TB, mnt string) { disktest.CopyTree(t, tree, mnt, plain) }
	}
	d := disktest.MakeMBR(t, filepath.Join(e.dir, "mbr.img"), 128*mib, []disktest.Partition{
		{Size: 48 * mib, Type: "6", FS: "fat16", Label: "BOOT"},
		{Size: 72 * mib, Type: "83", FS: "ext3", Label: "old", Fill: fill(false)},
	})
	e.must("init")
	e.must("image", "create", d.Path)
	out := filepath.Join(e.dir, "restored.img")
	e.must("image", "restore", "latest", out)
	if a, b := tableOf(t, d.Path), tableOf(t, out); a != b {
		t.Fatalf("partition tables differ:\n%v\n%v", a, b)
	}
	checkPartitions(t, d, out, tree)
}

func TestImageRestoreSafety(t *testing.T) {
	e := newEnv(t)
	d := disktest.MakeMBR(t, filepath.Join(e.dir, "small.img"), 64*mib, []disktest.Partition{
		{Size: 60 * mib, Type: "83", FS: "ext4", Label: "x"},
	})
	e.must("init")
	e.must("image", "create", d.Path)

	// Too small: an error, and not one byte written.
	small := filepath.Join(e.dir, "too-small.img")
	disktest.RandomFile(t, small, 32*mib)
	before := sha(t, small, 0, 32*mib)
	r := e.run("image", "restore", "latest", small)
	if r.code != 1 || !strings.Contains(r.stderr, "too small") {
		t.Fatalf("restore onto a smaller target: exit %d, %s", r.code, r.stderr)
	}
	if sha(t, small, 0, 32*mib) != before {
		t.Fatal("a refused restore changed the target")
	}
	// A target with a partition table needs --force.
	other := filepath.Join(e.dir, "other.img")
	disktest.MakeGPT(t, other, 64*mib, []disktest.Partition{{Size: 32 * mib, Type: "8300"}})
	before = sha(t, other, 0, 64*mib)
	r = e.run("image", "restore", "latest", other)
	if r.code != 1 || !strings.Contains(r.stderr, "--force") || sha(t, other, 0, 64*mib) != before {
		t.Fatalf("restore over a partition table without --force: exit %d, %s", r.code, r.stderr)
	}
	e.must("image", "restore", "--force", "latest", other)
	// A mounted target is refused.
	loop := disktest.Attach(t, other)
	part := disktest.AttachPartition(t, loop, d.Parts[0].Start, d.Parts[0].Size)
	mnt := disktest.Mount(t, part, "ext4", false)
	r = e.run("image", "restore", "--force", "latest", loop)
	if r.code != 1 || !strings.Contains(r.stderr, "mounted") {
		t.Fatalf("restore onto a mounted device: exit %d, %s", r.code, r.stderr)
	}
	disktest.Unmount(t, mnt)
	// An image of a mounted read-write filesystem needs a flag.
	mnt = disktest.Mount(t, part, "ext4", false)
	r = e.run("image", "create", loop)
	if r.code != 1 || !strings.Contains(r.stderr, "--snapshot lvm, --freeze or --force") {
		t.Fatalf("image of a mounted disk: exit %d, %s", r.code, r.stderr)
	}
	r = e.run("image", "create", "--force", loop)
	if r.code != 0 || !strings.Contains(r.stderr, "crash-consistent") {
		t.Fatalf("image --force of a mounted disk: exit %d, %s", r.code, r.stderr)
	}
	e.must("image", "create", "--freeze", loop)
	disktest.Unmount(t, mnt)
}

// A second image of a changed disk stores about what changed.
func TestImageIncremental(t *testing.T) {
	e := newEnv(t)
	d := disktest.MakeGPT(t, filepath.Join(e.dir, "disk.img"), 256*mib, []disktest.Partition{
		{Size: 254 * mib, Type: "8300", FS: "ext4", Label: "data", Fill: func(t testing.TB, mnt string) {
			disktest.UsrDir(t, filepath.Join(mnt, "doc"), 40*mib)
			for i := 0; i < 10; i++ {
				disktest.RandomFile(t, filepath.Join(mnt, fmt.Sprintf("big%d", i)), 8*mib)
			}
		}},
	})
	e.must("init")
	e.must("image", "create", d.Path)
	before := repoSize(t, e.repo)

	// Change 6 MiB: rewrite two 2 MiB regions of files and add a 2 MiB file.
	part := disktest.AttachPartition(t, d.Path, d.Parts[0].Start, d.Parts[0].Size)
	mnt := disktest.Mount(t, part, "ext4", false)
	for _, name := range []string{"big3", "big7"} {
		f, err := os.OpenFile(filepath.Join(mnt, name), os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		b := randomData(t, 2*mib)
		if _, err := f.WriteAt(b, 3*mib); err != nil {
			t.Fatal(err)
		}
		f.Close()
	}
	disktest.RandomFile(t, filepath.Join(mnt, "new.bin"), 2*mib)
	disktest.Unmount(t, mnt)
	const changed = 6 * mib

	s := summary(t, e.must("image", "create", "--json", d.Path))
	growth := repoSize(t, e.repo) - before
	t.Logf("changed %d bytes; the repository grew by %d (%.2fx), data added %v", changed, growth, float64(growth)/changed, s["data_added"])
	if growth > changed*3/2+2*mib {
		t.Errorf("the repository grew by %d bytes for %d changed (bound: 1.5x + 2 MiB)", growth, changed)
	}
	if s["parent"] == nil {
		t.Errorf("the second image has no parent: %v", s)
	}
}

// Restored onto a disk twice the size with --grow, the largest filesystem takes the
// new space, the recovery partition after it moves to the end intact, and every
// check passes.
func TestImageRestoreGrow(t *testing.T) {
	e := newEnv(t)
	tree := filepath.Join(e.dir, "tree")
	disktest.UsrDir(t, tree, 8*mib)
	d := disktest.MakeGPT(t, filepath.Join(e.dir, "disk.img"), 160*mib, []disktest.Partition{
		{Size: 40 * mib, Type: "ef00", Name: "EFI system", FS: "fat32", Label: "EFI"},
		{Size: 96 * mib, Type: "8300", Name: "root", FS: "ext4", Label: "rootfs",
			Fill: func(t testing.TB, mnt string) { disktest.CopyTree(t, tree, mnt, false) }},
		{Size: 16 * mib, Type: "2700", Name: "recovery", FS: "ntfs", Label: "Recovery"},
	})
	e.must("init")
	e.must("image", "create", d.Path)

	big := filepath.Join(e.dir, "big.img")
	if err := os.WriteFile(big, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(big, 2*d.Size); err != nil {
		t.Fatal(err)
	}
	s := summary(t, e.must("image", "restore", "--json", "--grow", "latest", big))
	if s["grown_partition"].(float64) != 2 {
		t.Fatalf("grew partition %v, want 2 (the largest filesystem)", s["grown_partition"])
	}
	disktest.Run(t, "sgdisk", "-v", big)
	tab := disktest.SfdiskJSON(t, big)
	parts := tab["partitions"].([]any)
	p := func(i int, k string) float64 { return parts[i].(map[string]any)[k].(float64) }
	name := func(i int, k string) string { return parts[i].(map[string]any)[k].(string) }
	orig := disktest.SfdiskJSON(t, d.Path)["partitions"].([]any)
	for i := range parts {
		if name(i, "uuid") != orig[i].(map[string]any)["uuid"] || name(i, "name") != orig[i].(map[string]any)["name"] {
			t.Errorf("partition %d lost its uuid or name: %v", i+1, parts[i])
		}
	}
	if p(0, "start") != 2048 || p(0, "size") != 40*2048 {
		t.Errorf("the EFI partition moved: %v", parts[0])
	}
	if got, want := p(1, "size"), float64((96+160)*2048); got != want {
		t.Errorf("root partition has %v sectors, want %v", got, want)
	}
	origTab := disktest.SfdiskJSON(t, d.Path)
	origGap := origTab["lastlba"].(float64) - (orig[2].(map[string]any)["start"].(float64) + orig[2].(map[string]any)["size"].(float64))
	if gap := tab["lastlba"].(float64) - (p(2, "start") + p(2, "size")); gap != origGap || p(2, "size") != 16*2048 {
		t.Errorf("the recovery partition is %v sectors from the end with %v sectors, was %v from the end", gap, p(2, "size"), origGap)
	}
	rootStart, rootSize := int64(p(1, "start"))*512, int64(p(1, "size"))*512
	root := disktest.AttachPartition(t, big, rootStart, rootSize)
	disktest.Fsck(t, root, "ext4")
	out := disktest.Run(t, "dumpe2fs", "-h", root)
	var blocks, bsize int64
	for _, line := range strings.Split(out, "\n") {
		fmt.Sscanf(line, "Block count: %d", &blocks)
		fmt.Sscanf(line, "Block size: %d", &bsize)
	}
	if blocks*bsize < rootSize-4*mib {
		t.Errorf("the ext4 filesystem has %d bytes in a %d-byte partition: not grown", blocks*bsize, rootSize)
	}
	origRoot := disktest.Mount(t, disktest.AttachPartition(t, d.Path, d.Parts[1].Start, d.Parts[1].Size), "ext4", true)
	mnt := disktest.Mount(t, root, "ext4", true)
	treetest.RequireEqual(t, origRoot, mnt, treetest.CompareOptions{IgnoreATime: true})
	disktest.Unmount(t, mnt)
	rec := disktest.AttachPartition(t, big, int64(p(2, "start"))*512, int64(p(2, "size"))*512)
	disktest.Fsck(t, rec, "ntfs")
	efi := disktest.AttachPartition(t, big, 1*mib, 40*mib)
	disktest.Fsck(t, efi, "fat32")

	// One partition into a file of its own, loop-mountable.
	part := filepath.Join(e.dir, "root.img")
	e.must("image", "restore", "--partition", "2", "latest", part)
	disktest.Fsck(t, part, "ext4")
	mnt = disktest.Mount(t, disktest.Attach(t, part), "ext4", true)
	treetest.RequireEqual(t, origRoot, mnt, treetest.CompareOptions{IgnoreATime: true})
	disktest.Unmount(t, mnt)
	disktest.Unmount(t, origRoot)

	// An image of one partition (no table) restores as that partition.
	loop := disktest.AttachPartition(t, d.Path, d.Parts[1].Start, d.Parts[1].Size)
	e.must("image", "create", loop)
	var show map[string]any
	if err := json.Unmarshal([]byte(e.must("image", "show", "--json", "latest")), &show); err != nil {
		t.Fatal(err)
	}
	if img := show["image"].(map[string]any); img["whole_disk"] != false || img["table"] != "none" {
		t.Errorf("a partition image: %v", img)
	}
	one := filepath.Join(e.dir, "one.img")
	e.must("image", "restore", "latest", one)
	disktest.Fsck(t, one, "ext4")
}
