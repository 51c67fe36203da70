package local

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"cairn/internal/storage"
	"cairn/internal/storage/storagetest"
)

// mountSmallExt4 mounts a fresh 16 MiB ext4 filesystem on a loop device and returns
// its mount point; it is unmounted when the test ends.
func mountSmallExt4(t *testing.T) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("mounting a loop device needs root")
	}
	if _, err := exec.LookPath("mkfs.ext4"); err != nil {
		t.Fatal("mkfs.ext4 not installed: .ci/run installs it")
	}
	img := filepath.Join(t.TempDir(), "disk.img")
	if err := os.WriteFile(img, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(img, 16<<20); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mkfs.ext4", "-q", "-F", img).CombinedOutput(); err != nil {
		t.Fatalf("mkfs.ext4: %v\n%s", err, out)
	}
	mnt := t.TempDir()
	if out, err := exec.Command("mount", "-o", "loop", img, mnt).CombinedOutput(); err != nil {
		t.Fatalf("mount: %v\n%s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", mnt).CombinedOutput(); err != nil {
			t.Errorf("umount: %v\n%s", err, out)
		}
	})
	return mnt
}

func TestDiskFull(t *testing.T) {
	mnt := mountSmallExt4(t)
	s, err := Create(filepath.Join(mnt, "repo"))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	saved := map[storage.Handle][]byte{}
	var saveErr error
	for i := 0; i < 64 && saveErr == nil; i++ {
		h := storage.Handle{Type: storage.PackFile, Name: storagetest.RandomName()}
		data := storagetest.RandomData(1 << 20)
		if saveErr = s.Save(ctx, h, data); saveErr == nil {
			saved[h] = data
		} else if _, err := s.Stat(ctx, h); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("the failed Save left %v behind (Stat: %v)", h, err)
		}
	}
	if saveErr == nil {
		t.Fatal("64 MiB fit on a 16 MiB filesystem")
	}
	t.Logf("after %d files: %v", len(saved), saveErr)
	if !errors.Is(saveErr, syscall.ENOSPC) {
		t.Errorf("error %v does not match syscall.ENOSPC", saveErr)
	}
	if msg := saveErr.Error(); !strings.Contains(msg, "disk is full") || !strings.Contains(msg, s.Location()) {
		t.Errorf("error %q does not say that the disk is full, and where", msg)
	}
	if len(saved) == 0 {
		t.Fatal("not even one file fit")
	}
	if found := tempFiles(t, s.Location()); len(found) != 0 {
		t.Errorf("temporary files left behind: %v", found)
	}
	n := 0
	err = s.List(ctx, storage.PackFile, func(fi storage.FileInfo) error {
		n++
		h := storage.Handle{Type: storage.PackFile, Name: fi.Name}
		if want, ok := saved[h]; !ok || fi.Size != int64(len(want)) {
			t.Errorf("List shows %s of %d bytes, which was not saved so", fi.Name, fi.Size)
		}
		return nil
	})
	if err != nil || n != len(saved) {
		t.Errorf("List found %d files (%v), want %d", n, err, len(saved))
	}
	for h, want := range saved {
		if got, err := s.Load(ctx, h, 0, 0); err != nil || !bytes.Equal(got, want) {
			t.Errorf("Load(%v) after the disk filled: %d bytes, %v", h, len(got), err)
		}
	}
	// Freeing space makes Save work again.
	for h := range saved {
		if err := s.Remove(ctx, h); err != nil {
			t.Fatal(err)
		}
		break
	}
	if err := s.Save(ctx, storage.Handle{Type: storage.IndexFile, Name: "after"}, []byte("room again")); err != nil {
		t.Errorf("Save after freeing space: %v", err)
	}
}
