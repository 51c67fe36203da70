package fat

// The file reader. A folder is a run of 32-byte entries: the FAT12/16 root
// folder a fixed region after the FATs, every other folder (the FAT32 root
// included) a cluster chain. An entry is either a short (8.3) entry:
//
//	0   name, 8 bytes, and extension, 3 bytes, space padded (a first byte of
//	    0x00 ends the folder, 0xE5 marks a deleted entry, 0x05 stands for 0xE5)
//	11  attributes: 0x01 read-only, 0x02 hidden, 0x04 system, 0x08 volume
//	    label, 0x10 folder, 0x20 archive
//	12  NT flags: 0x08 the name, 0x10 the extension is shown in lower case
//	13  creation time, 10 ms units (0-199)
//	14  creation time, 16  creation date, 18  access date
//	20  first cluster, high 16 bits (FAT32)
//	22  modification time, 24  modification date
//	26  first cluster, low 16 bits, 28  size in bytes (u32)
//
// or, attribute 0x0F, a long-name (VFAT) entry, a piece of the name of the
// short entry that follows its pieces: 0 ordinal (1-20; 0x40 marks the last
// piece, stored first), 1 five UTF-16 units, 11 attribute 0x0F, 13 checksum
// of the short name, 14 six units, 28 two units. A name ends at a 0x0000 unit
// (then 0xFFFF padding). Dates are days (bits 0-4), months (5-8) and years
// since 1980 (9-15); times are 2-second units (0-4), minutes (5-10) and hours
// (11-15), in local time of whoever wrote them: FAT records no time zone, and
// this reader takes them as UTC.

import (
	"bytes"
	"cairn/internal/fs/lru"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"
	"unicode/utf16"

	"cairn/internal/fs"
)

// Folder limits: the specification allows 65536 entries in a folder (2 MiB);
// a longer chain is damage, a loop most likely.
const maxDirBytes = 65536 * 32

// fatBlock is how much of the FAT the reader reads and caches at a time;
// fatCacheBlocks how many blocks it keeps.
const (
	fatBlock       = 64 << 10
	fatCacheBlocks = 16
)

// reader reads the files of a FAT volume.
type reader struct {
	v   *volume
	r   io.ReaderAt
	fat *lru.Cache[int64, []byte] // blocks of the first FAT by number
}

// node is a FAT reader's handle of an entry (fs.Entry.Sys).
type node struct {
	path    string
	dir     bool
	root    bool
	cluster uint32 // first cluster; 0 for an empty file and the FAT12/16 root
	parent  uint32 // first cluster of the folder holding it (0: the root)
	size    int64
}

// Open returns a reader of the files of the FAT12, FAT16 or FAT32 volume on
// r, a partition of size bytes. It reads the boot sector only; folders and
// the FAT are read as they are needed.
//
// Entries have the names of their long (VFAT) names, or of their 8.3 names
// if a long name is missing or damaged (in lower case where the NT flags say
// so); deleted entries and volume labels are left out, and so are entries
// whose name cannot be a file name ('/' or NUL in it, "." or "..") and all but
// the first of entries of the same name. Folders have mode 0755, files 0644,
// or 0444 if their read-only attribute is set; the attribute is ignored on
// folders, as Windows does. Times are as stored, taken as UTC (FAT keeps local
// time without a zone): MTime in 2-second steps, ATime a date only, CTime in
// 10-millisecond steps. Inode is the position of the entry on the volume,
// in 32-byte units (1 for the root), and Links is 1.
func Open(r io.ReaderAt, size int64) (fs.Reader, error) {
	if size < 512 {
		return nil, fmt.Errorf("fat: %w: %d bytes is too small", fs.ErrUnknown, size)
	}
	boot := make([]byte, 512)
	if err := readAt(r, boot, 0); err != nil {
		return nil, fmt.Errorf("fat: boot sector: %w", err)
	}
	v, err := parseBoot(boot)
	if err != nil {
		return nil, err
	}
	if fsSize := v.totalSecs * v.sectorSize; fsSize > size {
		return nil, fmt.Errorf("%w: the volume is %d bytes, its partition only %d (truncated?)", errCorrupt, fsSize, size)
	}
	return &reader{v: v, r: r, fat: lru.New[int64, []byte](fatCacheBlocks)}, nil
}

// Root returns the root folder, named "/".
func (rd *reader) Root() (*fs.Entry, error) {
	n := &node{path: "/", dir: true, root: true}
	if rd.v.fat32Layout {
		n.cluster = rd.v.rootCluster
	}
	return &fs.Entry{Name: "/", Type: fs.TypeDir, Mode: 0o755, Inode: 1, Links: 1, Sys: n}, nil
}

// handle returns e's node, checking that e is one of this reader's entries.
func handle(e *fs.Entry) (*node, error) {
	if e == nil {
		return nil, errors.New("fat: nil entry")
	}
	n, ok := e.Sys.(*node)
	if !ok {
		return nil, fmt.Errorf("fat: %q is not an entry of a FAT reader", e.Name)
	}
	return n, nil
}

// ReadDir returns the entries of folder dir, sorted by name.
func (rd *reader) ReadDir(dir *fs.Entry) ([]*fs.Entry, error) {
	n, err := handle(dir)
	if err != nil {
		return nil, err
	}
	if !n.dir {
		return nil, fmt.Errorf("fat: %s: not a folder", n.path)
	}
	raw, offsets, err := rd.readDir(n)
	if err != nil {
		return nil, err
	}
	ents, dotdot := parseDir(raw, rd.v.fat32Layout)
	// A folder is listed only under the folder its ".." entry names, so
	// that a damaged volume cannot make a loop (a folder inside itself) or
	// list one folder under many: every folder has one parent, and the
	// root none.
	if !n.root {
		root := dotdot == 0 || (rd.v.fat32Layout && dotdot == int64(rd.v.rootCluster))
		if dotdot < 0 || (n.parent == 0 && !root) || (n.parent != 0 && dotdot != int64(n.parent)) {
			return nil, fmt.Errorf("%w: %s: its \"..\" entry (cluster %d) does not name the folder it is in (cluster %d)",
				errCorrupt, n.path, dotdot, n.parent)
		}
	}
	out := make([]*fs.Entry, 0, len(ents))
	seen := make(map[string]bool, len(ents))
	subdirs := map[uint32]string{} // by first cluster
	for _, d := range ents {
		if seen[d.name] {
			continue
		}
		seen[d.name] = true
		// With one parent each (its ".." entry), a folder listed once
		// in its parent is listed once in the whole tree.
		if d.attr&attrDir != 0 {
			if other, ok := subdirs[d.cluster]; ok {
				return nil, fmt.Errorf("%w: %s: folders %q and %q share cluster %d", errCorrupt, n.path, other, d.name, d.cluster)
			}
			subdirs[d.cluster] = d.name
		}
		child := &node{path: strings.TrimSuffix(n.path, "/") + "/" + d.name, cluster: d.cluster, size: int64(d.size)}
		if !n.root {
			child.parent = n.cluster
		}
		e := &fs.Entry{
			Name:  d.name,
			Type:  fs.TypeFile,
			Mode:  0o644,
			Size:  int64(d.size),
			MTime: d.mtime,
			ATime: d.atime,
			CTime: d.ctime,
			Inode: uint64(offsets(d.index) / 32),
			Links: 1,
			Sys:   child,
		}
		switch {
		case d.attr&attrDir != 0:
			e.Type, e.Mode, e.Size = fs.TypeDir, 0o755, 0
			child.dir, child.size = true, 0
			if d.cluster == 0 {
				return nil, fmt.Errorf("%w: %s: a folder without clusters", errCorrupt, child.path)
			}
		case d.attr&attrReadOnly != 0:
			e.Mode = 0o444
		}
		out = append(out, e)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// readDir returns the raw entries of folder n and a function that gives the
// position on the volume of entry i.
func (rd *reader) readDir(n *node) ([]byte, func(i int) int64, error) {
	v := rd.v
	if n.root && !v.fat32Layout {
		buf := make([]byte, v.rootEntries*32)
		if err := readAt(rd.r, buf, v.rootDirStart); err != nil {
			return nil, nil, fmt.Errorf("fat: root folder: %w", err)
		}
		return buf, func(i int) int64 { return v.rootDirStart + int64(i)*32 }, nil
	}
	spans, err := rd.chain(n.cluster, 0, n.path)
	if err != nil {
		return nil, nil, err
	}
	buf, err := rd.readSpans(spans, n.path)
	if err != nil {
		return nil, nil, err
	}
	var clusters []uint32 // at most maxDirBytes/512
	for _, s := range spans {
		for k := range s.n {
			clusters = append(clusters, s.first+k)
		}
	}
	return buf, func(i int) int64 {
		off := int64(i) * 32
		return v.clusterOffset(clusters[off/v.clusterSize]) + off%v.clusterSize
	}, nil
}

// readSpans reads the clusters of spans, one read a span.
func (rd *reader) readSpans(spans []span, path string) ([]byte, error) {
	var total int64
	for _, s := range spans {
		total += int64(s.n)
	}
	buf := make([]byte, total*rd.v.clusterSize)
	pos := int64(0)
	for _, s := range spans {
		l := int64(s.n) * rd.v.clusterSize
		if err := readAt(rd.r, buf[pos:pos+l], rd.v.clusterOffset(s.first)); err != nil {
			return nil, fmt.Errorf("fat: %s: %w", path, err)
		}
		pos += l
	}
	return buf, nil
}

// clusterOffset returns the byte offset of cluster cl (2 or more).
func (v *volume) clusterOffset(cl uint32) int64 {
	return v.dataStart + int64(cl-2)*v.clusterSize
}

// Open returns the content of the regular file f.
func (rd *reader) Open(f *fs.Entry) (io.ReaderAt, error) {
	n, err := handle(f)
	if err != nil {
		return nil, err
	}
	if n.dir {
		return nil, fmt.Errorf("fat: %s: a folder", n.path)
	}
	if n.size == 0 {
		return bytes.NewReader(nil), nil
	}
	if n.cluster == 0 {
		return nil, fmt.Errorf("%w: %s: %d bytes without clusters", errCorrupt, n.path, n.size)
	}
	need := (n.size + rd.v.clusterSize - 1) / rd.v.clusterSize
	spans, err := rd.chain(n.cluster, need, n.path)
	if err != nil {
		return nil, err
	}
	return newFileReader(rd, spans, n.size, n.path), nil
}

// A span is a run of n consecutive clusters of a chain from cluster first.
type span struct {
	first, n uint32
}

// chain returns the cluster chain from cluster start as spans: need clusters
// of it, or for a folder (need 0) all of it up to its end mark, at most
// maxDirBytes. A chain that leaves the volume's clusters, reaches a free or a
// bad cluster, ends early or comes back to a cluster it went through is an
// error naming path. A file's chain longer than its size is read only as far
// as the size reaches, as Linux does.
func (rd *reader) chain(start uint32, need int64, path string) ([]span, error) {
	v := rd.v
	limit := need
	if need == 0 {
		limit = max(maxDirBytes/v.clusterSize, 1)
	} else if need > v.clusters {
		return nil, fmt.Errorf("%w: %s: %d clusters needed, the volume has %d", errCorrupt, path, need, v.clusters)
	}
	var spans []span
	cl := start
	for count := int64(1); ; count++ {
		if cl < 2 || int64(cl) >= v.clusters+2 {
			return nil, fmt.Errorf("%w: %s: cluster chain leads to cluster %d, outside 2-%d", errCorrupt, path, cl, v.clusters+1)
		}
		if k := len(spans) - 1; k >= 0 && spans[k].first+spans[k].n == cl {
			spans[k].n++
		} else {
			spans = append(spans, span{cl, 1})
		}
		if count == need {
			break
		}
		next, err := rd.next(cl)
		if err != nil {
			return nil, fmt.Errorf("fat: %s: %w", path, err)
		}
		if v.eoc(next) {
			if need > 0 {
				return nil, fmt.Errorf("%w: %s: cluster chain ends after %d clusters, the size needs %d", errCorrupt, path, count, need)
			}
			break
		}
		switch {
		case count == limit:
			return nil, fmt.Errorf("%w: %s: folder of more than %d clusters (a loop?)", errCorrupt, path, limit)
		case next == 0:
			return nil, fmt.Errorf("%w: %s: cluster chain leads from cluster %d to a free cluster", errCorrupt, path, cl)
		case v.bad(next):
			return nil, fmt.Errorf("%w: %s: cluster chain leads from cluster %d to a bad cluster", errCorrupt, path, cl)
		}
		cl = next
	}
	// A chain that comes back to a cluster makes spans that overlap.
	sorted := append([]span(nil), spans...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].first < sorted[j].first })
	for i := 1; i < len(sorted); i++ {
		if p := sorted[i-1]; p.first+p.n > sorted[i].first {
			return nil, fmt.Errorf("%w: %s: cluster chain loops (through cluster %d twice)", errCorrupt, path, sorted[i].first)
		}
	}
	return spans, nil
}

// next returns the FAT entry of cluster cl, from the first FAT.
func (rd *reader) next(cl uint32) (uint32, error) {
	v := rd.v
	off := int64(cl) * int64(v.bits) / 8
	blk := off / fatBlock
	buf, ok := rd.fat.Get(blk)
	if !ok {
		fatLen := ((v.clusters+2)*int64(v.bits) + 7) / 8
		start := blk * fatBlock
		buf = make([]byte, min(fatBlock, fatLen-start))
		if err := readAt(rd.r, buf, v.reservedSecs*v.sectorSize+start); err != nil {
			return 0, fmt.Errorf("FAT: %w", err)
		}
		rd.fat.Put(blk, buf)
	}
	// FAT12 tables are at most 6 KiB, inside block 0, so entries are
	// counted from the start of the block in every case.
	return v.entry(buf, int64(cl)-blk*fatBlock*8/int64(v.bits)), nil
}

// eoc reports whether e marks the end of a chain.
func (v *volume) eoc(e uint32) bool {
	switch v.bits {
	case 12:
		return e >= 0xFF8
	case 16:
		return e >= 0xFFF8
	default:
		return e >= 0x0FFFFFF8
	}
}

// fileReader reads a file's content through its cluster chain.
type fileReader struct {
	rd    *reader
	spans []span
	ends  []int64 // ends[i]: the offset in the file where spans[i] ends
	size  int64
	path  string
}

func newFileReader(rd *reader, spans []span, size int64, path string) *fileReader {
	ends := make([]int64, len(spans))
	end := int64(0)
	for i, s := range spans {
		end += int64(s.n) * rd.v.clusterSize
		ends[i] = end
	}
	return &fileReader{rd: rd, spans: spans, ends: ends, size: size, path: path}
}

// ReadAt reads len(p) bytes at off, or fewer and io.EOF at the end of the
// file; each span of consecutive clusters is read in one read.
func (f *fileReader) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("fat: %s: negative offset", f.path)
	}
	if off >= f.size {
		return 0, io.EOF
	}
	var eof error
	if int64(len(p)) > f.size-off {
		p, eof = p[:f.size-off], io.EOF
	}
	n := 0
	for i := sort.Search(len(f.ends), func(i int) bool { return f.ends[i] > off }); n < len(p); i++ {
		at := off + int64(n)
		start := f.ends[i] - int64(f.spans[i].n)*f.rd.v.clusterSize
		chunk := p[n : n+int(min(int64(len(p)-n), f.ends[i]-at))]
		if err := readAt(f.rd.r, chunk, f.rd.v.clusterOffset(f.spans[i].first)+at-start); err != nil {
			return n, fmt.Errorf("fat: %s: %w", f.path, err)
		}
		n += len(chunk)
	}
	return n, eof
}

// Attributes of a directory entry.
const (
	attrReadOnly = 0x01
	attrVolume   = 0x08
	attrDir      = 0x10
	attrLongName = 0x0F
)

// A dirent is a file or folder that a folder lists.
type dirent struct {
	name                string
	attr                byte
	cluster             uint32
	size                uint32
	mtime, atime, ctime int64
	index               int // of its short entry among the folder's entries
}

// parseDir decodes b, the entries of a folder, up to the end mark: the files
// and folders it lists (deleted entries, volume labels, "." and ".." and
// entries whose name can be no file's left out) and the cluster its ".."
// entry names, -1 if none. High words of cluster numbers count only on
// FAT32.
func parseDir(b []byte, fat32 bool) (ents []dirent, dotdot int64) {
	dotdot = -1
	var (
		units   [20 * 13]uint16 // the long name being gathered
		pieces  int             // its number of pieces, 0 if none
		next    int             // the ordinal of the piece expected next
		longSum byte
	)
	for i := 0; (i+1)*32 <= len(b); i++ {
		e := b[i*32 : (i+1)*32]
		attr := e[11]
		switch {
		case e[0] == 0:
			return ents, dotdot
		case e[0] == 0xE5:
			pieces = 0
			continue
		case attr&0x3F == attrLongName:
			ord := int(e[0] & 0x1F)
			switch {
			case e[0]&0x40 != 0 && ord >= 1 && ord <= 20:
				pieces, next, longSum = ord, ord, e[13]
				clear(units[:])
			case e[0]&0x40 != 0 || pieces == 0 || ord < 1 || ord != next || e[13] != longSum:
				pieces = 0 // a piece out of order: the name is broken
				continue
			}
			u := units[(ord-1)*13:]
			for k := range 5 {
				u[k] = uint16(e[1+2*k]) | uint16(e[2+2*k])<<8
			}
			for k := range 6 {
				u[5+k] = uint16(e[14+2*k]) | uint16(e[15+2*k])<<8
			}
			for k := range 2 {
				u[11+k] = uint16(e[28+2*k]) | uint16(e[29+2*k])<<8
			}
			next--
			continue
		case attr&attrVolume != 0:
			pieces = 0
			continue
		}
		cluster := uint32(e[26]) | uint32(e[27])<<8
		if fat32 {
			cluster |= (uint32(e[20]) | uint32(e[21])<<8) << 16
		}
		switch string(e[:11]) {
		case ".          ":
			pieces = 0
			continue
		case "..         ":
			if dotdot < 0 {
				dotdot = int64(cluster)
			}
			pieces = 0
			continue
		}
		name := ""
		if pieces > 0 && next == 0 && longSum == shortSum(e[:11]) {
			name = longName(units[:pieces*13])
		}
		pieces = 0
		if name == "" {
			name = shortName(e[:11], e[12])
		}
		if !validName(name) {
			continue
		}
		ents = append(ents, dirent{
			name:    name,
			attr:    attr,
			cluster: cluster,
			size:    uint32(e[28]) | uint32(e[29])<<8 | uint32(e[30])<<16 | uint32(e[31])<<24,
			mtime:   fatTime(le16(e[24:]), le16(e[22:]), 0),
			atime:   fatTime(le16(e[18:]), 0, 0),
			ctime:   fatTime(le16(e[16:]), le16(e[14:]), e[13]),
			index:   i,
		})
	}
	return ents, dotdot
}

func le16(b []byte) uint16 { return uint16(b[0]) | uint16(b[1])<<8 }

// shortSum is the checksum of a short name that its long name's pieces hold.
func shortSum(name []byte) byte {
	var sum byte
	for _, c := range name {
		sum = (sum&1)<<7 + sum>>1 + c
	}
	return sum
}

// longName decodes the UTF-16 units of a long name up to a 0x0000 unit;
// unpaired surrogates become U+FFFD. It returns "" if the name is no valid
// file name.
func longName(u []uint16) string {
	if i := indexUnit(u, 0); i >= 0 {
		u = u[:i]
	}
	s := string(utf16.Decode(u))
	if !validName(s) {
		return ""
	}
	return s
}

func indexUnit(u []uint16, x uint16) int {
	for i, c := range u {
		if c == x {
			return i
		}
	}
	return -1
}

// shortName decodes an 8.3 name, its bytes in code page 437 (as Linux's
// default), with the NT flags' lower case. It returns "" for an invalid name.
func shortName(raw []byte, nt byte) string {
	var name [11]byte
	copy(name[:], raw)
	if name[0] == 0x05 {
		name[0] = 0xE5
	}
	base := bytes.TrimRight(name[:8], " ")
	ext := bytes.TrimRight(name[8:], " ")
	var sb strings.Builder
	add := func(part []byte, lower bool) bool {
		for _, c := range part {
			switch {
			case c < 0x20:
				return false
			case c >= 0x80:
				sb.WriteRune(cp437[c-0x80])
			case lower && c >= 'A' && c <= 'Z':
				sb.WriteByte(c + 'a' - 'A')
			default:
				sb.WriteByte(c)
			}
		}
		return true
	}
	if len(base) == 0 || !add(base, nt&0x08 != 0) {
		return ""
	}
	if len(ext) > 0 {
		sb.WriteByte('.')
		if !add(ext, nt&0x10 != 0) {
			return ""
		}
	}
	return sb.String()
}

// validName reports whether s can name an entry: not empty, "." or "..", no
// '/' or NUL in it.
func validName(s string) bool {
	return s != "" && s != "." && s != ".." && !strings.ContainsAny(s, "/\x00")
}

// fatTime returns a FAT date and time, taken as UTC, in nanoseconds since the
// Unix epoch, with tens of milliseconds cs (0-199) added; 0 if the date is
// zero or invalid.
func fatTime(date, tod uint16, cs byte) int64 {
	day, month, year := int(date&0x1F), int(date>>5&0x0F), 1980+int(date>>9)
	sec, minute, hour := 2*int(tod&0x1F), int(tod>>5&0x3F), int(tod>>11)
	if date == 0 || day == 0 || month == 0 || month > 12 || sec > 59 || minute > 59 || hour > 23 || cs > 199 {
		return 0
	}
	t := time.Date(year, time.Month(month), day, hour, minute, sec, int(cs)*10_000_000, time.UTC)
	if t.Day() != day { // February 30th and the like
		return 0
	}
	return t.UnixNano()
}

// cp437 maps bytes 0x80-0xFF of code page 437 to Unicode.
var cp437 = [128]rune([]rune(
	"ÇüéâäàåçêëèïîìÄÅÉæÆôöòûùÿÖÜ¢£¥₧ƒáíóúñÑªº¿⌐¬½¼¡«»░▒▓│┤╡╢╖╕╣║╗╝╜╛┐└┴┬├─┼╞╟╚╔╩╦╠═╬╧╨╤╥╙╘╒╓╫╪┘┌█▄▌▐▀αßΓπΣσµτΦΘΩδ∞φε∩≡±≥≤⌠⌡÷≈°∙·√ⁿ²■\u00a0"))
