//go:build linux

package ext

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	cfs "cairn/internal/fs"
)

// mkfsCase is one real filesystem to make and probe.
type mkfsCase struct {
	name    string
	mkfs    string   // mkfs.ext2, mkfs.ext3 or mkfs.ext4
	args    []string // its options, besides -F -q -E nodiscard
	imgSize int64    // bytes of the image file (the partition)
	fsSize  string   // mkfs's size argument; "" fills the image
	// fill puts files in: "d" with mkfs -d (e2fsprogs' allocator), "mount"
	// by mounting and writing (the kernel's allocator, and files deleted).
	fill      string
	typ       string // blkid's TYPE
	noMount   bool   // the kernel cannot mount it (64 KiB blocks on 4 KiB pages)
	afterMkfs func(t *testing.T, img string)
}

var mkfsCases = []mkfsCase{
	{name: "ext2", mkfs: "mkfs.ext2", args: []string{"-b", "4096", "-g", "2048", "-L", "cairn-ext2"}, fill: "d", typ: "ext2"},
	{name: "ext2-1k-no-sparse_super", mkfs: "mkfs.ext2", args: []string{"-b", "1024", "-O", "^sparse_super,^resize_inode"}, fill: "d", typ: "ext2"},
	{name: "ext3", mkfs: "mkfs.ext3", args: []string{"-b", "4096", "-g", "2048", "-L", "sixteen-chars-ok"}, fill: "d", typ: "ext3"},
	{name: "ext3-1k", mkfs: "mkfs.ext3", args: []string{"-b", "1024"}, fill: "d", typ: "ext3"},
	{name: "ext4", mkfs: "mkfs.ext4", args: []string{"-b", "4096", "-L", "root fs"}, fill: "d", typ: "ext4"},
	{name: "ext4-groups", mkfs: "mkfs.ext4", args: []string{"-b", "4096", "-g", "2048"}, fill: "d", typ: "ext4"},
	{name: "ext4-no-flex_bg", mkfs: "mkfs.ext4", args: []string{"-b", "4096", "-g", "2048", "-O", "^flex_bg"}, fill: "d", typ: "ext4"},
	{name: "ext4-1k", mkfs: "mkfs.ext4", args: []string{"-b", "1024"}, fill: "d", typ: "ext4"},
	{name: "ext4-64bit", mkfs: "mkfs.ext4", args: []string{"-O", "64bit"}, fill: "d", typ: "ext4"},
	{name: "ext4-32bit-uninit_bg", mkfs: "mkfs.ext4", args: []string{"-O", "^64bit,^metadata_csum,uninit_bg"}, fill: "d", typ: "ext4"},
	{name: "ext4-no-resize_inode", mkfs: "mkfs.ext4", args: []string{"-O", "^resize_inode"}, fill: "d", typ: "ext4"},
	{name: "ext4-no-journal", mkfs: "mkfs.ext4", args: []string{"-O", "^has_journal"}, fill: "d", typ: "ext4"},
	{name: "ext4-smaller-than-image", mkfs: "mkfs.ext4", fsSize: "20M", fill: "d", typ: "ext4"},
	{name: "ext4-many-groups", mkfs: "mkfs.ext4", args: []string{"-b", "1024", "-g", "256"}, imgSize: 32 << 20, fill: "d", typ: "ext4"},
	{name: "ext4-meta_bg", mkfs: "mkfs.ext4", args: []string{"-b", "1024", "-g", "1024", "-O", "meta_bg,^resize_inode"}, fill: "d", typ: "ext4"},
	{name: "ext4-meta_bg-no-flex_bg", mkfs: "mkfs.ext4", args: []string{"-b", "1024", "-g", "1024", "-O", "meta_bg,^resize_inode,^flex_bg"}, fill: "d", typ: "ext4"},
	{name: "ext4-sparse_super2", mkfs: "mkfs.ext4", args: []string{"-b", "1024", "-O", "sparse_super2"}, fill: "d", typ: "ext4"},
	{name: "ext4-bigalloc", mkfs: "mkfs.ext4", args: []string{"-b", "4096", "-C", "65536", "-g", "16384", "-N", "4096", "-O", "bigalloc"}, fill: "d", typ: "ext4"},
	{name: "ext4-bigalloc-1k", mkfs: "mkfs.ext4", args: []string{"-b", "1024", "-C", "16384", "-O", "bigalloc"}, fill: "d", typ: "ext4"},
	{name: "ext4-64k-blocks", mkfs: "mkfs.ext4", args: []string{"-b", "65536", "-N", "4096"}, fill: "d", typ: "ext4", noMount: true},
	{name: "ext4-kernel-writes", mkfs: "mkfs.ext4", args: []string{"-b", "4096", "-g", "4096"}, fill: "mount", typ: "ext4"},
	{name: "ext3-kernel-writes", mkfs: "mkfs.ext3", args: []string{"-b", "1024"}, fill: "mount", typ: "ext3"},
	{name: "ext4-grown", mkfs: "mkfs.ext4", args: []string{"-b", "1024"}, imgSize: 96 << 20, fsSize: "24M", fill: "d", typ: "ext4",
		afterMkfs: func(t *testing.T, img string) { run(t, "resize2fs", "-f", img) }},
}

// makeFS makes the filesystem of case c in a new image file of random bytes and
// returns its path.
func makeFS(t *testing.T, c mkfsCase, seed uint64) string {
	t.Helper()
	img := filepath.Join(t.TempDir(), "fs.img")
	size := c.imgSize
	if size == 0 {
		size = 64 << 20
	}
	randomFile(t, img, size, seed)
	args := append([]string{"-F", "-q", "-E", "nodiscard"}, c.args...)
	if c.fill == "d" {
		args = append(args, "-d", sourceTree(t))
	}
	args = append(args, img)
	if c.fsSize != "" {
		args = append(args, c.fsSize)
	}
	run(t, c.mkfs, args...)
	if c.fill == "mount" {
		writeWithKernel(t, img)
	}
	if c.afterMkfs != nil {
		c.afterMkfs(t, img)
	}
	return img
}

// writeWithKernel mounts the image and writes, deletes and rewrites files in
// it, so that the kernel's allocator leaves holes and fragmented files.
func writeWithKernel(t *testing.T, img string) {
	needRoot(t)
	withMount(t, img, "rw", func(dir string) {
		run(t, "cp", "-a", sourceTree(t)+"/.", dir)
		err := filepath.Walk(filepath.Join(dir, "small"), func(p string, info os.FileInfo, err error) error {
			if err == nil && info.Mode().IsRegular() && strings.HasSuffix(p, "1") {
				err = os.Remove(p)
			}
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		if err := os.Remove(filepath.Join(dir, "big", "b1")); err != nil {
			t.Fatal(err)
		}
		// Two files growing in turn, synced at each step: interleaved extents.
		var files [2]*os.File
		for i := range files {
			f, err := os.Create(filepath.Join(dir, fmt.Sprintf("interleaved%d", i)))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			files[i] = f
		}
		chunk := make([]byte, 20000)
		for step := range 60 {
			for i, f := range files {
				for j := range chunk {
					chunk[j] = byte(step*7 + i + j)
				}
				if _, err := f.Write(chunk); err != nil {
					t.Fatal(err)
				}
				if err := f.Sync(); err != nil {
					t.Fatal(err)
				}
			}
		}
		for _, f := range files {
			if err := f.Close(); err != nil {
				t.Fatal(err)
			}
		}
	})
}

// TestProbeMkfs makes real filesystems of every kind and layout, and checks
// Probe against the tools: every block is used in Probe's map iff dumpe2fs
// does not list it free; type, label and UUID are blkid's; the unneeded
// extents are the empty journal's log as debugfs maps it; and a copy of only
// the used extents but the unneeded ones passes e2fsck, holds every file
// unchanged and, mounted read-write, journals new writes.
func TestProbeMkfs(t *testing.T) {
	needTools(t, "mkfs.ext4", "dumpe2fs", "e2fsck", "blkid")
	for i, c := range mkfsCases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			img := makeFS(t, c, uint64(i))
			a := probeFile(t, img)
			if a.Type != c.typ {
				t.Errorf("Type %q, want %q", a.Type, c.typ)
			}
			checkBlkid(t, img, a)
			if len(a.Warnings) > 0 {
				t.Errorf("warnings on a sound filesystem: %q", a.Warnings)
			}
			checkAgainstDumpe2fs(t, img, a)
			if a.UsedBytes() >= a.Size {
				t.Errorf("all %d bytes used", a.Size)
			}
			// Every case has an empty journal but ext2, the one made without
			// and the 64 KiB-block one, too small for a journal of 1024 blocks.
			emptyLog := checkUnneeded(t, img, a)
			if want := c.typ != "ext2" && c.name != "ext4-no-journal" && c.name != "ext4-64k-blocks"; emptyLog != want {
				t.Errorf("journal log unneeded: %v, want %v", emptyLog, want)
			}
			checkCopy(t, img, a, !c.noMount)
			if emptyLog && !c.noMount && os.Geteuid() == 0 {
				checkJournalUsable(t, img, a)
			}
			t.Logf("%s: %d-byte blocks, %d of %d bytes used in %d extents", a.Type, a.BlockSize, a.UsedBytes(), a.Size, len(a.Used))
		})
	}
}

// TestProbeNeedsRecovery images filesystems that were not unmounted: the
// image is copied while mounted, after files were written and fsynced, so the
// journal holds committed bitmaps newer than those in place. Probe must count
// used every block that replaying the journal (by mounting a copy) marks used,
// and a copy of only its used extents, replayed, must hold every file.
func TestProbeNeedsRecovery(t *testing.T) {
	needTools(t, "mkfs.ext4", "dumpe2fs", "e2fsck")
	needRoot(t)
	cases := []mkfsCase{
		{name: "ext4", mkfs: "mkfs.ext4", args: []string{"-b", "4096", "-g", "4096"}},
		{name: "ext4-1k-32bit", mkfs: "mkfs.ext4", args: []string{"-b", "1024", "-O", "^64bit"}},
		{name: "ext3", mkfs: "mkfs.ext3", args: []string{"-b", "1024"}},
		// Fast commits replay as changes to files: Probe counts every block.
		{name: "ext4-fast_commit", mkfs: "mkfs.ext4", args: []string{"-b", "4096", "-O", "fast_commit"}},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			// The bitmaps in place are stale unless something flushes the
			// block device (a sync(2) anywhere on the machine) between the
			// writes and the copy, or during it: try again then.
			for try := range 4 {
				snap := unreplayedImage(t, c, 100+uint64(10*i+try))
				// cp may copy a bitmap and its checksum in the descriptor
				// from either side of a writeback: dumpe2fs then refuses
				// the copy, which is torn, not merely unreplayed.
				out, err := exec.Command("dumpe2fs", snap).Output()
				if err != nil {
					t.Logf("try %d: dumpe2fs on the copy: %v", try, err)
					continue
				}
				inPlace, _ := parseDumpe2fs(t, string(out))
				replayed := filepath.Join(t.TempDir(), "replayed.img")
				run(t, "cp", "--sparse=always", snap, replayed)
				withMount(t, replayed, "rw", func(string) {}) // the kernel replays the journal
				run(t, "e2fsck", "-fn", replayed)

				a := probeFile(t, snap)
				checkUnneeded(t, snap, a) // none: the journal needs replaying
				want, bs := dumpe2fsUsed(t, replayed)
				got := make([]bool, len(want))
				for _, e := range a.Used {
					for b := e.Off / bs; b < (e.Off+e.Len)/bs; b++ {
						got[b] = true
					}
				}
				stale, extra := 0, 0
				for b := range want {
					if want[b] && !got[b] {
						t.Fatalf("block %d used after replay, not in Probe's map", b)
					}
					if got[b] && !want[b] {
						extra++
					}
					if want[b] && !inPlace[b] {
						stale++
					}
				}
				if stale == 0 {
					t.Logf("try %d: the bitmaps in place are not stale", try)
					continue
				}
				t.Logf("%d blocks used only after replay, all in Probe's map (which has %d more)", stale, extra)

				cp := copyUsed(t, snap, a)
				withMount(t, cp, "rw", func(string) {})
				run(t, "e2fsck", "-fn", cp)
				// A fast commit replay stamps the folders it changes with
				// the time of the replay.
				orig := treeDigest(t, mountRO(t, replayed), false)
				copied := treeDigest(t, mountRO(t, cp), false)
				if len(orig) != len(copied) {
					t.Errorf("%d entries, the copy %d", len(orig), len(copied))
				}
				for p, d := range orig {
					if copied[p] != d {
						t.Errorf("%s: original %s, copy %s", p, d, copied[p])
					}
				}
				return
			}
			t.Fatal("the bitmaps in place were never stale: the test proves nothing")
		})
	}
}

// unreplayedImage makes the filesystem of case c, writes and fsyncs files in
// it, and copies the image while it is still mounted: the copy needs
// recovery.
func unreplayedImage(t *testing.T, c mkfsCase, seed uint64) string {
	img := makeFS(t, c, seed)
	snap := filepath.Join(t.TempDir(), "snap.img")
	withMount(t, img, "rw", func(dir string) {
		for i := range 40 {
			f, err := os.Create(filepath.Join(dir, fmt.Sprintf("f%d", i)))
			if err != nil {
				t.Fatal(err)
			}
			b := make([]byte, 1000+i*40000)
			for j := range b {
				b[j] = byte(i + j/1000)
			}
			_, err = f.Write(b)
			if err == nil {
				err = f.Sync() // commits the journal, leaves bitmaps in place stale
			}
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				t.Fatal(err)
			}
		}
		run(t, "cp", "--sparse=never", img, snap)
	})
	h := run(t, "dumpe2fs", "-h", snap)
	if !strings.Contains(h, "needs_recovery") {
		t.Fatalf("the copy made while mounted does not need recovery:\n%s", h)
	}
	if i := strings.Index(h, "Journal features:"); i >= 0 {
		t.Log(strings.SplitN(h[i:], "\n", 2)[0])
	}
	return snap
}

// TestProbeBitmapChecksum zeroes the block bitmap of the group holding the most
// used blocks, as damage would: with metadata_csum, Probe notices the checksum no
// longer matches, counts every block of the group as used (so every block the
// intact bitmap marked is still stored) and warns; without metadata_csum nothing
// tells, and the damaged bitmap is believed.
func TestProbeBitmapChecksum(t *testing.T) {
	needTools(t, "mkfs.ext4")
	for _, c := range []struct {
		mkfsCase
		csum bool
	}{
		{mkfsCase{name: "metadata_csum", mkfs: "mkfs.ext4", args: []string{"-b", "4096", "-g", "2048"}, fill: "d"}, true},
		{mkfsCase{name: "metadata_csum-32-byte-descriptors", mkfs: "mkfs.ext4", args: []string{"-b", "1024", "-O", "^64bit"}, fill: "d"}, true},
		{mkfsCase{name: "csum_seed", mkfs: "mkfs.ext4", args: []string{"-b", "4096", "-g", "2048", "-O", "metadata_csum_seed"}, fill: "d"}, true},
		{mkfsCase{name: "no-metadata_csum", mkfs: "mkfs.ext4", args: []string{"-b", "4096", "-g", "2048", "-O", "^metadata_csum,uninit_bg"}, fill: "d"}, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			img := makeFS(t, c.mkfsCase, 7)
			before := probeFile(t, img)
			if len(before.Warnings) > 0 {
				t.Fatalf("warnings before the damage: %q", before.Warnings)
			}
			file, err := os.OpenFile(img, os.O_RDWR, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer file.Close()
			st, _ := file.Stat()
			f, err := open(file, st.Size())
			if err != nil {
				t.Fatal(err)
			}
			// The initialised group with the most used blocks.
			g, most := -1, int64(-1)
			for i := range f.groupCount {
				if f.uninit(i) {
					continue
				}
				start := int64(f.groupFirstBlock(i)) * f.blockSize
				n := usedIn(before.Used, start, int64(f.groupBlocks(i))*f.blockSize)
				if n > most {
					g, most = int(i), n
				}
			}
			if _, err := file.WriteAt(make([]byte, f.blockSize), int64(f.groups[g].blockBitmap)*f.blockSize); err != nil {
				t.Fatal(err)
			}
			after := probeFile(t, img)
			start := int64(f.groupFirstBlock(uint32(g))) * f.blockSize
			size := int64(f.groupBlocks(uint32(g))) * f.blockSize
			if !c.csum {
				if len(after.Warnings) != 0 || usedIn(after.Used, start, size) >= most {
					t.Fatalf("without checksums: warnings %q, %d bytes of group %d used (was %d)", after.Warnings, usedIn(after.Used, start, size), g, most)
				}
				return
			}
			if len(after.Warnings) != 1 || !strings.Contains(after.Warnings[0], fmt.Sprintf("group %d ", g)) {
				t.Errorf("warnings %q, want one naming group %d", after.Warnings, g)
			}
			if got := usedIn(after.Used, start, size); got != size {
				t.Errorf("group %d: %d of %d bytes used, want all", g, got, size)
			}
			if lost := cfs.Subtract(before.Used, after.Used); len(lost) > 0 {
				t.Errorf("blocks the intact bitmap marked are no longer used: %v", lost)
			}
		})
	}
}

// usedIn returns how many bytes of [start, start+size) the extents cover.
func usedIn(used []cfs.Extent, start, size int64) int64 {
	var n int64
	for _, e := range cfs.Intersect(used, []cfs.Extent{{Off: start, Len: size}}) {
		n += e.Len
	}
	return n
}
