package disk

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"
)

// mark writes a recognisable 4 KiB at the start and at the end of every data
// partition, and one in the gap before the first partition.
func mark(t *testing.T, img string, tab *Table) {
	t.Helper()
	for _, p := range tab.Partitions {
		if !p.Extended {
			writeAt(t, img, marker(p.Number, "start"), p.Start)
			writeAt(t, img, marker(p.Number, "end"), p.End()-4096)
		}
	}
	writeAt(t, img, marker(0, "boot loader"), 64*512)
}

func marker(n int, where string) []byte {
	return bytes.Repeat([]byte(fmt.Sprintf("partition %d %s. ", n, where)), 4096)[:4096]
}

// checkMarks checks that mark's bytes are where tab puts the partitions.
func checkMarks(t *testing.T, img string, tab *Table) {
	t.Helper()
	for _, p := range tab.Partitions {
		if p.Extended {
			continue
		}
		if got := readAt(t, img, p.Start, 4096); !bytes.Equal(got, marker(p.Number, "start")) {
			t.Errorf("partition %d: start not at %d: %.40q", p.Number, p.Start, got)
		}
	}
	if got := readAt(t, img, 64*512, 4096); !bytes.Equal(got, marker(0, "boot loader")) {
		t.Errorf("boot loader gap lost")
	}
}

// restoreResized does what the imager does: copies the partitions and the
// gaps of src (described by old) to their places on dst (described by
// resized), then writes resized's table.
func restoreResized(t *testing.T, src, dst string, old, resized *Table) {
	t.Helper()
	copyRange := func(from, to, n int64) {
		n = min(n, resized.DiskSize-to) // a smaller disk ends inside the last gap
		for done := int64(0); done < n; done += mib {
			b := readAt(t, src, from+done, int(min(mib, n-done)))
			if !allZero(b) {
				writeAt(t, dst, b, to+done)
			}
		}
	}
	for _, p := range old.Partitions {
		if !p.Extended {
			np := resized.partition(p.Number)
			copyRange(p.Start, np.Start, p.Size)
		}
	}
	_, gaps := old.Layout()
	for _, g := range gaps {
		copyRange(g.Off, resized.NewOffset(g.Off), g.Len)
	}
	regions, err := resized.Encode()
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range regions {
		writeAt(t, dst, r.Data, r.Off)
	}
}

func TestResizeGPT(t *testing.T) {
	for _, grow := range []int{3, 4, 0} {
		t.Run(fmt.Sprint("grow", grow), func(t *testing.T) {
			dir := t.TempDir()
			img := makeGPT(t, dir)
			old := readTableFile(t, img)
			mark(t, img, old)

			newSize := 2 * old.DiskSize
			nt, err := old.Resize(newSize, grow)
			if err != nil {
				t.Fatal(err)
			}
			dst := sparseFile(t, dir, "big.img", newSize)
			restoreResized(t, img, dst, old, nt)

			if out := run(t, "", "sgdisk", "-v", dst); !strings.Contains(out, "No problems found") {
				t.Errorf("sgdisk -v:\n%s", out)
			}
			checkAgainstSfdisk(t, nt, dst)
			back := readTableFile(t, dst)
			if len(back.Warnings) != 0 { // one would say the backup is not at the last LBA
				t.Errorf("warnings %q", back.Warnings)
			}
			if *back.GPT != *nt.GPT || back.DiskID != old.DiskID {
				t.Errorf("GPT read back %+v, want %+v", *back.GPT, *nt.GPT)
			}
			sectors := uint64(newSize / 512)
			if g := nt.GPT; g.BackupHeaderLBA != sectors-1 || g.BackupEntriesLBA != sectors-33 || g.LastUsableLBA != sectors-34 {
				t.Errorf("GPT info %+v", *g)
			}
			if sig := readAt(t, dst, newSize-512, 8); string(sig) != gptSignature {
				t.Errorf("no backup header at the last LBA: %q", sig)
			}
			checkMarks(t, dst, nt)

			shift := int64(256 * mib)
			for _, p := range old.Partitions {
				np := nt.partition(p.Number)
				want := p
				switch {
				case grow == 0:
				case p.Number == grow:
					want.Size += shift
				case p.Number > grow:
					want.Start += shift
				}
				if *np != want {
					t.Errorf("partition %d: %+v, want %+v", p.Number, *np, want)
				}
			}
			if grow != 0 {
				// The recovery partition still ends at the end of the disk.
				if end := nt.partition(4).End(); end != int64(nt.GPT.LastUsableLBA+1)*512 {
					t.Errorf("recovery partition ends at %d, last usable LBA %d", end, nt.GPT.LastUsableLBA)
				}
			}
		})
	}
}

func TestResizeMBR(t *testing.T) {
	// Growing 2 moves the extended partition with its logical partitions and
	// primary 4; growing 5 grows the extended partition and moves 6 and 4.
	for _, grow := range []int{2, 5, 6} {
		t.Run(fmt.Sprint("grow", grow), func(t *testing.T) {
			dir := t.TempDir()
			img := makeMBR(t, dir)
			old := readTableFile(t, img)
			mark(t, img, old)
			newSize := 2*old.DiskSize + 3*512 // not a whole MiB more: rounded down
			nt, err := old.Resize(newSize, grow)
			if err != nil {
				t.Fatal(err)
			}
			dst := sparseFile(t, dir, "big.img", newSize)
			restoreResized(t, img, dst, old, nt)
			checkAgainstSfdisk(t, nt, dst)
			checkMarks(t, dst, nt)
			if back := readTableFile(t, dst); len(back.Warnings) != 0 {
				t.Errorf("warnings %q", back.Warnings)
			}

			shift := int64(256 * mib)
			g := old.partition(grow)
			for _, p := range old.Partitions {
				want := p
				switch {
				case p.Number == grow:
					want.Size += shift
				case p.Start > g.Start:
					want.Start += shift
				case p.Extended && p.Start < g.Start && g.Start < p.End():
					want.Size += shift
				}
				if np := nt.partition(p.Number); *np != want {
					t.Errorf("partition %d: %+v, want %+v", p.Number, *np, want)
				}
			}
		})
	}
}

// TestResizeMBRLimit grows an MBR disk onto a 4 TiB disk: the growth stops
// at 2^32 sectors.
func TestResizeMBRLimit(t *testing.T) {
	dir := t.TempDir()
	img := makeMBR(t, dir)
	old := readTableFile(t, img)
	newSize := int64(4) << 40
	nt, err := old.Resize(newSize, 2)
	if err != nil {
		t.Fatal(err)
	}
	if len(nt.Warnings) != 1 || !strings.Contains(nt.Warnings[0], "2^32") {
		t.Errorf("warnings %q", nt.Warnings)
	}
	if end := nt.partition(4).End(); end > 2<<40 || end <= 2<<40-mib {
		t.Errorf("last partition ends at %d, want just below 2 TiB", end)
	}
	dst := sparseFile(t, dir, "huge.img", newSize)
	restoreResized(t, img, dst, old, nt)
	checkAgainstSfdisk(t, nt, dst)
}

func TestResizeErrors(t *testing.T) {
	dir := t.TempDir()
	gpt := readTableFile(t, makeGPT(t, dir))
	mbr := readTableFile(t, makeMBR(t, dir))
	for _, c := range []struct {
		tab  *Table
		need int64
	}{
		{gpt, 256 * mib},              // the recovery partition ends at the last usable LBA
		{mbr, (403456 + 40960) * 512}, // the end of partition 4
	} {
		_, err := c.tab.Resize(c.need-512, 0)
		var tooSmall *TooSmallError
		if !errors.As(err, &tooSmall) || tooSmall.Need != c.need || !strings.Contains(err.Error(), "target too small: needs") {
			t.Errorf("%s: resize to %d: %v", c.tab.Type, c.need-512, err)
		}
		if _, err := c.tab.Resize(c.need, 0); err != nil {
			t.Errorf("%s: resize to %d: %v", c.tab.Type, c.need, err)
		}
		if _, err := c.tab.Resize(2*c.need, 9); err == nil || !strings.Contains(err.Error(), "no partition 9") {
			t.Errorf("%s: grow 9: %v", c.tab.Type, err)
		}
	}
	if _, err := mbr.Resize(2*mbr.DiskSize, 3); err == nil || !strings.Contains(err.Error(), "extended") {
		t.Errorf("grow extended: %v", err)
	}
}

// TestResizeGPTShrink fits a GPT with free space at its end onto a smaller
// disk: the backup moves in, nothing else changes.
func TestResizeGPTShrink(t *testing.T) {
	needTools(t, "sgdisk")
	dir := t.TempDir()
	img := sparseFile(t, dir, "gpt.img", 256*mib)
	run(t, "", "sgdisk", "-n1:1M:+100M", "-t1:8300", img)
	old := readTableFile(t, img)
	nt, err := old.Resize(128*mib, 1)
	if err != nil {
		t.Fatal(err)
	}
	if *nt.partition(1) != *old.partition(1) {
		t.Errorf("partition changed: %+v", nt.Partitions)
	}
	dst := sparseFile(t, dir, "small.img", 128*mib)
	restoreResized(t, img, dst, old, nt)
	if out := run(t, "", "sgdisk", "-v", dst); !strings.Contains(out, "No problems found") {
		t.Errorf("sgdisk -v:\n%s", out)
	}
}
