package disk

import (
	"bytes"
	"errors"
	"os"
	"slices"
	"strings"
	"testing"
)

func TestReadGPTMatchesSfdisk(t *testing.T) {
	img := makeGPT(t, t.TempDir())
	tab := readTableFile(t, img)
	if tab.Type != "gpt" || len(tab.Warnings) != 0 {
		t.Fatalf("type %s, warnings %q", tab.Type, tab.Warnings)
	}
	checkAgainstSfdisk(t, tab, img)
	names := []string{"EFI System", "Linux filesystem", "Microsoft basic data", "Windows recovery"}
	for i, p := range tab.Partitions {
		if p.TypeName != names[i] {
			t.Errorf("partition %d type name %q, want %q", p.Number, p.TypeName, names[i])
		}
	}
	if p := tab.Partitions[0]; p.Start != mib || p.Size != 64*mib {
		t.Errorf("EFI partition at %d+%d", p.Start, p.Size)
	}
	want := GPTInfo{FirstUsableLBA: 34, LastUsableLBA: 256*2048 - 34, PrimaryHeaderLBA: 1, PrimaryEntriesLBA: 2,
		BackupHeaderLBA: 256*2048 - 1, BackupEntriesLBA: 256*2048 - 33, EntryCount: 128, EntrySize: 128}
	if *tab.GPT != want {
		t.Errorf("GPT info %+v, want %+v", *tab.GPT, want)
	}
}

func TestReadMBRMatchesSfdisk(t *testing.T) {
	img := makeMBR(t, t.TempDir())
	tab := readTableFile(t, img)
	if tab.Type != "mbr" || len(tab.Warnings) != 0 || tab.DiskID != "0x5eedc0de" {
		t.Fatalf("type %s id %s, warnings %q", tab.Type, tab.DiskID, tab.Warnings)
	}
	checkAgainstSfdisk(t, tab, img)
	var numbers []int
	for _, p := range tab.Partitions {
		numbers = append(numbers, p.Number)
	}
	if !slices.Equal(numbers, []int{1, 2, 3, 4, 5, 6}) {
		t.Errorf("numbers %v", numbers)
	}
	if p := tab.partition(1); !p.Bootable || p.TypeName != "FAT16" {
		t.Errorf("partition 1: %+v", p)
	}
	if p := tab.partition(3); !p.Extended {
		t.Errorf("partition 3 not extended: %+v", p)
	}
	if p := tab.partition(5); p.TypeName != "Linux swap" {
		t.Errorf("partition 5: %+v", p)
	}
}

// TestEncodeUnchanged checks that an unchanged table encodes to the bytes on
// the disk it was read from.
func TestEncodeUnchanged(t *testing.T) {
	dir := t.TempDir()
	for _, img := range []string{makeGPT(t, dir), makeMBR(t, dir)} {
		tab := readTableFile(t, img)
		regions, err := tab.Encode()
		if err != nil {
			t.Fatal(err)
		}
		want := map[string]int{"gpt": 5, "mbr": 3}[tab.Type]
		if len(regions) != want {
			t.Errorf("%s: %d regions, want %d", tab.Type, len(regions), want)
		}
		for _, r := range regions {
			if got := readAt(t, img, r.Off, len(r.Data)); !bytes.Equal(got, r.Data) {
				t.Errorf("%s: region at %d (%d bytes) differs from the disk", tab.Type, r.Off, len(r.Data))
			}
		}
		// A resize to the same size with nothing to grow changes nothing either.
		same, err := tab.Resize(tab.DiskSize, 0)
		if err != nil {
			t.Fatal(err)
		}
		regions2, _ := same.Encode()
		for i := range regions {
			if regions[i].Off != regions2[i].Off || !bytes.Equal(regions[i].Data, regions2[i].Data) {
				t.Errorf("%s: resize to the same size changed region %d", tab.Type, i)
			}
		}
	}
}

func TestGPTBackupFallback(t *testing.T) {
	dir := t.TempDir()
	img := makeGPT(t, dir)
	good := readTableFile(t, img)

	// A damaged primary header: read from the backup, with a warning.
	hdr := readAt(t, img, 512, 512)
	hdr[60] ^= 0xff // inside the disk GUID
	writeAt(t, img, hdr, 512)
	tab := readTableFile(t, img)
	if len(tab.Warnings) != 1 || !strings.Contains(tab.Warnings[0], "primary GPT damaged") || !strings.Contains(tab.Warnings[0], "CRC") {
		t.Errorf("warnings %q", tab.Warnings)
	}
	if !slices.Equal(tab.Partitions, good.Partitions) || tab.DiskID != good.DiskID || *tab.GPT != *good.GPT {
		t.Errorf("backup read differs:\n%+v\n%+v", tab.Partitions, good.Partitions)
	}
	// Encode repairs the primary: the regions give the original disk back.
	regions, err := tab.Encode()
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range regions {
		writeAt(t, img, r.Data, r.Off)
	}
	if tab := readTableFile(t, img); len(tab.Warnings) != 0 {
		t.Errorf("after repair: %q", tab.Warnings)
	}
	if out := run(t, "", "sgdisk", "-v", img); !strings.Contains(out, "No problems found") {
		t.Errorf("sgdisk -v after repair:\n%s", out)
	}

	// A damaged primary entry array: the same.
	ent := readAt(t, img, 1024, 512)
	ent[40] ^= 1
	writeAt(t, img, ent, 1024)
	tab = readTableFile(t, img)
	if len(tab.Warnings) != 1 || !strings.Contains(tab.Warnings[0], "entries") || !slices.Equal(tab.Partitions, good.Partitions) {
		t.Errorf("damaged entries: warnings %q", tab.Warnings)
	}

	// Both damaged: an error.
	last := good.DiskSize - 512
	bh := readAt(t, img, last, 512)
	bh[60] ^= 0xff
	writeAt(t, img, bh, last)
	d, _ := Open(img)
	defer d.Close()
	if _, err := ReadTable(d, d.Size, 512); !errors.Is(err, ErrNoGPT) {
		t.Errorf("both damaged: err %v", err)
	}
}

func TestReadTableNone(t *testing.T) {
	dir := t.TempDir()
	img := sparseFile(t, dir, "zero.img", 8*mib)
	tab := readTableFile(t, img)
	if tab.Type != "none" || len(tab.Partitions) != 0 {
		t.Errorf("zeros: %+v", tab)
	}
	if table, gaps := tab.Layout(); len(table) != 0 || !slices.Equal(gaps, []Extent{{0, 8 * mib}}) {
		t.Errorf("layout of a disk without table: %v %v", table, gaps)
	}
	if regions, err := tab.Encode(); len(regions) != 0 || err != nil {
		t.Errorf("encode of no table: %v %v", regions, err)
	}
	needTools(t, "mkfs.vfat")
	run(t, "", "mkfs.vfat", img)
	if tab := readTableFile(t, img); tab.Type != "none" {
		t.Errorf("FAT without a partition table read as %s: %+v", tab.Type, tab.Partitions)
	}
}

func TestLayout(t *testing.T) {
	dir := t.TempDir()
	gpt := readTableFile(t, makeGPT(t, dir))
	table, gaps := gpt.Layout()
	end := int64(256 * mib)
	if want := []Extent{{0, 34 * 512}, {end - 33*512, 33 * 512}}; !slices.Equal(table, want) {
		t.Errorf("GPT table regions %v, want %v", table, want)
	}
	// The recovery partition ends at the last usable LBA.
	if want := []Extent{{0, mib}, {end - 33*512, 33 * 512}}; !slices.Equal(gaps, want) {
		t.Errorf("GPT gaps %v, want %v", gaps, want)
	}

	mbr := readTableFile(t, makeMBR(t, dir))
	table, gaps = mbr.Layout()
	ext, l5, l6 := mbr.partition(3), mbr.partition(5), mbr.partition(6)
	if want := []Extent{{0, 512}, {ext.Start, 512}, {l5.End(), 512}}; !slices.Equal(table, want) {
		t.Errorf("MBR table regions %v, want %v", table, want)
	}
	// Gaps: before partition 1, the extended partition's EBRs and alignment
	// space before each logical partition, and the end of the disk.
	want := []Extent{{0, mib}, {ext.Start, l5.Start - ext.Start}, {l5.End(), l6.Start - l5.End()},
		{mbr.partition(4).End(), end - mbr.partition(4).End()}}
	if !slices.Equal(gaps, want) {
		t.Errorf("MBR gaps %v, want %v", gaps, want)
	}
}

func TestGuessSectorSize(t *testing.T) {
	img := makeGPT(t, t.TempDir())
	b, err := os.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	tab, err := ReadTable(bytes.NewReader(b), int64(len(b)), 0)
	if err != nil || tab.SectorSize != 512 || tab.Type != "gpt" {
		t.Fatalf("%v %+v", err, tab)
	}
}
