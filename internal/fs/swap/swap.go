// Package swap recognises a Linux swap area. Only its first page, the header
// with the signature, label, UUID and bad-page list, is used: the rest holds
// pages of processes that ended with the system that wrote them, so an image
// restores it as zeros.
//
// The header (include/linux/swap.h, union swap_header) is one page, whose
// last 10 bytes are the signature "SWAPSPACE2" (version 1) or "SWAP-SPACE"
// (version 0, no label or UUID). The page size is that of the machine that
// made it: 4 KiB here, 8 to 64 KiB on others, so, as blkid does, the signature
// is looked for at the end of each. Version 1's fields start at byte 1024 in
// that machine's byte order: version (1), last_page, nr_badpages, uuid[16],
// volume_name[16].
//
// A swap area that holds a hibernation image (signatures S1SUSPEND, S2SUSPEND,
// ULSUSPEND, LINHIB0001, or TuxOnIce's) is not free space, so Probe does not
// recognise it, and it is kept whole.
package swap

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"strings"

	"cairn/internal/fs"
)

// pageSizes are the page sizes whose header blkid looks for, in its order.
var pageSizes = []int64{4096, 8192, 16384, 32768, 65536}

// minSize is blkid's smallest swap area: 10 pages of 4 KiB.
const minSize = 10 * 4096

// tuxOnIce is the magic TuxOnIce writes at the start of a swap area holding
// its hibernation image.
var tuxOnIce = []byte("\xed\xc3\x02\xe9\x98\x56\xe5\x0c")

// Probe reads the swap header on r, a partition of size bytes. It returns an
// error matching fs.ErrUnknown if r holds no swap area, or one holding a
// hibernation image.
func Probe(r io.ReaderAt, size int64) (*fs.Allocation, error) {
	if size < minSize {
		return nil, fmt.Errorf("swap: %w: %d bytes is too small", fs.ErrUnknown, size)
	}
	head := make([]byte, 4096)
	if err := readAt(r, head, 0); err != nil {
		return nil, fmt.Errorf("swap: %w", err)
	}
	if bytes.HasPrefix(head, tuxOnIce) {
		return nil, fmt.Errorf("swap: %w: a TuxOnIce hibernation image", fs.ErrUnknown)
	}
	var sig [10]byte
	for _, ps := range pageSizes {
		if ps > size {
			break
		}
		if err := readAt(r, sig[:], ps-10); err != nil {
			return nil, fmt.Errorf("swap: %w", err)
		}
		switch s := string(sig[:]); {
		case s == "SWAPSPACE2":
			return version1(head, ps, size)
		case s == "SWAP-SPACE":
			return allocation(ps, size/ps*ps, "", ""), nil
		case s == "LINHIB0001" || s[:9] == "S1SUSPEND" || s[:9] == "S2SUSPEND" || s[:9] == "ULSUSPEND":
			return nil, fmt.Errorf("swap: %w: a hibernation image (%q)", fs.ErrUnknown, strings.TrimRight(s, "\x00"))
		}
	}
	return nil, fmt.Errorf("swap: %w: no swap signature", fs.ErrUnknown)
}

// version1 reads a SWAPSPACE2 header from head, the first 4 KiB of a swap
// area with pages of pageSize bytes on a partition of size bytes.
func version1(head []byte, pageSize, size int64) (*fs.Allocation, error) {
	h := head[1024:]
	var order binary.ByteOrder = binary.LittleEndian
	switch {
	case order.Uint32(h) == 1:
	case binary.BigEndian.Uint32(h) == 1:
		order = binary.BigEndian
	default:
		return nil, fmt.Errorf("swap: %w: header version %#x", fs.ErrUnknown, order.Uint32(h))
	}
	lastPage := int64(order.Uint32(h[4:]))
	if lastPage == 0 {
		return nil, fmt.Errorf("swap: %w: last page is 0", fs.ErrUnknown)
	}
	// A header claiming more pages than the partition holds is clipped: the
	// kernel refuses such an area, and the image keeps it as it is.
	swapSize := min((lastPage+1)*pageSize, size/pageSize*pageSize)
	var label, uuid string
	// blkid's "is there any garbage down there?" check: two words of the
	// padding after the name must be zero for the label and UUID to count.
	if pad := h[44:]; order.Uint32(pad[32*4:]) == 0 && order.Uint32(pad[33*4:]) == 0 {
		label = cString(h[28:44])
		if u := h[12:28]; !allZero(u) {
			uuid = fmt.Sprintf("%x-%x-%x-%x-%x", u[0:4], u[4:6], u[6:8], u[8:10], u[10:16])
		}
	}
	return allocation(pageSize, swapSize, label, uuid), nil
}

func allocation(pageSize, swapSize int64, label, uuid string) *fs.Allocation {
	return &fs.Allocation{
		Type:      "swap",
		Label:     label,
		UUID:      uuid,
		BlockSize: int(pageSize),
		Size:      swapSize,
		Used:      fs.Normalize([]fs.Extent{{Off: 0, Len: pageSize}}, swapSize),
	}
}

// cString returns b up to its first NUL, without trailing white space, as
// blkid shows a label.
func cString(b []byte) string {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	return strings.TrimRight(string(b), " \t\n\v\f\r")
}

func allZero(b []byte) bool {
	for _, x := range b {
		if x != 0 {
			return false
		}
	}
	return true
}

// readAt fills buf from r at off; a short read is an error.
func readAt(r io.ReaderAt, buf []byte, off int64) error {
	n, err := r.ReadAt(buf, off)
	if n == len(buf) {
		return nil
	}
	if err == nil || err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return err
}
