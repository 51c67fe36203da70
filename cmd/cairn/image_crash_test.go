//go:build linux

package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"cairn/internal/disktest"
)

// image create killed with SIGKILL at many points leaves a repository that checks
// clean, whose earlier image snapshots restore exactly as before, and that takes the
// next image, which restores the disk as it is.
func TestImageCreateKilledAtAnyPoint(t *testing.T) {
	e := newEnv(t)
	d := disktest.MakeGPT(t, filepath.Join(e.dir, "disk.img"), 64*mib, []disktest.Partition{
		{Size: 8 * mib, Type: "ef00", Name: "EFI", FS: "fat32", Label: "EFI"},
		{Size: 54 * mib, Type: "8300", Name: "root", FS: "ext4", Label: "root", Fill: func(t testing.TB, mnt string) {
			disktest.RandomFile(t, filepath.Join(mnt, "base.bin"), 16*mib)
		}},
	})
	root := d.Parts[1]
	e.must("init")
	first := summary(t, e.must("image", "create", "--json", d.Path))["snapshot_id"].(string)
	good := filepath.Join(e.dir, "first.img")
	e.must("image", "restore", first[:8], good)
	want := sha(t, good, 0, d.Size)

	killed := 0
	for i, ms := range []time.Duration{5, 15, 30, 50, 80, 120, 180, 260, 380, 550} {
		// New data on the disk, so that every run has packs to write.
		loop := disktest.AttachPartition(t, d.Path, root.Start, root.Size)
		mnt := disktest.Mount(t, loop, "ext4", false)
		if i > 0 {
			if err := os.Remove(filepath.Join(mnt, fmt.Sprintf("new%d.bin", i-1))); err != nil {
				t.Fatal(err)
			}
		}
		disktest.RandomFile(t, filepath.Join(mnt, fmt.Sprintf("new%d.bin", i)), 12*mib)
		disktest.Unmount(t, mnt)
		disktest.Detach(t, loop)

		before := e.must("snapshots")
		if e.killAfter(ms*time.Millisecond, "image", "create", d.Path) {
			killed++
		}
		r := e.run("check", "--read-data")
		if r.code != 0 {
			t.Fatalf("after a kill at %v: check failed:\n%s\n%s", ms*time.Millisecond, r.stdout, r.stderr)
		}
		after := e.must("snapshots")
		for _, line := range strings.Split(strings.TrimSpace(before), "\n")[1:] {
			if id := strings.Fields(line)[0]; !strings.Contains(after, id) && strings.Contains(line, "image") {
				t.Fatalf("after a kill at %v: snapshot %s is gone", ms*time.Millisecond, id)
			}
		}
	}
	if killed == 0 {
		t.Fatal("no run was killed: the delays are too long to test anything")
	}
	t.Logf("%d of 10 image runs killed", killed)

	// The first snapshot restores as it did.
	again := filepath.Join(e.dir, "first-again.img")
	e.must("image", "restore", first[:8], again)
	if sha(t, again, 0, d.Size) != want {
		t.Fatal("the first image snapshot restores differently after the kills")
	}
	// The next image succeeds and restores the disk as it is now: the same table
	// and boot area, every used block of both filesystems, every file.
	s := summary(t, e.must("image", "create", "--json", d.Path))
	out := filepath.Join(e.dir, "last.img")
	e.must("image", "restore", s["snapshot_id"].(string)[:8], out)
	if !sameBytes(t, d.Path, out, 0, mib) || !sameBytes(t, d.Path, out, d.Size-33*512, 33*512) {
		t.Fatal("partition table or boot area differs")
	}
	if a, b := tableOf(t, d.Path), tableOf(t, out); a != b {
		t.Fatalf("partition tables differ:\n%v\n%v", a, b)
	}
	for _, p := range d.Parts {
		if n := usedBytesDiffer(t, d.Path, out, p.Start, p.Size); n != 0 {
			t.Errorf("partition %d: %d used extents differ", p.Number, n)
		}
	}
	orig := disktest.Mount(t, disktest.AttachPartition(t, d.Path, root.Start, root.Size), "ext4", true)
	restored := disktest.Mount(t, disktest.AttachPartition(t, out, root.Start, root.Size), "ext4", true)
	sameContent(t, "root filesystem", contentTree(t, orig), contentTree(t, restored))
	disktest.Unmount(t, restored)
	disktest.Unmount(t, orig)
	e.must("prune")
	e.must("check", "--read-data")
}
