package ext

import (
	"encoding/binary"
	"fmt"
	"strings"
)

// Folders. A folder's content is a list of entries, in each of its blocks
// (or, with inline data, in i_block after a 4-byte parent inode number, then
// in the system.data xattr's value):
//
//	0x00 inode     u32: 0 for an unused entry
//	0x04 rec_len   u16: bytes to the next entry
//	0x06 name_len  u8
//	0x07 file_type u8 (with the filetype feature; the inode says it anyway)
//	0x08 name      name_len bytes
//
// A hashed (dx) folder's first block holds "." and "..", the second covering
// the rest of the block, where the hash index lies; its other index blocks
// start with an unused entry covering the whole block. So every block of a
// hashed folder reads as a linear one, and the reader reads them all.

// dirent is one used folder entry.
type dirent struct {
	ino  uint32
	name string
}

// minRecLen is the smallest entry the kernel accepts (a one-byte name).
const minRecLen = 12

// maxDamagedBlocks is the most damaged blocks and entries of a folder read
// past: a folder that damaged is most likely not a folder.
const maxDamagedBlocks = 100

// dirEntries returns the used entries of folder in, without "." and "..".
// Damage confined to one block (a broken chain of entries, which loses the
// rest of the block; a block that cannot be read or is mapped twice) or to one
// entry (a bad name) is reported in damaged, and the other blocks and entries
// are still returned; damage to the folder as a whole (its size, its block
// map) is err.
func (r *reader) dirEntries(in *inode) (out []dirent, damaged []error, err error) {
	if in.flags&inodeFlagInline != 0 {
		data, err := r.inlineData(in)
		if err != nil {
			return nil, nil, err
		}
		if len(data) < len(in.block) {
			return nil, nil, fmt.Errorf("inline folder of %d bytes", len(data))
		}
		if out, err = r.parseDirBlock(data[4:len(in.block)], out, &damaged); err != nil {
			damaged = append(damaged, fmt.Errorf("inline entries: %w", err))
		}
		if out, err = r.parseDirBlock(data[len(in.block):], out, &damaged); err != nil {
			damaged = append(damaged, fmt.Errorf("inline entries in system.data: %w", err))
		}
		return out, damaged, nil
	}
	bs := uint64(r.f.blockSize)
	nblocks := (in.size + bs - 1) / bs
	if nblocks > r.f.sb.blocksCount {
		return nil, nil, fmt.Errorf("folder of %d bytes is larger than the filesystem", in.size)
	}
	m := &blockMapper{r: r, in: in}
	seen := make(map[uint64]bool)
	for l := uint64(0); l < nblocks; {
		phys, n, mapped, err := m.find(l)
		if err != nil {
			return nil, nil, err
		}
		n = min(n, nblocks-l)
		if mapped {
			for i := range n {
				// A block read twice would list its entries twice: in a
				// damaged map, as often as the folder is long. The map
				// cannot be trusted past it.
				if seen[phys+i] {
					damaged = append(damaged, fmt.Errorf("folder block %d mapped twice: the rest of the folder is not read", phys+i))
					return out, damaged, nil
				}
				if len(damaged) >= maxDamagedBlocks {
					damaged = append(damaged, fmt.Errorf("%d damaged blocks: the rest of the folder is not read", len(damaged)))
					return out, damaged, nil
				}
				seen[phys+i] = true
				b, err := r.block(phys + i)
				if err == nil {
					out, err = r.parseDirBlock(b, out, &damaged)
				}
				if err != nil {
					damaged = append(damaged, fmt.Errorf("folder block %d (logical %d): %w", phys+i, l+i, err))
				}
			}
		}
		l += n
	}
	return out, damaged, nil
}

// recLen decodes rec_len: with 64 KiB blocks, 65535 and 0 stand for 65536
// and the low 2 bits hold bits 16 and 17 (the kernel's ext4_rec_len_from_disk).
func (r *reader) recLen(v uint16) int {
	if r.f.blockSize < 65536 {
		return int(v)
	}
	if v == 65535 || v == 0 {
		return 65536
	}
	return int(v&65532) | int(v&3)<<16
}

// parseDirBlock appends the used entries in b, a chain of entries that must
// end exactly at its end, to out: up to the first broken link of the chain,
// an error. Entries with bad names are left out and reported in damaged.
func (r *reader) parseDirBlock(b []byte, out []dirent, damaged *[]error) ([]dirent, error) {
	le := binary.LittleEndian
	for off := 0; off < len(b); {
		if len(b)-off < 8 {
			return nil, fmt.Errorf("entry at %d runs past the end", off)
		}
		ino := le.Uint32(b[off:])
		rec := r.recLen(le.Uint16(b[off+4:]))
		nameLen := int(b[off+6])
		switch {
		case rec < minRecLen || rec%4 != 0:
			return out, fmt.Errorf("entry at %d: rec_len %d", off, rec)
		case rec > len(b)-off:
			return out, fmt.Errorf("entry at %d: rec_len %d past the end", off, rec)
		case 8+nameLen > rec:
			return out, fmt.Errorf("entry at %d: name_len %d past rec_len %d", off, nameLen, rec)
		}
		if ino != 0 {
			name := string(b[off+8 : off+8+nameLen])
			switch {
			case name == "." || name == "..":
			case name == "":
				*damaged = append(*damaged, fmt.Errorf("entry at %d: empty name", off))
			case strings.ContainsAny(name, "/\x00"):
				*damaged = append(*damaged, fmt.Errorf("entry at %d: name %q holds '/' or NUL", off, name))
			default:
				out = append(out, dirent{ino, name})
			}
		}
		off += rec
	}
	return out, nil
}
