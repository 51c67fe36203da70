package disk

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// needTools skips the test when a command it runs is missing.
func needTools(t testing.TB, names ...string) {
	t.Helper()
	for _, n := range names {
		if _, err := exec.LookPath(n); err != nil {
			t.Fatalf("%s not installed: .ci/run installs it", n)
		}
	}
}

// run runs a command and returns its standard output; it fails the test on
// error.
func run(t testing.TB, stdin string, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\n%s%s", name, strings.Join(args, " "), err, out.String(), errb.String())
	}
	return out.String()
}

// sparseFile makes an empty (sparse) file of size bytes.
func sparseFile(t testing.TB, dir, name string, size int64) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(p, size); err != nil {
		t.Fatal(err)
	}
	return p
}

const mib = 1 << 20

// makeGPT makes a 256 MiB image with the GPT of a Windows-and-Linux disk:
// EFI 1 MiB-65 MiB, Linux root, Microsoft basic data, and a Windows recovery
// partition filling the rest, with names and some attributes.
func makeGPT(t testing.TB, dir string) string {
	t.Helper()
	needTools(t, "sgdisk")
	return cachedImage(t, dir, "gpt.img", func(p string) {
		makeGPTWith(t, p)
	})
}

func makeGPTWith(t testing.TB, p string) {
	run(t, "", "sgdisk",
		"-n1:1M:+64M", "-t1:ef00", "-c1:EFI system partition",
		"-n2:0:+100M", "-t2:8300", "-c2:root",
		"-n3:0:+40M", "-t3:0700", "-c3:Basic data – ü",
		"-n4:0:0", "-t4:2700", "-c4:Recovery",
		"-A", "4:set:0", "-A", "3:set:63", "-A", "3:set:62",
		p)
}

// imageCache holds the first and last MiB of the images cachedImage made
// (sgdisk takes a second for each).
var imageCache = map[string][2][]byte{}

// cachedImage returns dir/name, a 256 MiB image that make writes only the
// first and last MiB of, making it once per test binary.
func cachedImage(t testing.TB, dir, name string, make func(path string)) string {
	t.Helper()
	p := sparseFile(t, dir, name, 256*mib)
	c, ok := imageCache[name]
	if !ok {
		make(p)
		c = [2][]byte{readAt(t, p, 0, mib), readAt(t, p, 255*mib, mib)}
		imageCache[name] = c
		return p
	}
	writeAt(t, p, c[0], 0)
	writeAt(t, p, c[1], 255*mib)
	return p
}

// makeMBR makes a 256 MiB image with an MBR: a bootable FAT16 partition, a
// Linux one, an extended partition with a swap and a Linux logical partition,
// and a last primary after the extended one.
func makeMBR(t testing.TB, dir string) string {
	t.Helper()
	needTools(t, "sfdisk")
	p := sparseFile(t, dir, "mbr.img", 256*mib)
	run(t, "label: dos\nlabel-id: 0x5eedc0de\n,32M,6,*\n,64M,83\n,100M,5\n,20M,83\n,30M,82\n,,83\n", "sfdisk", p)
	return p
}

// sfdiskTable is `sfdisk --json`'s output.
type sfdiskTable struct {
	PartitionTable struct {
		Label      string `json:"label"`
		ID         string `json:"id"`
		Device     string `json:"device"`
		FirstLBA   uint64 `json:"firstlba"`
		LastLBA    uint64 `json:"lastlba"`
		SectorSize int    `json:"sectorsize"`
		Partitions []struct {
			Node     string `json:"node"`
			Start    int64  `json:"start"`
			Size     int64  `json:"size"`
			Type     string `json:"type"`
			UUID     string `json:"uuid"`
			Name     string `json:"name"`
			Attrs    string `json:"attrs"`
			Bootable bool   `json:"bootable"`
		} `json:"partitions"`
	} `json:"partitiontable"`
}

func sfdiskJSON(t testing.TB, path string) sfdiskTable {
	t.Helper()
	var st sfdiskTable
	if err := json.Unmarshal([]byte(run(t, "", "sfdisk", "--json", path)), &st); err != nil {
		t.Fatal(err)
	}
	return st
}

// sfdiskAttrs formats GPT attributes as libfdisk does.
func sfdiskAttrs(a uint64) string {
	var s []string
	for bit, name := range []string{"RequiredPartition", "NoBlockIOProtocol", "LegacyBIOSBootable"} {
		if a&(1<<bit) != 0 {
			s = append(s, name)
		}
	}
	var guid []string
	for bit := 48; bit < 64; bit++ {
		if a&(1<<bit) != 0 {
			guid = append(guid, strconv.Itoa(bit))
		}
	}
	if guid != nil {
		s = append(s, "GUID:"+strings.Join(guid, ","))
	}
	return strings.Join(s, " ")
}

// checkAgainstSfdisk checks that tab says what `sfdisk --json path` says.
func checkAgainstSfdisk(t *testing.T, tab *Table, path string) {
	t.Helper()
	st := sfdiskJSON(t, path).PartitionTable
	label := map[string]string{"gpt": "gpt", "mbr": "dos"}[tab.Type]
	if st.Label != label || !strings.EqualFold(st.ID, tab.DiskID) || st.SectorSize != tab.SectorSize {
		t.Errorf("sfdisk says label %s id %s sector %d; table says %s %s %d", st.Label, st.ID, st.SectorSize, tab.Type, tab.DiskID, tab.SectorSize)
	}
	if tab.GPT != nil && (st.FirstLBA != tab.GPT.FirstUsableLBA || st.LastLBA != tab.GPT.LastUsableLBA) {
		t.Errorf("sfdisk says usable %d-%d; table says %d-%d", st.FirstLBA, st.LastLBA, tab.GPT.FirstUsableLBA, tab.GPT.LastUsableLBA)
	}
	if len(st.Partitions) != len(tab.Partitions) {
		t.Fatalf("sfdisk lists %d partitions, table %d:\n%+v", len(st.Partitions), len(tab.Partitions), tab.Partitions)
	}
	ss := int64(tab.SectorSize)
	for _, sp := range st.Partitions {
		digits := strings.TrimRight(sp.Node, "0123456789") // img1, loop3p1
		n, _ := strconv.Atoi(sp.Node[len(digits):])
		p := tab.partition(n)
		if p == nil {
			t.Errorf("sfdisk's %s missing", sp.Node)
			continue
		}
		typ := sp.Type
		if tab.Type == "mbr" {
			typ = "0x" + fmt.Sprintf("%02s", sp.Type)
		}
		got := fmt.Sprintf("%d %d %s %s %q %q %v", p.Start, p.Size, p.Type, p.UUID, p.Name, sfdiskAttrs(p.Attributes), p.Bootable)
		want := fmt.Sprintf("%d %d %s %s %q %q %v", sp.Start*ss, sp.Size*ss, strings.ToLower(typ), strings.ToLower(sp.UUID), sp.Name, sp.Attrs, sp.Bootable)
		if got != want {
			t.Errorf("partition %d: table says\n%s\nsfdisk says\n%s", n, got, want)
		}
	}
}

// readTableFile reads the table of an image file.
func readTableFile(t testing.TB, path string) *Table {
	t.Helper()
	d, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	tab, err := ReadTable(d, d.Size, d.SectorSize)
	if err != nil {
		t.Fatal(err)
	}
	return tab
}

// writeAt writes b at off of the file at path.
func writeAt(t testing.TB, path string, b []byte, off int64) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

func readAt(t testing.TB, path string, off int64, n int) []byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, n)
	if _, err := f.ReadAt(b, off); err != nil {
		t.Fatal(err)
	}
	return b
}
