//go:build linux

package swap

import (
	"bytes"
	"os"
	"strconv"
	"testing"
)

// TestRealSwap makes swap areas with mkswap on random bytes, for pages of 4,
// 8 and 64 KiB, and checks Probe against blkid; then it copies only the used
// extent (the header page) into zeros and checks that blkid and swaplabel
// read the copy as the original.
func TestRealSwap(t *testing.T) {
	requireTools(t, "mkswap", "blkid", "swaplabel")
	const size = 16 << 20
	for _, ps := range []int{4096, 8192, 65536} {
		t.Run(strconv.Itoa(ps), func(t *testing.T) {
			img := randomImage(t, size)
			label := "swap " + strconv.Itoa(ps)
			uuid := "d2f1c6a4-1b2c-4d3e-8f90-a1b2c3d4e5f6"
			run(t, "mkswap", "-p", strconv.Itoa(ps), "-L", label, "-U", uuid, img)
			a := probeFile(t, img, Probe)
			if a.Type != "swap" || blkid(t, img, "TYPE") != "swap" {
				t.Errorf("Type %q, blkid %q", a.Type, blkid(t, img, "TYPE"))
			}
			if want := blkid(t, img, "LABEL"); a.Label != want || a.Label != label {
				t.Errorf("Label %q, blkid %q, mkswap %q", a.Label, want, label)
			}
			if want := blkid(t, img, "UUID"); a.UUID != want || a.UUID != uuid {
				t.Errorf("UUID %q, blkid %q, mkswap %q", a.UUID, want, uuid)
			}
			if a.BlockSize != ps || a.Size != size || len(a.Used) != 1 || a.Used[0].Off != 0 || a.Used[0].Len != int64(ps) {
				t.Errorf("BlockSize %d, Size %d, Used %v; want the first of %d pages of %d bytes", a.BlockSize, a.Size, a.Used, size/ps, ps)
			}

			cp := copyUsed(t, img, a)
			for _, tag := range []string{"TYPE", "LABEL", "UUID", "VERSION"} {
				if got, want := blkid(t, cp, tag), blkid(t, img, tag); got != want {
					t.Errorf("the copy's %s is %q, the original's %q", tag, got, want)
				}
			}
			if got, want := run(t, "swaplabel", cp), run(t, "swaplabel", img); got != want {
				t.Errorf("swaplabel: the copy has %q, the original %q", got, want)
			}
			orig, _ := os.ReadFile(img)
			copied, _ := os.ReadFile(cp)
			if !bytes.Equal(orig[:ps], copied[:ps]) {
				t.Error("the copy's header page differs")
			}
		})
	}
}
