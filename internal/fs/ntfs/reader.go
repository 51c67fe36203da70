package ntfs

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"

	"cairn/internal/fs"
)

// The file reader. Every file and folder is an MFT record (with extension
// records if its attributes do not fit): $STANDARD_INFORMATION (times and
// file attributes), one $FILE_NAME per name (hard links, and the DOS 8.3
// names Windows adds), the unnamed $DATA (the content) and named ones
// (alternate data streams), $REPARSE_POINT for symbolic links and
// junctions; a folder has an index of its file names (index.go).
//
// $STANDARD_INFORMATION: creation, modification, MFT change and access times
// (u64 at 0, 8, 16, 24; 100 ns units since 1601-01-01 UTC), file attributes
// (u32 at 32: 0x01 read-only, 0x04 system, 0x400 reparse point).
// $REPARSE_POINT: tag (u32 at 0), data length (u16 at 4), data at 8; for a
// symbolic link (tag 0xA000000C) and a junction (0xA0000003) the data holds
// the substitute name's offset and length (u16 at 0 and 2) and the print
// name's (u16 at 4 and 6), both in the path buffer that follows at 12 for a
// link (after a u32 of flags at 8, 1: relative) and at 8 for a junction.

// MFT record numbers of the root folder and of the first record that is not
// one of NTFS's own files.
const (
	recRoot      = 5
	recFirstUser = 16
)

// File attributes.
const (
	fileReadOnly = 0x0001
	fileSystem   = 0x0004
)

// Reparse point tags.
const (
	tagMountPoint = 0xA0000003
	tagSymlink    = 0xA000000C
	tagDedup      = 0x80000013
	tagWOF        = 0x80000017
)

// maxStreamXattr is the size up to which a named stream's content is an
// xattr's value; bigger streams are listed with an empty value, and so are
// those past maxXattrBytes of values for one file.
const (
	maxStreamXattr = 64 << 10
	maxXattrBytes  = 1 << 20
)

// streamPrefix is the xattr name prefix of a named stream.
const streamPrefix = "ntfs.stream."

// reader reads the files of an NTFS volume.
type reader struct {
	v *volume
}

// Open returns a reader of the files of the NTFS volume on r, a partition of
// size bytes. It reads the boot sector and the $MFT's record; the rest is read
// as it is needed, MFT records through a small cache.
//
// An entry's Sys is its MFT record number (a uint64), and so is its Inode;
// hard links (names of one record in one or more folders) are an entry each,
// with Links the number of the record's names (DOS 8.3 names not counted).
// DOS names are left out of listings when the file has another name, and so
// are NTFS's own files ($MFT, $Bitmap, ... records 0-15) from the root,
// names that cannot be file names ('/' or NUL in them, "." or ".."), and all
// but the first of entries of the same name.
//
// Folders have mode 0755, files 0644, or 0444 with the read-only attribute
// set; symbolic links and junctions (reparse points, and the symbolic links
// of Interix and ntfs-3g: system files holding "IntxLNK\x01" and the target)
// are symlinks of mode 0777 whose LinkTarget is the print name (the
// substitute name if that is empty, without its "\??\" prefix), with '\'
// turned into '/' for relative links; Interix devices are devices. MTime,
// ATime and CTime are $STANDARD_INFORMATION's modification, access and MFT
// change times. Named streams ($DATA attributes with a name) are xattrs
// "ntfs.stream.NAME" whose value is the stream's content if it is at most
// 64 KiB and the file's values so far at most 1 MiB; other streams are
// listed with an empty value.
func Open(r io.ReaderAt, size int64) (fs.Reader, error) {
	if size < 512 {
		return nil, fmt.Errorf("ntfs: %w: %d bytes is too small", fs.ErrUnknown, size)
	}
	v, err := open(r, size)
	if err != nil {
		return nil, err
	}
	return &reader{v: v}, nil
}

// Root returns the root folder, named "/".
func (rd *reader) Root() (*fs.Entry, error) {
	f, err := rd.file(recRoot)
	if err != nil {
		return nil, err
	}
	names, err := f.names()
	if err != nil {
		return nil, corrupt(fmt.Errorf("file record %d: %w", f.rec, err))
	}
	e, err := rd.entry(f, "/", names)
	if err != nil {
		return nil, err
	}
	if e.Type != fs.TypeDir {
		return nil, corrupt(errors.New("the root folder, MFT record 5, is no folder"))
	}
	return e, nil
}

// file reads the file of MFT record n, with errors naming it.
func (rd *reader) file(n int64) (*file, error) {
	f, err := rd.v.readFile(n)
	if err != nil {
		return nil, corrupt(fmt.Errorf("file record %d: %w", n, err))
	}
	return f, nil
}

// handle returns the MFT record number of e, one of this reader's entries.
func handle(e *fs.Entry) (int64, error) {
	if e == nil {
		return 0, errors.New("ntfs: nil entry")
	}
	n, ok := e.Sys.(uint64)
	if !ok || n >= 1<<48 {
		return 0, fmt.Errorf("ntfs: %q is not an entry of an NTFS reader", e.Name)
	}
	return int64(n), nil
}

// ReadDir returns the entries of folder dir, sorted by name.
func (rd *reader) ReadDir(dir *fs.Entry) ([]*fs.Entry, error) {
	n, err := handle(dir)
	if err != nil {
		return nil, err
	}
	f, err := rd.file(n)
	if err != nil {
		return nil, err
	}
	if f.base.Flags&recordIsDir == 0 {
		return nil, fmt.Errorf("ntfs: file record %d is not a folder", n)
	}
	index, err := rd.v.readIndex(f)
	if err != nil {
		return nil, corrupt(fmt.Errorf("folder record %d: %w", n, err))
	}
	out := make([]*fs.Entry, 0, len(index))
	seen := make(map[string]bool, len(index))
	subdirs := map[int64]string{}
	for _, ie := range index {
		name, child := ie.name.name, int64(ie.ref&(1<<48-1))
		if !validName(name) || seen[name] || child == n || (n == recRoot && child < recFirstUser) {
			continue
		}
		cf, err := rd.file(child)
		if err != nil {
			return nil, fmt.Errorf("folder record %d: %q: %w", n, name, err)
		}
		if seq := uint16(ie.ref >> 48); seq != 0 && seq != cf.base.Seq {
			return nil, corrupt(fmt.Errorf("folder record %d: %q names file record %d of sequence number %d, the record has %d (a stale entry)",
				n, name, child, seq, cf.base.Seq))
		}
		names, err := cf.names()
		if err != nil {
			return nil, corrupt(fmt.Errorf("file record %d: %w", child, err))
		}
		if !cf.inFolder(n, names) {
			return nil, corrupt(fmt.Errorf("folder record %d: %q names file record %d, which has no name in the folder", n, name, child))
		}
		if ie.name.namespace == nsDOS && cf.hasLongName(n, names) {
			continue
		}
		e, err := rd.entry(cf, name, names)
		if err != nil {
			return nil, err
		}
		if e.Type == fs.TypeDir {
			// A folder is listed only in the folder its names say
			// is its parent, and only once there (folders have no
			// hard links), so that a damaged volume cannot make a
			// loop (a folder inside itself) or list one folder in
			// many places.
			for _, fn := range names {
				if p := int64(fn.parent & (1<<48 - 1)); p != n || child == recRoot {
					return nil, corrupt(fmt.Errorf("folder record %d: %q is folder record %d, whose parent is record %d", n, name, child, p))
				}
			}
			if other, ok := subdirs[child]; ok {
				return nil, corrupt(fmt.Errorf("folder record %d: %q and %q are both folder record %d", n, other, name, child))
			}
			subdirs[child] = name
		}
		seen[name] = true
		out = append(out, e)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// names returns f's $FILE_NAME values.
func (f *file) names() ([]fileName, error) {
	var names []fileName
	for _, a := range f.attrs {
		if a.Type != attrFileName {
			continue
		}
		if a.NonResident {
			return nil, errors.New("non-resident $FILE_NAME")
		}
		fn, err := parseFileName(a.Value)
		if err != nil {
			return nil, err
		}
		names = append(names, fn)
	}
	return names, nil
}

// inFolder reports whether names holds a name in folder dir.
func (f *file) inFolder(dir int64, names []fileName) bool {
	for _, fn := range names {
		if int64(fn.parent&(1<<48-1)) == dir {
			return true
		}
	}
	return false
}

// hasLongName reports whether names holds a name other than a DOS name in
// folder dir.
func (f *file) hasLongName(dir int64, names []fileName) bool {
	for _, fn := range names {
		if fn.namespace != nsDOS && int64(fn.parent&(1<<48-1)) == dir {
			return true
		}
	}
	return false
}

// validName reports whether s can name an entry: not empty, "." or "..", no
// '/' or NUL in it.
func validName(s string) bool {
	return s != "" && s != "." && s != ".." && !strings.ContainsAny(s, "/\x00")
}

// entry returns the entry of file f, named name, whose names are names.
func (rd *reader) entry(f *file, name string, names []fileName) (*fs.Entry, error) {
	fail := func(err error) (*fs.Entry, error) {
		return nil, corrupt(fmt.Errorf("file record %d (%q): %w", f.rec, name, err))
	}
	e := &fs.Entry{Name: name, Inode: uint64(f.rec), Sys: uint64(f.rec)}
	var attrs uint32
	if si := f.first(attrStandardInfo, ""); si != nil && !si.NonResident && len(si.Value) >= 36 {
		b := si.Value
		e.MTime = ntTime(binary.LittleEndian.Uint64(b[8:]))
		e.CTime = ntTime(binary.LittleEndian.Uint64(b[16:]))
		e.ATime = ntTime(binary.LittleEndian.Uint64(b[24:]))
		attrs = binary.LittleEndian.Uint32(b[32:])
	}
	for _, fn := range names {
		if fn.namespace != nsDOS {
			e.Links++
		}
	}
	e.Links = max(e.Links, 1)

	target, isLink, err := rd.reparseTarget(f)
	if err != nil {
		return fail(err)
	}
	switch {
	case isLink:
		e.Type, e.Mode, e.LinkTarget, e.Size = fs.TypeSymlink, 0o777, target, int64(len(target))
	case f.base.Flags&recordIsDir != 0:
		e.Type, e.Mode = fs.TypeDir, 0o755
	default:
		e.Type, e.Mode = fs.TypeFile, 0o644
		if attrs&fileReadOnly != 0 {
			e.Mode = 0o444
		}
		// The size is the $DATA's; its runs are checked when the
		// file is opened, so that a file with damaged content does
		// not keep its folder from being listed. No $DATA is an empty
		// file.
		e.Size = f.dataSize()
		if attrs&fileSystem != 0 && e.Size >= 8 && e.Size <= maxIntxLink {
			if data, err := rd.v.openAttr(f, attrData, ""); err == nil {
				if err := interix(e, data); err != nil {
					return fail(err)
				}
			}
		}
	}

	var total int64 // bytes of xattr values
	for _, a := range f.attrs {
		if a.Type != attrData || a.Name == "" || (a.NonResident && a.LowVCN != 0) {
			continue
		}
		x := fs.Xattr{Name: streamPrefix + a.Name}
		s, err := rd.v.openAttr(f, attrData, a.Name)
		if err != nil {
			return fail(fmt.Errorf("stream %q: %w", a.Name, err))
		}
		if s.Size() <= maxStreamXattr && total+s.Size() <= maxXattrBytes {
			total += s.Size()
			x.Value = make([]byte, s.Size())
			if _, err := s.ReadAt(x.Value, 0); err != nil && err != io.EOF {
				return fail(fmt.Errorf("stream %q: %w", a.Name, err))
			}
		}
		e.Xattrs = append(e.Xattrs, x)
	}
	sort.Slice(e.Xattrs, func(i, j int) bool { return e.Xattrs[i].Name < e.Xattrs[j].Name })
	return e, nil
}

// dataSize returns the size of f's unnamed $DATA, 0 if it has none.
func (f *file) dataSize() int64 {
	for _, a := range f.attrs {
		switch {
		case a.Type != attrData || a.Name != "":
		case !a.NonResident:
			return int64(len(a.Value))
		case a.LowVCN == 0:
			return a.DataSize
		}
	}
	return 0
}

// reparseTarget returns the target of f if it is a symbolic link or a
// junction.
func (rd *reader) reparseTarget(f *file) (string, bool, error) {
	a := f.first(attrReparsePoint, "")
	if a == nil {
		return "", false, nil
	}
	if a.NonResident {
		return "", false, errors.New("non-resident $REPARSE_POINT")
	}
	b := a.Value
	if len(b) < 8 {
		return "", false, fmt.Errorf("$REPARSE_POINT of %d bytes", len(b))
	}
	tag := binary.LittleEndian.Uint32(b)
	var buf int
	switch tag {
	case tagSymlink:
		buf = 12
	case tagMountPoint:
		buf = 8
	default:
		return "", false, nil
	}
	data := b[8:min(len(b), 8+int(binary.LittleEndian.Uint16(b[4:])))]
	if len(data) < buf {
		return "", false, fmt.Errorf("reparse point %#x of %d bytes", tag, len(data))
	}
	path := data[buf:]
	name := func(off int) (string, error) {
		o, n := int(binary.LittleEndian.Uint16(data[off:])), int(binary.LittleEndian.Uint16(data[off+2:]))
		if o+n > len(path) {
			return "", fmt.Errorf("reparse point %#x: name at %d of %d bytes past its end", tag, o, n)
		}
		return decodeUTF16(path[o : o+n]), nil
	}
	target, err := name(4) // the print name
	if err != nil {
		return "", false, err
	}
	if target == "" {
		if target, err = name(0); err != nil {
			return "", false, err
		}
		target = strings.TrimPrefix(target, `\??\`)
	}
	if tag == tagSymlink && binary.LittleEndian.Uint32(data[8:])&1 != 0 {
		target = strings.ReplaceAll(target, `\`, "/")
	}
	if target == "" || strings.IndexByte(target, 0) >= 0 {
		return "", false, fmt.Errorf("reparse point %#x: target %q", tag, target)
	}
	return target, true, nil
}

// Interix (and ntfs-3g) special files are system files whose content starts
// with a magic: a symbolic link's target in UTF-16, a device's major and
// minor numbers (u64 each).
const (
	intxLink    = "IntxLNK\x01"
	intxChar    = "IntxCHR\x00"
	intxBlock   = "IntxBLK\x00"
	maxIntxLink = 8 + 2*4096
)

// interix turns e, a system file whose content data holds, into the
// symbolic link or device it stands for, if it is one.
func interix(e *fs.Entry, data stream) error {
	if data.Size() < 8 || data.Size() > maxIntxLink {
		return nil
	}
	b := make([]byte, data.Size())
	if _, err := data.ReadAt(b, 0); err != nil && err != io.EOF {
		return err
	}
	switch magic := string(b[:8]); {
	case magic == intxLink:
		target := decodeUTF16(b[8:])
		if target == "" || strings.IndexByte(target, 0) >= 0 {
			return fmt.Errorf("interix symbolic link to %q", target)
		}
		e.Type, e.Mode, e.LinkTarget, e.Size = fs.TypeSymlink, 0o777, target, int64(len(target))
	case (magic == intxChar || magic == intxBlock) && len(b) == 24:
		e.Type = fs.TypeCharDev
		if magic == intxBlock {
			e.Type = fs.TypeDev
		}
		e.Rdev = mkdev(binary.LittleEndian.Uint64(b[8:]), binary.LittleEndian.Uint64(b[16:]))
		e.Size = 0
	}
	return nil
}

// mkdev encodes a device number as Linux does.
func mkdev(major, minor uint64) uint64 {
	return (major&0xfffff000)<<32 | (major&0xfff)<<8 | (minor&0xffffff00)<<12 | minor&0xff
}

// ntTime converts an NTFS time (100 ns units since 1601-01-01 UTC) to
// nanoseconds since the Unix epoch; 0 for a time of 0 or one outside the
// years 1678-2262 that an int64 of nanoseconds can hold.
func ntTime(t uint64) int64 {
	const epochDiff = 116444736000000000 // 1601 to 1970 in 100 ns units
	const limit = (1<<63 - 1) / 100
	if t == 0 || t > 1<<63-1 {
		return 0
	}
	d := int64(t) - epochDiff
	if d > limit || d < -limit {
		return 0
	}
	return d * 100
}

// Open returns the content of the regular file f: its unnamed $DATA.
func (rd *reader) Open(f *fs.Entry) (io.ReaderAt, error) {
	n, err := handle(f)
	if err != nil {
		return nil, err
	}
	file, err := rd.file(n)
	if err != nil {
		return nil, err
	}
	if file.base.Flags&recordIsDir != 0 {
		return nil, fmt.Errorf("ntfs: file record %d is a folder", n)
	}
	if a := file.first(attrReparsePoint, ""); a != nil && !a.NonResident && len(a.Value) >= 4 {
		switch tag := binary.LittleEndian.Uint32(a.Value); tag {
		case tagWOF, tagDedup:
			return nil, fmt.Errorf("ntfs: file record %d: content behind reparse point %#x (Windows compression or deduplication) cannot be read", n, tag)
		}
	}
	if file.first(attrData, "") == nil {
		return bytes.NewReader(nil), nil
	}
	data, err := rd.v.openAttr(file, attrData, "")
	if err != nil {
		return nil, corrupt(fmt.Errorf("file record %d: $DATA: %w", n, err))
	}
	return &content{data, n}, nil
}

// content is a file's content; its errors name the file's record.
type content struct {
	stream
	rec int64
}

func (c *content) ReadAt(p []byte, off int64) (int, error) {
	n, err := c.stream.ReadAt(p, off)
	if err != nil && err != io.EOF {
		err = fmt.Errorf("ntfs: file record %d: %w", c.rec, err)
	}
	return n, err
}
