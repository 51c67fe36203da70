package ext

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"

	"cairn/internal/fs"
)

// Extended attributes. An inode's xattrs are in two places: in the inode,
// after its extra fields (a 4-byte magic number, then entries whose values'
// offsets count from the first entry), and in one external block named by
// i_file_acl (a 32-byte header starting with the magic number, then entries
// whose values' offsets count from the block's start). Each entry:
//
//	0x00 e_name_len    u8
//	0x01 e_name_index  u8: the name's prefix (xattrPrefixes)
//	0x02 e_value_offs  u16
//	0x04 e_value_inum  u32: with ea_inode, the inode holding the value
//	0x08 e_value_size  u32
//	0x0C e_hash        u32
//	0x10 e_name        e_name_len bytes, the entry padded to 4 bytes
//
// The list ends at 4 zero bytes. POSIX ACLs are stored in ext4's own compact
// form (ext4_acl_header version 1, 4-byte entries without an id); the reader
// gives them in the form getxattr(2) returns and setxattr(2) takes (version
// 2, 8-byte entries), so they restore anywhere.

const (
	xattrMagic       = 0xEA020000
	xattrBlockHeader = 32 // bytes before the first entry of an xattr block
	xattrEntryHeader = 16 // bytes of an entry before its name
	// xattrMaxValue is the largest value the kernel's VFS passes (XATTR_SIZE_MAX).
	xattrMaxValue = 64 << 10

	xattrIndexSystem = 7 // "system.": system.data holds inline data
)

// xattrPrefixes is the name prefix of each e_name_index that getxattr(2)
// shows; the others (system.data, the encryption context, richacl, Lustre)
// are the filesystem's own and are not listed.
var xattrPrefixes = map[uint8]string{
	1:  "user.",
	2:  "system.posix_acl_access",
	3:  "system.posix_acl_default",
	4:  "trusted.",
	6:  "security.",
	10: "gnu.",
}

// rawXattr is one stored xattr: its name index, name (without prefix) and
// value, or the inode holding its value.
type rawXattr struct {
	index uint8
	name  string
	value []byte
	inum  uint32 // e_value_inum: the value is in this inode (ea_inode)
	size  uint32 // e_value_size
}

// parseXattrs decodes the entries in area, values at valueBase+e_value_offs
// within it (entries and values must lie in area), and appends them to out.
func parseXattrs(area []byte, entries, valueBase int, out []rawXattr) ([]rawXattr, error) {
	le := binary.LittleEndian
	off := entries
	for {
		if off+4 > len(area) {
			return nil, errors.New("xattr list runs past its end")
		}
		if le.Uint32(area[off:]) == 0 {
			return out, nil
		}
		if off+xattrEntryHeader > len(area) {
			return nil, errors.New("xattr entry runs past its end")
		}
		e := area[off:]
		nameLen := int(e[0])
		next := off + (xattrEntryHeader+nameLen+3)&^3
		if off+xattrEntryHeader+nameLen > len(area) {
			return nil, fmt.Errorf("xattr entry with a %d-byte name at %d runs past its end", nameLen, off)
		}
		x := rawXattr{
			index: e[1],
			name:  string(e[xattrEntryHeader : xattrEntryHeader+nameLen]),
			inum:  le.Uint32(e[4:]),
			size:  le.Uint32(e[8:]),
		}
		if x.inum == 0 {
			vo := valueBase + int(le.Uint16(e[2:]))
			if x.size > uint32(len(area)) || vo > len(area)-int(x.size) {
				return nil, fmt.Errorf("xattr value of %d bytes at %d outside its %d bytes", x.size, vo, len(area))
			}
			x.value = area[vo : vo+int(x.size)]
		}
		out = append(out, x)
		off = next
	}
}

// rawXattrs returns the xattrs of in: those in the inode, then those in its
// external block. Values are shared with the cache: the caller copies them.
func (r *reader) rawXattrs(in *inode) ([]rawXattr, error) {
	var out []rawXattr
	var err error
	if in.xattrArea != nil {
		if out, err = parseXattrs(in.xattrArea, 0, 0, out); err != nil {
			return nil, fmt.Errorf("in-inode xattrs: %w", err)
		}
	}
	if in.fileACL != 0 {
		if err := r.f.checkBlocks(in.fileACL, 1); err != nil {
			return nil, fmt.Errorf("xattr block: %w", err)
		}
		b, err := r.block(in.fileACL)
		if err != nil {
			return nil, fmt.Errorf("xattr block: %w", err)
		}
		le := binary.LittleEndian
		if le.Uint32(b) != xattrMagic || le.Uint32(b[8:]) != 1 {
			return nil, fmt.Errorf("xattr block %d: bad header", in.fileACL)
		}
		if out, err = parseXattrs(b, xattrBlockHeader, 0, out); err != nil {
			return nil, fmt.Errorf("xattr block %d: %w", in.fileACL, err)
		}
	}
	return out, nil
}

// xattrs returns the xattrs of in that getxattr(2) lists, with their full
// names, sorted by name, values copied; ACLs converted to the xattr form.
func (r *reader) xattrs(in *inode, path string) ([]fs.Xattr, error) {
	raw, err := r.rawXattrs(in)
	if err != nil {
		return nil, err
	}
	var out []fs.Xattr
	for _, x := range raw {
		prefix, ok := xattrPrefixes[x.index]
		if !ok {
			continue
		}
		name := prefix + x.name
		switch {
		case x.index == 2 || x.index == 3:
			name = prefix // the ACLs have an empty name
		case x.name == "":
			continue // "user." alone is no name
		}
		if strings.IndexByte(name, 0) >= 0 {
			return nil, fmt.Errorf("xattr name %q holds NUL", name)
		}
		value := x.value
		if x.inum != 0 {
			if value, err = r.xattrInodeValue(x, path); err != nil {
				return nil, fmt.Errorf("xattr %s: %w", name, err)
			}
		} else {
			value = slices.Clone(value)
		}
		if x.index == 2 || x.index == 3 {
			if value, err = aclToXattr(value); err != nil {
				return nil, fmt.Errorf("xattr %s: %w", name, err)
			}
		}
		if value == nil {
			value = []byte{}
		}
		out = append(out, fs.Xattr{Name: name, Value: value})
	}
	slices.SortStableFunc(out, func(a, b fs.Xattr) int { return strings.Compare(a.Name, b.Name) })
	// The same name twice (in the inode and the block): the inode's wins, as
	// for getxattr(2).
	out = slices.CompactFunc(out, func(a, b fs.Xattr) bool { return a.Name == b.Name })
	return out, nil
}

// xattrInodeValue reads a value stored in its own inode (ea_inode).
func (r *reader) xattrInodeValue(x rawXattr, path string) ([]byte, error) {
	if x.size > xattrMaxValue {
		return nil, fmt.Errorf("value of %d bytes", x.size)
	}
	in, err := r.inode(x.inum)
	if err != nil {
		return nil, err
	}
	if in.mode&modeTypeMask != modeRegular || in.flags&inodeFlagEAInode == 0 || in.size != uint64(x.size) {
		return nil, fmt.Errorf("inode %d does not hold an xattr value of %d bytes", x.inum, x.size)
	}
	fr, err := r.openFile(in, path)
	if err != nil {
		return nil, err
	}
	b := make([]byte, x.size)
	if _, err := fr.ReadAt(b, 0); err != nil && len(b) > 0 {
		return nil, err
	}
	return b, nil
}

// ACL tags (e_tag) and the xattr form's version.
const (
	aclUserObj  = 0x01
	aclUser     = 0x02
	aclGroupObj = 0x04
	aclGroup    = 0x08
	aclMask     = 0x10
	aclOther    = 0x20

	ext4ACLVersion  = 1
	xattrACLVersion = 2
	aclUndefinedID  = 0xFFFFFFFF
)

// aclToXattr converts an ACL from ext4's stored form to the xattr form:
// a version 2 header, then {e_tag u16, e_perm u16, e_id u32} entries, the id
// of entries that have none being ACL_UNDEFINED_ID.
func aclToXattr(b []byte) ([]byte, error) {
	le := binary.LittleEndian
	if len(b) < 4 || le.Uint32(b) != ext4ACLVersion {
		return nil, errors.New("bad ACL header")
	}
	out := le.AppendUint32(nil, xattrACLVersion)
	for b = b[4:]; len(b) > 0; {
		if len(b) < 4 {
			return nil, errors.New("truncated ACL entry")
		}
		tag, perm := le.Uint16(b), le.Uint16(b[2:])
		id := uint32(aclUndefinedID)
		switch tag {
		case aclUser, aclGroup:
			if len(b) < 8 {
				return nil, errors.New("truncated ACL entry")
			}
			id = le.Uint32(b[4:])
			b = b[8:]
		case aclUserObj, aclGroupObj, aclMask, aclOther:
			b = b[4:]
		default:
			return nil, fmt.Errorf("ACL entry tag %#x", tag)
		}
		out = le.AppendUint16(out, tag)
		out = le.AppendUint16(out, perm)
		out = le.AppendUint32(out, id)
	}
	return out, nil
}
