//go:build linux

package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"cairn/internal/disktest"
	"cairn/internal/treetest"
)

// contentTree maps every path below root to its type and, for files, content hash:
// what two views of one filesystem must agree on whatever owners and modes they show.
func contentTree(t *testing.T, root string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if rel == "." || rel == "lost+found" || strings.HasPrefix(rel, "lost+found/") || strings.HasPrefix(rel, "System Volume Information") {
			return nil
		}
		switch {
		case fi.IsDir():
			out[rel] = "dir"
		case fi.Mode().IsRegular():
			s := fileSHA(t, p)
			out[rel] = "file " + string(s[:])
		case fi.Mode()&os.ModeSymlink != 0:
			target, _ := os.Readlink(p)
			out[rel] = "link " + target
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func sameContent(t *testing.T, what string, want, got map[string]string) {
	t.Helper()
	var diffs []string
	for p, w := range want {
		if g, ok := got[p]; !ok {
			diffs = append(diffs, "missing "+p)
		} else if g != w {
			diffs = append(diffs, "differs "+p)
		}
	}
	for p := range got {
		if _, ok := want[p]; !ok {
			diffs = append(diffs, "extra "+p)
		}
	}
	sort.Strings(diffs)
	if len(diffs) > 0 {
		if len(diffs) > 20 {
			diffs = diffs[:20]
		}
		t.Errorf("%s: %d differences (of %d entries): %v", what, len(diffs), len(want), diffs)
	}
}

// The files inside an image snapshot are there to list, print, restore and mount,
// without a restore of the disk: each partition's files equal the source's.
func TestBrowseFilesInsideImages(t *testing.T) {
	e := newEnv(t)
	d, _ := gptDisk(t, e.dir)
	e.must("init")
	e.must("image", "create", d.Path)

	// The ext4 root (part2): every entry with its metadata, through restore.
	root := d.Parts[1]
	orig := disktest.Mount(t, disktest.AttachPartition(t, d.Path, root.Start, root.Size), "ext4", true)
	target := filepath.Join(e.dir, "part2")
	e.must("restore", "latest:/part2", "--target", target, "--verify")
	treetest.RequireEqual(t, orig, target, treetest.CompareOptions{IgnoreATime: true, IgnoreRootMeta: true})

	// ls shows the same entries with sizes; cat prints a file.
	var nodes []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(e.must("ls", "--json", "latest", "/part2")), "\n") {
		var n map[string]any
		if err := json.Unmarshal([]byte(line), &n); err != nil {
			t.Fatal(err)
		}
		nodes = append(nodes, n)
	}
	listed := map[string]bool{}
	for _, n := range nodes {
		listed[strings.TrimPrefix(n["path"].(string), "/part2/")] = true
	}
	for p := range contentTree(t, orig) {
		if !listed[p] {
			t.Errorf("ls of /part2 lacks %s", p)
		}
	}
	want, err := os.ReadFile(filepath.Join(orig, "random.bin"))
	if err != nil {
		t.Fatal(err)
	}
	if got := e.must("cat", "latest", "/part2/random.bin"); got != string(want) {
		t.Error("cat /part2/random.bin differs")
	}
	disktest.Unmount(t, orig)

	// The NTFS data partition (part3): names and content, through restore.
	data := d.Parts[2]
	ntfsOrig := disktest.Mount(t, disktest.AttachPartition(t, d.Path, data.Start, data.Size), "ntfs", true)
	target3 := filepath.Join(e.dir, "part3")
	e.must("restore", "latest:/part3", "--target", target3)
	sameContent(t, "NTFS part3 restored", contentTree(t, ntfsOrig), contentTree(t, target3))

	// The FAT32 EFI partition (part1) is listed; it holds only a label here.
	e.must("ls", "latest", "/part1")

	// Through the mount: partN/ holds the same files.
	mnt := t.TempDir()
	e.startMount(mnt)
	snapDir := filepath.Join(mnt, "latest")
	sameContent(t, "NTFS part3 mounted", contentTree(t, ntfsOrig), contentTree(t, filepath.Join(snapDir, "part3")))
	disktest.Unmount(t, ntfsOrig)
	orig = disktest.Mount(t, disktest.AttachPartition(t, d.Path, root.Start, root.Size), "ext4", true)
	treetest.RequireEqual(t, orig, filepath.Join(snapDir, "part2"), treetest.CompareOptions{IgnoreATime: true, IgnoreRootMeta: true, IgnoreSparse: true})
	disktest.Unmount(t, orig)

	// diff between two images of a changed disk names the changed file.
	part := disktest.AttachPartition(t, d.Path, root.Start, root.Size)
	rw := disktest.Mount(t, part, "ext4", false)
	writeFile(t, filepath.Join(rw, "added.txt"), []byte("new"))
	disktest.Unmount(t, rw)
	disktest.Detach(t, part)
	e.must("image", "create", d.Path)
	var ids []map[string]any
	if err := json.Unmarshal([]byte(e.must("snapshots", "--json")), &ids); err != nil {
		t.Fatal(err)
	}
	diff := e.must("diff", ids[0]["short_id"].(string), ids[1]["short_id"].(string))
	if !strings.Contains(diff, "+    /part2/added.txt") {
		t.Errorf("diff of two images:\n%s", diff)
	}
}

// A folder with a damaged entry, inside an image of a damaged ext4 (a partition
// image: its files are at the snapshot's root): ls, restore and
// the mount show the intact entries and name the damaged one, instead of losing
// the whole folder.
func TestBrowseDamagedFolderInsideImage(t *testing.T) {
	e := newEnv(t)
	src := filepath.Join(e.dir, "src")
	content := map[string]string{"a.txt": "alpha\n", "b.txt": "bravo\n", "c.txt": "charlie\n"}
	for name, data := range content {
		writeFile(t, filepath.Join(src, "docs", name), []byte(data))
	}
	img := filepath.Join(e.dir, "fs.img")
	disktest.Run(t, "truncate", "-s", "16M", img)
	disktest.Run(t, "mkfs.ext4", "-q", "-F", "-d", src, img)
	disktest.Run(t, "debugfs", "-w", "-R", "clri /docs/b.txt", img) // b.txt's inode is wiped
	e.must("init")
	e.must("image", "create", img)

	ls := e.run("ls", "latest", "/docs")
	if ls.code == 0 || !strings.Contains(ls.stderr, "b.txt") {
		t.Errorf("ls of the damaged folder: exit %d, want an error naming b.txt\n%s", ls.code, ls.stderr)
	}
	for _, name := range []string{"a.txt", "c.txt"} {
		if !strings.Contains(ls.stdout, "/docs/"+name) {
			t.Errorf("ls does not list %s:\n%s", name, ls.stdout)
		}
	}

	target := filepath.Join(e.dir, "restored")
	r := e.run("restore", "latest:/docs", "--target", target)
	if r.code != 3 || !strings.Contains(r.stderr, "b.txt") {
		t.Errorf("restore of the damaged folder: exit %d, want 3 and b.txt named\n%s", r.code, r.stderr)
	}
	for _, name := range []string{"a.txt", "c.txt"} {
		if got, err := os.ReadFile(filepath.Join(target, name)); err != nil || string(got) != content[name] {
			t.Errorf("restored %s: %q %v", name, got, err)
		}
	}

	// The mount shows the filesystem of a partition image in part0/.
	mnt := t.TempDir()
	e.startMount(mnt)
	entries, err := os.ReadDir(filepath.Join(mnt, "latest", "part0", "docs"))
	if err != nil {
		t.Fatalf("the mount's listing of the damaged folder: %v", err)
	}
	var names []string
	for _, de := range entries {
		names = append(names, de.Name())
	}
	if strings.Join(names, " ") != "a.txt c.txt" {
		t.Errorf("the mount lists %v, want a.txt and c.txt", names)
	}
	if got, err := os.ReadFile(filepath.Join(mnt, "latest", "part0", "docs", "c.txt")); err != nil || string(got) != content["c.txt"] {
		t.Errorf("c.txt through the mount: %q %v", got, err)
	}
}

// An ext4 whose block bitmap was zeroed (damage that says every block is free): image
// create warns that the bitmap fails its checksum, stores the whole group, and the
// restored filesystem still holds the files' data.
func TestImageOfDamagedBitmap(t *testing.T) {
	e := newEnv(t)
	src := filepath.Join(e.dir, "src")
	data := bytes.Repeat([]byte("bitmaps lie sometimes\n"), 20000)
	writeFile(t, filepath.Join(src, "docs", "big.txt"), data)
	img := filepath.Join(e.dir, "fs.img")
	disktest.Run(t, "truncate", "-s", "16M", img)
	disktest.Run(t, "mkfs.ext4", "-q", "-F", "-b", "4096", "-O", "metadata_csum", "-d", src, img)
	out := disktest.Run(t, "dumpe2fs", img)
	var bitmap int64 = -1
	for _, line := range strings.Split(out, "\n") {
		if i := strings.Index(line, "Block bitmap at "); i >= 0 {
			if _, err := fmt.Sscanf(line[i:], "Block bitmap at %d", &bitmap); err == nil {
				break
			}
		}
	}
	if bitmap < 0 {
		t.Fatalf("no block bitmap in dumpe2fs's output:\n%s", out)
	}
	f, err := os.OpenFile(img, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(make([]byte, 4096), bitmap*4096); err != nil {
		t.Fatal(err)
	}
	f.Close()

	e.must("init")
	r := e.run("image", "create", img)
	if r.code != 0 || !strings.Contains(r.stderr, "fails its checksum") {
		t.Fatalf("image create: exit %d, want 0 and a warning about the bitmap\n%s", r.code, r.stderr)
	}
	restored := filepath.Join(e.dir, "restored.img")
	e.must("image", "restore", "latest", restored)
	// debugfs -c: the restored bitmap is as damaged as the source's.
	got, err := exec.Command("debugfs", "-c", "-R", "cat /docs/big.txt", restored).Output()
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("the file in the restored filesystem: %d bytes, want %d (%v)", len(got), len(data), err)
	}
}

// An ext4 too damaged to read its allocation from (a superblock field out of range,
// the magic intact): image create warns and stores every block, and the restore is
// the source byte for byte.
func TestImageOfUnreadableFilesystem(t *testing.T) {
	e := newEnv(t)
	src := filepath.Join(e.dir, "src")
	writeFile(t, filepath.Join(src, "keep.txt"), bytes.Repeat([]byte("worth keeping\n"), 5000))
	img := filepath.Join(e.dir, "fs.img")
	disktest.Run(t, "truncate", "-s", "8M", img)
	disktest.Run(t, "mkfs.ext4", "-q", "-F", "-d", src, img)
	f, err := os.OpenFile(img, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	// s_log_block_size (superblock at 1024, field at 0x18): 2^(10+40)-byte blocks.
	if _, err := f.WriteAt([]byte{40, 0, 0, 0}, 1024+0x18); err != nil {
		t.Fatal(err)
	}
	// Some bytes where no filesystem would say anything is used: stored all the same.
	if _, err := f.WriteAt(bytes.Repeat([]byte{0xA5}, 4096), 7<<20); err != nil {
		t.Fatal(err)
	}
	f.Close()

	e.must("init")
	r := e.run("image", "create", img)
	if r.code != 0 || !strings.Contains(r.stderr, "every block is stored") {
		t.Fatalf("image create: exit %d, want 0 and a warning\n%s", r.code, r.stderr)
	}
	restored := filepath.Join(e.dir, "restored.img")
	e.must("image", "restore", "latest", restored)
	want, _ := os.ReadFile(img)
	got, _ := os.ReadFile(restored)
	if !bytes.Equal(got, want) {
		t.Fatalf("the restore differs from the damaged source (%d and %d bytes)", len(got), len(want))
	}
}
