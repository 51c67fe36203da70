//go:build linux

package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// mountSmallFS makes an ext4 filesystem of size bytes on a loop device, mounts it and
// returns the mount point; it is unmounted when the test ends.
func mountSmallFS(t *testing.T, size int64) string {
	t.Helper()
	img := filepath.Join(t.TempDir(), "small.img")
	f, err := os.Create(img)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if out, err := exec.Command("mkfs.ext4", "-q", "-F", img).CombinedOutput(); err != nil {
		t.Fatalf("mkfs.ext4: %v %s", err, out)
	}
	mnt := t.TempDir()
	if out, err := exec.Command("mount", "-o", "loop", img, mnt).CombinedOutput(); err != nil {
		t.Fatalf("mount: %v %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", mnt).CombinedOutput(); err != nil {
			t.Errorf("umount: %v %s", err, out)
		}
	})
	return mnt
}

// A repository whose disk fills up mid-backup reports it clearly, keeps what it had,
// and works again once there is room.
func TestRepositoryDiskFull(t *testing.T) {
	e := newEnv(t)
	e.repo = filepath.Join(mountSmallFS(t, 48<<20), "repo")
	small := filepath.Join(e.dir, "small")
	writeFile(t, filepath.Join(small, "a.txt"), []byte("first backup"))
	big := filepath.Join(e.dir, "big")
	for i := 0; i < 8; i++ {
		writeFile(t, filepath.Join(big, string(rune('a'+i))), randomData(t, 8<<20))
	}
	e.must("init")
	e.must("backup", small)

	r := e.run("backup", big)
	if r.code != 1 || !strings.Contains(r.stderr, "disk is full") {
		t.Fatalf("backup onto a full disk: exit %d, want 1 with 'disk is full'; stderr:\n%s", r.code, r.stderr)
	}
	snaps := e.must("snapshots")
	if !strings.Contains(snaps, "1 snapshots") {
		t.Fatalf("the failed backup left a snapshot:\n%s", snaps)
	}
	e.must("check", "--read-data")
	if got := e.must("cat", "latest", filepath.Join(small, "a.txt")); got != "first backup" {
		t.Fatalf("earlier snapshot after a full disk: %q", got)
	}
	// The space the failed pack took is freed, so a small backup still fits.
	writeFile(t, filepath.Join(small, "b.txt"), []byte("after the full disk"))
	e.must("backup", small)
	if got := e.must("cat", "latest", filepath.Join(small, "b.txt")); got != "after the full disk" {
		t.Fatalf("backup after a full disk: %q", got)
	}
	e.must("check", "--read-data")
}
