//go:build linux

package main

import (
	"crypto/sha256"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"cairn/internal/disktest"
	"cairn/internal/treetest"
)

// startMount runs cairn mount in the background and waits until the mount is up.
func (e *env) startMount(mnt string) *exec.Cmd {
	e.t.Helper()
	cmd := exec.Command(binary, "--repo", e.repo, "--password-file", e.password, "mount", mnt)
	cmd.Env = e.vars
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = exec.Command("fusermount", "-u", mnt).Run()
			_ = cmd.Wait()
		}
	})
	for i := 0; i < 100; i++ {
		if exec.Command("mountpoint", "-q", mnt).Run() == nil {
			return cmd
		}
		time.Sleep(100 * time.Millisecond)
	}
	e.t.Fatalf("cairn mount did not come up:\n%s", out.String())
	return nil
}

func fileSHA(t *testing.T, path string) [32]byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	var s [32]byte
	copy(s[:], h.Sum(nil))
	return s
}

func TestMountFileSnapshots(t *testing.T) {
	e := newEnv(t)
	src := filepath.Join(e.dir, "src")
	treetest.CopyUsr(t, filepath.Join(src, "usr"), 30<<20)
	treetest.MakeEdgeCases(t, filepath.Join(src, "edge"), treetest.EdgeOptions{SparseSize: 64 << 20})
	writeFile(t, filepath.Join(src, "big.bin"), randomData(t, 20<<20))
	e.must("init")
	id := summary(t, e.must("backup", "--json", "--tag", "daily", "--host", "alpha", src))["snapshot_id"].(string)[:8]

	mnt := t.TempDir()
	cmd := e.startMount(mnt)
	snapDir := filepath.Join(mnt, "snapshots", id)
	for _, link := range []string{"latest", "hosts/alpha/" + id, "tags/daily/" + id} {
		p := filepath.Join(mnt, link)
		if target, err := filepath.EvalSymlinks(p); err != nil || target != snapDir {
			t.Errorf("%s resolves to %q (%v), want %s", link, target, err, snapDir)
		}
	}
	// Every file with its metadata and xattrs (ACLs too); reads of holes are
	// zeros, not holes, and link counts of FUSE files are the snapshot's.
	treetest.RequireEqual(t, src, filepath.Join(snapDir, src), treetest.CompareOptions{IgnoreATime: true, IgnoreSparse: true})
	if fileSHA(t, filepath.Join(src, "big.bin")) != fileSHA(t, filepath.Join(snapDir, src, "big.bin")) {
		t.Error("big.bin read through the mount differs")
	}
	if err := os.WriteFile(filepath.Join(snapDir, src, "new"), []byte("x"), 0o644); err == nil {
		t.Error("the mount accepted a write")
	}
	// Ctrl-C unmounts cleanly.
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("cairn mount after Ctrl-C: %v", err)
	}
	if exec.Command("mountpoint", "-q", mnt).Run() == nil {
		t.Fatal("still mounted after Ctrl-C")
	}
	// fusermount -u ends it too.
	cmd = e.startMount(mnt)
	disktest.Run(t, "fusermount", "-u", mnt)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("cairn mount after fusermount -u: %v", err)
	}
}

func TestMountImageSnapshots(t *testing.T) {
	e := newEnv(t)
	d, _ := gptDisk(t, e.dir)
	e.must("init")
	id := summary(t, e.must("image", "create", "--json", d.Path))["snapshot_id"].(string)[:8]
	restored := filepath.Join(e.dir, "restored.img")
	e.must("image", "restore", "latest", restored)

	mnt := t.TempDir()
	e.startMount(mnt)
	snapDir := filepath.Join(mnt, "snapshots", id)
	if fileSHA(t, filepath.Join(snapDir, "disk.img")) != fileSHA(t, restored) {
		t.Fatal("disk.img differs from the restored disk")
	}
	for _, p := range d.Parts {
		img := filepath.Join(snapDir, "part"+string(rune('0'+p.Number))+".img")
		fi, err := os.Stat(img)
		if err != nil || fi.Size() != p.Size {
			t.Fatalf("%s: %v size %v, want %d", img, err, fi, p.Size)
		}
	}
	// part2.img (ext4) and part3.img (NTFS) loop-mount, and hold the source's files.
	for _, p := range d.Parts[1:3] {
		img := filepath.Join(snapDir, "part"+string(rune('0'+p.Number))+".img")
		loop := strings.TrimSpace(disktest.Run(t, "losetup", "-f", "--show", "-r", img))
		got := disktest.Mount(t, loop, p.FS, true)
		want := disktest.Mount(t, disktest.AttachPartition(t, d.Path, p.Start, p.Size), p.FS, true)
		treetest.RequireEqual(t, want, got, treetest.CompareOptions{IgnoreATime: true})
		disktest.Unmount(t, got)
		disktest.Unmount(t, want)
		disktest.Detach(t, loop)
	}
}
